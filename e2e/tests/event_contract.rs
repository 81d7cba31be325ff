//! The events contract, `asyncapi.yaml`: every event type, published through the real command
//! and relay paths, arrives in SQS in a documented shape (raw delivery and SNS envelope); the
//! `events/` samples match it; a planted deviation does not; and a schema version 1 event, from
//! the outbox or straight on the queue, is still projected after the version 2 change.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use e2e::event_contract::{contract, document, EventContract};
use e2e::system::{
    change_address, change_status, get_order, order_body, post_order, read_json, TestSystem,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const ADDRESS: &str = r#"{"recipient":"Ada Lovelace","line1":"12 St James's Square","city":"London","postalCode":"SW1Y 4JH","country":"GB"}"#;

/// Receives until `count` messages arrived (each checked by `receive`); returns them.
async fn receive_all(sys: &TestSystem, count: usize) -> Vec<SqsMessage> {
    let mut records: Vec<SqsMessage> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while records.len() < count && std::time::Instant::now() < deadline {
        for r in sys.receive(Duration::from_secs(2)).await {
            if !records.iter().any(|k| k.message_id == r.message_id) {
                records.push(r);
            }
        }
    }
    assert_eq!(records.len(), count, "messages on the queue");
    records
}

/// Publishes every event type (one `OrderCreated` through the relay), then checks what SNS
/// delivered: each matches exactly the version 2 message of its type. (The heartbeat is
/// checked by e2e/tests/heartbeat.rs, whose deliveries pass through the same validation.)
async fn every_event_type_matches_the_contract(raw_delivery: bool) {
    let sys = TestSystem::start(raw_delivery).await;
    let before = e2e::event_contract::validated_count();
    let id = sys.create_orders(&["contract".into()]).await.remove(0);
    let ok = |r: &lambda_http::Response<lambda_http::Body>| read_json(r).0;
    let confirm = change_status(&id, r#"{"status":"CONFIRMED"}"#, &[]);
    assert_eq!(ok(&sys.command.handle(confirm).await), 200);
    assert_eq!(
        ok(&sys.command.handle(change_address(&id, ADDRESS, &[])).await),
        200
    );
    let cancel = change_status(
        &id,
        r#"{"status":"CANCELLED","reason":"changed my mind"}"#,
        &[],
    );
    assert_eq!(ok(&sys.command.handle(cancel).await), 200);
    // One event that only the relay publishes (SNS was unreachable for the command).
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let unpublished = sys.command_publishing_via(&dead, Duration::from_millis(300));
    let body = order_body("contract-relay");
    assert_eq!(ok(&unpublished.handle(post_order(&body)).await), 201);
    assert_eq!(sys.relay().await.published, 1);

    let records = receive_all(&sys, 5).await;
    // At least these (tests in this binary run side by side and count too).
    assert!(e2e::event_contract::validated_count() - before >= records.len());
    let mut matched: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        let key = contract().check_record(record).unwrap();
        *matched.entry(key).or_default() += 1;
        if raw_delivery {
            let version = &record.message_attributes["schemaVersion"];
            assert_eq!(version.data_type.as_deref(), Some("Number"));
        }
    }
    let want = [
        ("OrderCancelled", 1),
        ("OrderCreated", 2),
        ("OrderStatusChanged", 1),
        ("ShippingAddressChanged", 1),
    ];
    let want: BTreeMap<String, usize> = want.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    assert_eq!(matched, want);
    let response = sys.project(records).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert!(sys.verify().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_matches_the_contract_with_raw_delivery() {
    every_event_type_matches_the_contract(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_matches_the_contract_in_the_sns_envelope() {
    every_event_type_matches_the_contract(false).await;
}

/// A raw-delivery record of `payload` with the attributes the relay would send.
fn raw_record(payload: &Value, attributes: &[(&str, &str, &str)]) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.body = Some(payload.to_string());
    for (name, data_type, value) in attributes {
        let mut a = aws_lambda_events::sqs::SqsMessageAttribute::default();
        a.data_type = Some(data_type.to_string());
        a.string_value = Some(value.to_string());
        record.message_attributes.insert(name.to_string(), a);
    }
    record
}

fn sample_records(name: &str) -> Vec<SqsMessage> {
    let path = e2e::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<SqsEvent>(&text).unwrap().records
}

/// The raw-delivery record of the `sqs-order-created.json` sample: a version 2 event.
fn sample_v2() -> (Value, Vec<(&'static str, &'static str, String)>) {
    let record = sample_records("sqs-order-created.json").remove(1);
    let payload: Value = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
    let attributes = vec![
        ("eventType", "String", "OrderCreated".to_string()),
        (
            "orderId",
            "String",
            payload["orderId"].as_str().unwrap().to_string(),
        ),
        ("schemaVersion", "Number", "2".to_string()),
    ];
    (payload, attributes)
}

fn check(
    contract: &EventContract,
    payload: &Value,
    attributes: &[(&str, &str, String)],
) -> Result<String, String> {
    let attributes: Vec<(&str, &str, &str)> = attributes
        .iter()
        .map(|(n, t, v)| (*n, *t, v.as_str()))
        .collect();
    contract.check_record(&raw_record(payload, &attributes))
}

#[test]
fn every_sample_event_matches_the_contract() {
    let mut keys = Vec::new();
    for name in ["sqs-order-created.json", "sqs-order-created-v1.json"] {
        for record in sample_records(name) {
            keys.push(
                contract()
                    .check_record(&record)
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            );
        }
    }
    assert_eq!(
        keys,
        [
            "OrderCreated",
            "OrderCreated",
            "OrderCreatedV1",
            "OrderCreatedV1"
        ]
    );
    let poison = sample_records("sqs-poison-message.json");
    assert!(contract().check_record(&poison[0]).is_ok());
    assert!(contract().check_record(&poison[1]).is_err(), "not JSON");
}

/// One change to a valid event that the contract must refuse.
type Plant = fn(&mut Value);

#[test]
fn a_planted_deviation_is_caught() {
    let (good, attributes) = sample_v2();
    assert_eq!(
        check(contract(), &good, &attributes).unwrap(),
        "OrderCreated"
    );
    let planted: [(&str, Plant); 7] = [
        ("orderVersion as a string", |v| {
            v["orderVersion"] = "1".into()
        }),
        ("unknown envelope field", |v| v["priority"] = "high".into()),
        ("v2 with the v1 id name", |v| {
            let order = v["order"].as_object_mut().unwrap();
            let id = order.remove("orderId").unwrap();
            order.insert("id".into(), id);
        }),
        ("a version nobody wrote", |v| v["schemaVersion"] = 3.into()),
        ("a negative total", |v| v["order"]["total"] = (-1).into()),
        ("a created order already confirmed", |v| {
            v["order"]["status"] = "CONFIRMED".into()
        }),
        ("a timestamp without microseconds", |v| {
            v["occurredAt"] = "2026-11-22T10:15:30Z".into()
        }),
    ];
    for (what, plant) in planted {
        let mut bad = good.clone();
        plant(&mut bad);
        assert!(
            check(contract(), &bad, &attributes).is_err(),
            "{what} passed"
        );
    }
    // Attributes: a wrong data type, a missing one, one the contract does not know.
    let mut wrong_type = attributes.clone();
    wrong_type[2].1 = "String";
    assert!(check(contract(), &good, &wrong_type).is_err());
    assert!(
        check(contract(), &good, &attributes[..2]).is_err(),
        "schemaVersion missing"
    );
    let mut extra = attributes.clone();
    extra.push(("tenant", "String", "t-1".into()));
    assert!(check(contract(), &good, &extra).is_err());
    // And the other way round: a contract that says `total` is a string rejects a real event.
    let mut doc = document();
    doc["components"]["schemas"]["Money"] = json!({"type": "string"});
    assert!(check(&EventContract::new(doc), &good, &attributes).is_err());
}

#[test]
fn the_event_snapshot_is_the_orders_shape_in_openapi() {
    let openapi: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(e2e::workspace_root().join("openapi.yaml")).unwrap(),
    )
    .unwrap();
    let names = |v: &Value| -> Vec<String> {
        let mut n: Vec<String> = v["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        n.sort();
        n
    };
    let doc = document();
    assert_eq!(
        names(&doc["components"]["schemas"]["OrderV2"]),
        names(&openapi["components"]["schemas"]["Order"])
    );
}

/// The v1 shape of an order's first event, read from the outbox after rewriting it.
fn outbox_payload(sys: &TestSystem, order_id: &str) -> Value {
    let text = sys.pg.psql(
        e2e::postgres::DATABASE,
        &format!("SELECT payload::text FROM outbox WHERE order_id = '{order_id}'"),
    );
    serde_json::from_str(text.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_events_from_the_outbox_and_the_queue_are_still_projected() {
    let sys = TestSystem::start(true).await;
    // An order whose event stayed in the outbox, rewritten as a version 1 release wrote it.
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let unpublished = sys.command_publishing_via(&dead, Duration::from_millis(300));
    let (status, created) = read_json(&unpublished.handle(post_order(&order_body("old-1"))).await);
    assert_eq!(status, 201);
    let id = created["orderId"].as_str().unwrap();
    sys.store_outbox_as_v1(id);
    let stored = outbox_payload(&sys, id);
    assert_eq!(
        (
            stored["schemaVersion"].as_u64(),
            stored["order"]["id"].as_str()
        ),
        (Some(1), Some(id))
    );
    assert!(stored["order"].get("orderId").is_none() && stored["order"].get("history").is_none());

    assert_eq!(sys.relay().await.published, 1);
    let records = receive_all(&sys, 1).await;
    // The relay sent the stored event's own version, in the body and in the attribute.
    assert_eq!(
        contract().check_record(&records[0]).unwrap(),
        "OrderCreatedV1"
    );
    let attribute = &records[0].message_attributes["schemaVersion"];
    assert_eq!(attribute.string_value.as_deref(), Some("1"));

    // A second version 1 event sent straight to the queue (say, redriven from the DLQ).
    let id2 = sys.create_orders(&["old-2".into()]).await.remove(0);
    let fresh = receive_all(&sys, 1).await;
    let mut v1: Value = serde_json::from_str(fresh[0].body.as_deref().unwrap()).unwrap();
    v1["schemaVersion"] = 1.into();
    let order = v1["order"].as_object_mut().unwrap();
    let order_id = order.remove("orderId").unwrap();
    order.insert("id".into(), order_id);
    order.remove("history");
    let v1_attributes = [
        ("eventType", "String", "OrderCreated"),
        ("orderId", "String", id2.as_str()),
    ];
    assert_eq!(
        contract()
            .check_record(&raw_record(&v1, &v1_attributes))
            .unwrap(),
        "OrderCreatedV1"
    );
    sys.sqs
        .send_message()
        .queue_url(&sys.resources.queue_url)
        .message_body(v1.to_string())
        .send()
        .await
        .unwrap();
    let direct = receive_all(&sys, 1).await;
    assert_eq!(direct[0].body.as_deref(), Some(v1.to_string().as_str()));

    let response = sys
        .project(records.into_iter().chain(direct).collect())
        .await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    for id in [id, id2.as_str()] {
        let (status, view) = read_json(&sys.query.handle(get_order(id)).await);
        assert_eq!(
            (status, view["orderId"].as_str(), view["version"].as_u64()),
            (200, Some(id), Some(1))
        );
        assert_eq!(view["history"], json!([]));
    }
    // The read model is exactly what the write model says: nothing was lost in the upcast.
    let drift = sys.verify().await;
    assert!(drift.is_clean(), "{:?}", drift.drift);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_newer_than_known_is_a_batch_item_failure() {
    let sys = TestSystem::start(true).await;
    sys.create_orders(&["future".into()]).await;
    let mut records = receive_all(&sys, 1).await;
    let mut newer: Value = serde_json::from_str(records[0].body.as_deref().unwrap()).unwrap();
    newer["schemaVersion"] = (orders::domain::event::SCHEMA_VERSION + 1).into();
    records[0].body = Some(newer.to_string());
    assert!(
        contract().check_record(&records[0]).is_err(),
        "not in the contract either"
    );
    let id = records[0].message_id.clone().unwrap();
    let response = sys.project(records).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [id]);
}
