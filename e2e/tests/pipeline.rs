//! The pipeline end to end against real PostgreSQL and moto: POST -> PostgreSQL + outbox ->
//! SNS -> SQS -> updater -> DynamoDB + S3 -> GET.

use e2e::system::{get_order, order_body, post_order, read_json, TestSystem};
use lambda_http::http::header;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_flows_from_post_to_get() {
    let sys = TestSystem::start(false).await;

    let response = sys
        .command
        .handle(post_order(&order_body("cust-e2e")))
        .await;
    let (status, created) = read_json(&response);
    assert_eq!(status, 201, "{created}");
    let id = created["orderId"].as_str().expect("orderId").to_string();
    assert_eq!(
        response.headers()[header::LOCATION],
        format!("/orders/{id}").as_str()
    );
    assert_eq!(
        response.headers()["x-correlation-id"],
        "demo-correlation-0001"
    );
    assert_eq!(created["status"], "PENDING");
    assert_eq!(created["version"], 1);
    assert_eq!(created["total"], 3 * 2500 + 10 * 30);
    assert_eq!(created["lines"][1]["lineTotal"], 300);

    // The write model: order, lines and the outbox row, marked published.
    let q = |sql: &str| sys.pg.psql("orders", &sql.replace("$ID", &id));
    assert_eq!(
        q("SELECT total || ' ' || status || ' ' || version FROM orders WHERE id = '$ID'"),
        "7800 PENDING 1"
    );
    assert_eq!(
        q("SELECT count(*) FROM order_lines WHERE order_id = '$ID'"),
        "2"
    );
    assert_eq!(
        q("SELECT event_type || ' ' || order_version || ' ' || (published_at IS NOT NULL) FROM outbox WHERE order_id = '$ID'"),
        "OrderCreated 1 true"
    );
    assert_eq!(
        q("SELECT payload->'order'->>'total' FROM outbox WHERE order_id = '$ID'"),
        "7800"
    );

    // Not readable before the projection runs.
    let (status, _) = read_json(&sys.query.handle(get_order(&id)).await);
    assert_eq!(status, 404);

    // SNS delivered the event (wrapped in the SNS envelope) to the queue.
    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1, "one message delivered");
    let body: serde_json::Value =
        serde_json::from_str(records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(body["Type"], "Notification");
    assert_eq!(
        body["MessageAttributes"]["eventType"]["Value"],
        "OrderCreated"
    );
    assert_eq!(body["MessageAttributes"]["orderId"]["Value"], id.as_str());

    let response = sys.project(records).await;
    assert!(response.batch_item_failures.is_empty());

    let response = sys.query.handle(get_order(&id)).await;
    let (status, view) = read_json(&response);
    assert_eq!(status, 200, "{view}");
    assert_eq!(response.headers()[header::ETAG], "\"1\"");
    assert_eq!(view["orderId"], id.as_str());
    assert_eq!(view["total"], created["total"]);
    assert_eq!(view["lines"], created["lines"]);
    assert_eq!(view["currency"], "USD");
    assert_eq!(view["status"], "PENDING");
    assert_eq!(view["version"], 1);
    assert_eq!(view["customer"]["id"], "cust-e2e");
    assert_eq!(view["createdAt"], created["createdAt"]);
    assert_eq!(
        view["receiptKey"],
        format!("receipts/{id}/receipt.html").as_str()
    );

    // One object per version: the HTML receipt. Programs read the receipt's data (the
    // same fields the JSON copy had) from the view; no JSON object is stored.
    assert_eq!(
        sys.receipt_keys(&id).await,
        [format!("receipts/{id}/receipt.html")]
    );
    assert_eq!(view["total"], 7800);
    assert_eq!(view["createdAt"], created["createdAt"]);
    let html = sys
        .s3
        .get_object()
        .bucket(&sys.resources.bucket)
        .key(format!("receipts/{id}/receipt.html"))
        .send()
        .await
        .expect("HTML receipt stored");
    assert_eq!(html.content_type(), Some("text/html; charset=utf-8"));
    let html = String::from_utf8(html.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
    assert!(html.contains("78.00 USD"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_message_delivery_is_projected_too() {
    let sys = TestSystem::start(true).await;
    let (status, created) = read_json(
        &sys.command
            .handle(post_order(&order_body("cust-raw")))
            .await,
    );
    assert_eq!(status, 201);
    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
    let body: serde_json::Value =
        serde_json::from_str(records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body["eventType"], "OrderCreated",
        "raw delivery carries the bare event"
    );
    assert!(sys.project(records).await.batch_item_failures.is_empty());
    let id = created["orderId"].as_str().unwrap();
    let (status, view) = read_json(&sys.query.handle(get_order(id)).await);
    assert_eq!(status, 200);
    assert_eq!(view["total"], 7800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_stale_events_leave_one_item_at_the_newest_version() {
    let sys = TestSystem::start(false).await;
    let (_, created) = read_json(
        &sys.command
            .handle(post_order(&order_body("cust-dup")))
            .await,
    );
    let id = created["orderId"].as_str().unwrap().to_string();
    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);

    // The same message three times: in one batch, then again alone.
    let original = records[0].clone();
    let response = sys.project(vec![original.clone(), original.clone()]).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(sys
        .project(vec![original.clone()])
        .await
        .batch_item_failures
        .is_empty());
    let receipts = [format!("receipts/{id}/receipt.html")];
    assert_eq!(sys.receipt_keys(&id).await, receipts);

    // A newer snapshot (version 2) arrives, then the version-1 event once more.
    let body: serde_json::Value = serde_json::from_str(original.body.as_deref().unwrap()).unwrap();
    let mut event: serde_json::Value =
        serde_json::from_str(body["Message"].as_str().unwrap()).unwrap();
    event["eventId"] = uuid::Uuid::now_v7().to_string().into();
    event["orderVersion"] = 2.into();
    event["order"]["version"] = 2.into();
    event["order"]["status"] = "CONFIRMED".into();
    let mut newer = original.clone();
    newer.message_id = Some("newer-message".into());
    newer.body = Some(event.to_string());
    assert!(sys
        .project(vec![newer])
        .await
        .batch_item_failures
        .is_empty());
    assert!(sys
        .project(vec![original])
        .await
        .batch_item_failures
        .is_empty());

    let (status, view) = read_json(&sys.query.handle(get_order(&id)).await);
    assert_eq!(status, 200);
    assert_eq!(view["version"], 2);
    assert_eq!(view["status"], "CONFIRMED");
    assert_eq!(
        sys.receipt_keys(&id).await,
        receipts,
        "still one receipt object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_is_the_only_one_reported_failed() {
    let sys = TestSystem::start(false).await;
    let mut ids = Vec::new();
    for customer in ["cust-a", "cust-b"] {
        let (_, created) = read_json(&sys.command.handle(post_order(&order_body(customer))).await);
        ids.push(created["orderId"].as_str().unwrap().to_string());
    }
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while records.len() < 2 && Instant::now() < deadline {
        records.extend(sys.receive(Duration::from_secs(2)).await);
    }
    assert_eq!(records.len(), 2);
    let mut bad = records[0].clone();
    bad.message_id = Some("poison-1".into());
    bad.body = Some("{\"not\": \"an event\"".into());
    let mut unknown = records[0].clone();
    unknown.message_id = Some("poison-2".into());
    unknown.body = Some(r#"{"eventType":"OrderTeleported","schemaVersion":1}"#.into());
    records.insert(1, bad);
    records.push(unknown);

    let response = sys.project(records).await;
    let mut failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort();
    assert_eq!(failed, ["poison-1", "poison-2"]);
    for id in ids {
        let (status, _) = read_json(&sys.query.handle(get_order(&id)).await);
        assert_eq!(status, 200, "good records were projected");
    }
}
