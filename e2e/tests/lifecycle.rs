//! The order lifecycle and the read side: status changes with optimistic concurrency,
//! history, receipts and cancellation notices, listings with cursors, ETags.

use e2e::system::{
    change_status, get_order, list_orders, order_body, post_order, read_json, TestSystem,
};
use lambda_http::http::header;
use std::time::Duration;

async fn create(sys: &TestSystem, customer: &str) -> String {
    let (status, body) = read_json(&sys.command.handle(post_order(&order_body(customer))).await);
    assert_eq!(status, 201, "{body}");
    body["orderId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_changes_follow_the_lifecycle_with_optimistic_concurrency() {
    let sys = TestSystem::start(false).await;
    let id = create(&sys, "life").await;

    let response = sys
        .command
        .handle(change_status(
            &id,
            r#"{"status":"CONFIRMED"}"#,
            &[("if-match", "\"1\"")],
        ))
        .await;
    let (status, body) = read_json(&response);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["version"].as_i64()),
        (Some("CONFIRMED"), Some(2))
    );
    assert_eq!(response.headers()[header::ETAG], "\"2\"");
    assert_eq!(body["history"][0]["from"], "PENDING");

    // A client that still holds version 1.
    let (status, problem) = read_json(
        &sys.command
            .handle(change_status(
                &id,
                r#"{"status":"CANCELLED"}"#,
                &[("if-match", "\"1\"")],
            ))
            .await,
    );
    assert_eq!(status, 412, "{problem}");
    assert_eq!(problem["currentVersion"], 2);

    // Without If-Match the last writer wins.
    let (status, _) = read_json(
        &sys.command
            .handle(change_status(
                &id,
                r#"{"status":"SHIPPED","reason":"DHL 123"}"#,
                &[],
            ))
            .await,
    );
    assert_eq!(status, 200);
    let (status, problem) = read_json(
        &sys.command
            .handle(change_status(&id, r#"{"status":"CANCELLED"}"#, &[]))
            .await,
    );
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["type"], "/problems/illegal-transition");
    assert_eq!(problem["currentStatus"], "SHIPPED");
    assert_eq!(problem["allowedStatuses"], serde_json::json!(["DELIVERED"]));

    // Bad input.
    let cases = [
        (
            uuid::Uuid::now_v7().to_string(),
            r#"{"status":"CONFIRMED"}"#,
            vec![],
            404,
        ),
        (
            "not-a-uuid".to_string(),
            r#"{"status":"CONFIRMED"}"#,
            vec![],
            400,
        ),
        (id.clone(), r#"{"status":"LOST"}"#, vec![], 422),
        (id.clone(), r#"{"state":"DELIVERED"}"#, vec![], 400),
        (id.clone(), "nope", vec![], 400),
        (
            id.clone(),
            r#"{"status":"DELIVERED"}"#,
            vec![("if-match", "three")],
            400,
        ),
    ];
    for (target, body, headers, want) in cases {
        let (status, problem) = read_json(
            &sys.command
                .handle(change_status(&target, body, &headers))
                .await,
        );
        assert_eq!(status, want, "{target} {body}: {problem}");
    }

    // Idempotent: a retried delivery confirmation is replayed, not applied twice.
    let key = [("idempotency-key", "deliver-1")];
    let first = read_json(
        &sys.command
            .handle(change_status(&id, r#"{"status":"DELIVERED"}"#, &key))
            .await,
    );
    let again = sys
        .command
        .handle(change_status(&id, r#"{"status":"DELIVERED"}"#, &key))
        .await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(read_json(&again), first);
    assert_eq!(first.1["version"], 4);

    // The write model: history rows and one outbox event per change, with the right types.
    assert_eq!(
        sys.pg.psql("orders", &format!("SELECT string_agg(event_type || ':' || order_version, ',' ORDER BY order_version) FROM outbox WHERE order_id = '{id}'")),
        "OrderCreated:1,OrderStatusChanged:2,OrderStatusChanged:3,OrderStatusChanged:4"
    );
    assert_eq!(sys.count("order_status_history"), 3);

    // The read model converges on version 4 with the whole history.
    assert_eq!(sys.drain(4, Duration::from_secs(20)).await, 4);
    let response = sys.query.handle(get_order(&id)).await;
    let (status, view) = read_json(&response);
    assert_eq!(status, 200);
    assert_eq!(
        (view["status"].as_str(), view["version"].as_i64()),
        (Some("DELIVERED"), Some(4))
    );
    let history: Vec<_> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["to"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["CONFIRMED", "SHIPPED", "DELIVERED"]);
    assert_eq!(view["history"][1]["reason"], "DHL 123");
    assert!(sys.verify().await.is_clean());

    // Conditional GET.
    let mut conditional = get_order(&id);
    conditional
        .headers_mut()
        .insert(header::IF_NONE_MATCH, "\"4\"".parse().unwrap());
    let response = sys.query.handle(conditional).await;
    assert_eq!(response.status(), 304);
    assert_eq!(response.headers()[header::ETAG], "\"4\"");
    let mut stale = get_order(&id);
    stale
        .headers_mut()
        .insert(header::IF_NONE_MATCH, "\"3\"".parse().unwrap());
    assert_eq!(sys.query.handle(stale).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_order_gets_a_notice_and_links_to_its_documents() {
    let sys = TestSystem::start(false).await;
    let id = create(&sys, "cancel").await;
    let (status, _) = read_json(
        &sys.command
            .handle(change_status(
                &id,
                r#"{"status":"CANCELLED","reason":"ordered twice"}"#,
                &[],
            ))
            .await,
    );
    assert_eq!(status, 200);
    assert_eq!(
        sys.pg.psql(
            "orders",
            &format!("SELECT event_type FROM outbox WHERE order_id = '{id}' AND order_version = 2")
        ),
        "OrderCancelled"
    );
    assert_eq!(sys.drain(2, Duration::from_secs(20)).await, 2);

    assert_cancelled_with_both_documents(&sys, &id).await;
}

/// SQS does not keep order: the cancellation can project first, and the creation event that
/// arrives after it is stale. The receipt the view links to must exist all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_projected_before_its_creation_still_leaves_both_documents() {
    let sys = TestSystem::start(false).await;
    let id = create(&sys, "cancel-first").await;
    let (status, _) = read_json(
        &sys.command
            .handle(change_status(
                &id,
                r#"{"status":"CANCELLED","reason":"ordered twice"}"#,
                &[],
            ))
            .await,
    );
    assert_eq!(status, 200);
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while records.len() < 2 && std::time::Instant::now() < deadline {
        records.extend(sys.receive(Duration::from_secs(1)).await);
    }
    assert_eq!(records.len(), 2, "both events delivered");
    // Cancellation first, then the creation event (stale by then).
    records.sort_by_key(|r| !r.body.as_deref().unwrap_or("").contains("OrderCancelled"));
    for record in records {
        assert!(sys
            .project(vec![record])
            .await
            .batch_item_failures
            .is_empty());
    }
    assert_cancelled_with_both_documents(&sys, &id).await;
}

/// The view shows the cancellation, both documents are stored, and its presigned links serve them.
async fn assert_cancelled_with_both_documents(sys: &TestSystem, id: &str) {
    let (status, view) = read_json(&sys.query.handle(get_order(id)).await);
    assert_eq!(status, 200);
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(
        view["cancellationKey"],
        format!("receipts/{id}/cancellation.html").as_str()
    );
    // The receipt (written by both versions, same bytes) and the notice (version 2 only).
    assert_eq!(
        sys.receipt_keys(id).await,
        [
            format!("receipts/{id}/cancellation.html"),
            format!("receipts/{id}/receipt.html")
        ]
    );
    for (link, must_contain) in [
        ("receiptUrl", "78.00 USD"),
        ("cancellationUrl", "ordered twice"),
    ] {
        let url = view[link]
            .as_str()
            .unwrap_or_else(|| panic!("{link} missing: {view}"));
        assert!(
            url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=300"),
            "{url}"
        );
        // Under IAM enforcement: moto checks the signer's (the query role's) s3:GetObject.
        let page = http_get(url).await;
        assert!(page.contains(must_contain), "{link}: {page}");
    }
}

/// Fetches a URL (the presigned links point at moto here).
async fn http_get(url: &str) -> String {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client
        .get(url.parse().unwrap())
        .await
        .expect("GET presigned URL");
    assert_eq!(response.status(), 200, "{url}");
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_listing_pages_newest_first_and_refuses_bad_cursors() {
    let sys = TestSystem::start(false).await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(create(&sys, "alice").await);
    }
    for _ in 0..2 {
        create(&sys, "bob").await;
    }
    for id in &mine[..2] {
        assert_eq!(
            read_json(
                &sys.command
                    .handle(change_status(id, r#"{"status":"CONFIRMED"}"#, &[]))
                    .await
            )
            .0,
            200
        );
    }
    assert_eq!(sys.drain(9, Duration::from_secs(30)).await, 9);

    // Page through two at a time.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    let mut pages = 0;
    loop {
        let (status, page) = read_json(&sys.query.handle(list_orders("alice", &query)).await);
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert_eq!(item["customerId"], "alice");
            seen.push((
                item["createdAt"].as_str().unwrap().to_string(),
                item["orderId"].as_str().unwrap().to_string(),
            ));
        }
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10);
    }
    let mut expected = mine.clone();
    expected.reverse();
    assert_eq!(
        seen.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(),
        expected,
        "newest first, each once"
    );
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0));

    let (_, confirmed) = read_json(
        &sys.query
            .handle(list_orders("alice", "status=CONFIRMED"))
            .await,
    );
    let ids: Vec<_> = confirmed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine[1].as_str(), mine[0].as_str()]);
    assert!(confirmed.get("nextCursor").is_none());

    let (_, bobs) = read_json(&sys.query.handle(list_orders("bob", "limit=1")).await);
    assert_eq!(bobs["items"].as_array().unwrap().len(), 1);
    let bob_cursor = bobs["nextCursor"].as_str().unwrap().to_string();
    let mut tampered: Vec<char> = bob_cursor.chars().collect();
    tampered[5] = if tampered[5] == 'x' { 'y' } else { 'x' };
    let tampered: String = tampered.into_iter().collect();
    for (query, kind) in [
        (format!("cursor={bob_cursor}"), "/problems/invalid-cursor"),
        (format!("cursor={tampered}"), "/problems/invalid-cursor"),
        ("cursor=garbage".to_string(), "/problems/invalid-cursor"),
        ("limit=0".to_string(), "/problems/invalid-limit"),
        ("limit=101".to_string(), "/problems/invalid-limit"),
        ("limit=ten".to_string(), "/problems/invalid-limit"),
        ("status=LOST".to_string(), "/problems/invalid-status"),
    ] {
        let (status, problem) = read_json(&sys.query.handle(list_orders("alice", &query)).await);
        assert_eq!(
            (status, problem["type"].as_str()),
            (400, Some(kind)),
            "{query}: {problem}"
        );
        assert!(
            !problem.to_string().contains("bob"),
            "nothing about another customer leaks: {problem}"
        );
    }
    let (status, empty) = read_json(&sys.query.handle(list_orders("nobody", "")).await);
    assert_eq!(status, 200);
    assert_eq!(empty["items"], serde_json::json!([]));
}
