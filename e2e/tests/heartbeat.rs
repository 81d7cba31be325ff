//! The read model's lag canary: a relay run publishes a heartbeat through the real topic and
//! queue, the updater keeps it in its one item with its lag, and it never shows up as an
//! order (not by id, not in a listing, not in `verify`).

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::logs::Captured;
use e2e::system::{get_order, list_orders, read_json, TestSystem};
use orders::domain::heartbeat::{Heartbeat, HEARTBEAT_EVENT_TYPE, HEARTBEAT_ITEM_KEY};
use std::time::Duration;
use tracing::instrument::WithSubscriber;

async fn heartbeat_item(sys: &TestSystem) -> std::collections::HashMap<String, AttributeValue> {
    aws_sdk_dynamodb::Client::new(&sys.aws)
        .get_item()
        .table_name(&sys.resources.table)
        .key("orderId", AttributeValue::S(HEARTBEAT_ITEM_KEY.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the heartbeat item exists")
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_else(|| panic!("{name} missing: {item:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_run_sends_a_heartbeat_the_updater_projects_and_no_listing_shows() {
    let sys = TestSystem::start(false).await;
    let ids = sys.create_orders(&["canary-customer".to_string()]).await;
    let publisher = orders::sns::EventPublisher::new(
        &sys.roles.config_of("relay", &sys.aws),
        sys.resources.topic_arn.clone(),
        Duration::from_secs(2),
    );
    let relay = relay::Relay::new(
        sys.store.pool().clone(),
        publisher,
        e2e::system::relay_settings(),
    );
    let before = orders::domain::order::now_micros();
    let report = relay
        .handle(serde_json::json!({}))
        .await
        .expect("relay run");
    assert_eq!(
        report.published, 0,
        "the order was published by its command"
    );

    // The order's event and the heartbeat, with the heartbeat's eventType attribute.
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while records.len() < 2 && std::time::Instant::now() < deadline {
        records.extend(sys.receive(Duration::from_secs(1)).await);
    }
    assert_eq!(records.len(), 2, "{records:?}");
    let envelope: serde_json::Value = records
        .iter()
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap()).unwrap())
        .find(|b: &serde_json::Value| {
            b["Message"]
                .as_str()
                .unwrap_or("")
                .contains(HEARTBEAT_EVENT_TYPE)
        })
        .expect("a heartbeat on the queue");
    assert_eq!(
        envelope["MessageAttributes"]["eventType"]["Value"],
        HEARTBEAT_EVENT_TYPE
    );
    let sent: Heartbeat =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).expect("heartbeat body");
    let mut late = records[0].clone();

    let logs = Captured::default();
    let writer = logs.clone();
    let response = sys
        .project(records)
        .with_subscriber(orders::telemetry::json_subscriber(move || writer.clone()))
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    // The updater logged the heartbeat's lag, and the batch line carries it.
    let lines = logs.lines();
    let projected = lines
        .iter()
        .find(|l| l["message"] == "heartbeat projected")
        .unwrap_or_else(|| panic!("no heartbeat line in {lines:?}"));
    let lag = projected["heartbeat_lag_ms"].as_f64().expect("lag");
    let batch = lines
        .iter()
        .find(|l| l["message"] == "batch projected")
        .expect("batch line");
    assert_eq!(batch["heartbeat_lag_ms"].as_f64(), Some(lag));
    assert_eq!(
        batch["applied"], 1,
        "the order counts; the heartbeat does not"
    );

    // One item, stamped with the heartbeat's emission; a plausible lag (it went through SNS
    // and SQS after `before`, and was projected before now).
    let item = heartbeat_item(&sys).await;
    assert_eq!(text(&item, "eventId"), sent.event_id.to_string());
    assert!(sent.emitted_at >= before);
    let upper = (orders::domain::order::now_micros() - before).as_seconds_f64() * 1000.0;
    assert!(
        lag > 0.0 && lag <= upper,
        "lag {lag} ms, at most {upper} ms"
    );
    assert!(!item.contains_key("customerId"), "{item:?}");

    // An older heartbeat delivered late does not replace a newer one.
    let mut older = sent.clone();
    older.event_id = uuid::Uuid::now_v7();
    older.emitted_at = sent.emitted_at - time::Duration::seconds(60);
    late.message_id = Some("late-heartbeat".into());
    late.body = Some(serde_json::to_string(&older).unwrap());
    assert!(sys.project(vec![late]).await.batch_item_failures.is_empty());
    assert_eq!(
        text(&heartbeat_item(&sys).await, "eventId"),
        sent.event_id.to_string()
    );

    // Never an order: not by id, not in a listing, not in verify.
    let (status, _) = read_json(&sys.query.handle(get_order(HEARTBEAT_ITEM_KEY)).await);
    assert_ne!(status, 200);
    let (status, page) = read_json(&sys.query.handle(list_orders("canary-customer", "")).await);
    assert_eq!(status, 200, "{page}");
    let listed: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["orderId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
    let report = sys.verify().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.views_checked, 1, "the heartbeat item is not a view");
}
