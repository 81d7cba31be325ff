//! Faults that are not clean: PostgreSQL black-holed (packets dropped, not refused) mid-stream,
//! and DynamoDB or S3 that accept one record's requests and never answer them. Each ends with
//! the system serving again and the write and read models in agreement. (A row lock held past
//! the server's timeout, a crashed backend, and a DynamoDB that never answers anything, for the
//! query and the updater, are in `failures.rs`.)
//!
//! A hang that the code under test does not bound would hang the test; each call is guarded so
//! that such a regression fails with a message instead (the guard is generous: it is not a
//! latency assertion).

use aws_lambda_events::sqs::SqsEvent;
use e2e::aws::sdk_config_for;
use e2e::fault_proxy::{FaultProxy, TcpFaultProxy};
use e2e::postgres::DATABASE;
use e2e::system::{get_order, order_body, post_order, read_json, TestSystem};
use orders::aws::{with_budget, SdkBudget};
use std::future::Future;
use std::time::Duration;

/// Awaits `work`, failing the test if it never finishes (the fault was not bounded).
async fn guard<T>(what: &str, work: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 120 s; the hang is not bounded"))
}

/// SDK configuration for an updater that talks to moto through `proxy`, with the bounds the
/// updater function uses, so a hung call ends in time.
async fn updater_aws_via(proxy: &FaultProxy) -> aws_config::SdkConfig {
    with_budget(&sdk_config_for(&proxy.endpoint()).await, SdkBudget::UPDATER)
}

fn assert_clean(report: &orders::reconcile::DriftReport) {
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_database_answers_503_and_serves_again_once_restored() {
    let sys = TestSystem::start(false).await;
    let proxy = TcpFaultProxy::start(sys.pg.port).await;
    let mut db = sys.pg.db_config();
    db.port = proxy.port;
    let app = sys.command_on(&db).await;
    let (status, body) = read_json(&app.handle(post_order(&order_body("before"))).await);
    assert_eq!(status, 201, "{body}");

    // The pooled connection falls silent mid-stream; new ones are accepted and never answered.
    proxy.black_hole();
    let response = guard(
        "POST while black-holed",
        app.handle(post_order(&order_body("during"))),
    )
    .await;
    let (status, problem) = read_json(&response);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/service-unavailable");

    // Restored: the silent connection must not be handed out again.
    proxy.restore();
    let response = guard(
        "POST after the black hole",
        app.handle(post_order(&order_body("after"))),
    )
    .await;
    let (status, body) = read_json(&response);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        sys.pg.psql(
            DATABASE,
            "SELECT string_agg(customer_id, ',' ORDER BY created_at) FROM orders"
        ),
        "before,after",
        "the order sent into the black hole was not written"
    );
    assert_eq!(sys.drain(2, Duration::from_secs(30)).await, 2);
    assert_clean(&sys.verify().await);
}

/// Projects the queued records with an updater whose DynamoDB and S3 calls go through a proxy
/// that hangs those matching `marker(order id)` for the first order: that record alone is
/// reported failed, the others are projected; redelivered once the fault clears, it converges.
async fn hung_store_fails_only_its_record(marker: impl Fn(&TestSystem, &str) -> String) {
    let sys = TestSystem::start(false).await;
    let ids = sys
        .create_orders(&["hung".into(), "fine-1".into(), "fine-2".into()])
        .await;
    let proxy = FaultProxy::start(sys.moto.endpoint()).await;
    proxy.hang(&marker(&sys, &ids[0]));
    let updater = sys.projector_via(&updater_aws_via(&proxy).await);

    let mut records = Vec::new();
    while records.len() < 3 {
        let batch = sys.receive(Duration::from_secs(5)).await;
        assert!(!batch.is_empty(), "the three events were delivered");
        records.extend(batch);
    }
    let mut event = SqsEvent::default();
    event.records = records.clone();
    let response = guard("updater with a hung store", updater.handle(event))
        .await
        .expect("the batch is handled");
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let hung_record = records
        .iter()
        .find(|r| r.body.as_deref().unwrap_or_default().contains(&ids[0]))
        .and_then(|r| r.message_id.clone())
        .expect("the hung order's record");
    assert_eq!(
        failed,
        vec![hung_record.clone()],
        "only the hung record failed"
    );
    assert!(proxy.failures() > 0, "the fault was hit");

    // Redelivery after the fault clears converges.
    proxy.clear();
    let mut again = SqsEvent::default();
    again.records = records
        .into_iter()
        .filter(|r| r.message_id.as_deref() == Some(hung_record.as_str()))
        .collect();
    let response = guard("redelivery", updater.handle(again))
        .await
        .expect("the batch is handled");
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_clean(&sys.verify().await);
    for id in &ids {
        let (status, view) = read_json(&sys.query.handle(get_order(id)).await);
        assert_eq!(status, 200, "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_dynamodb_fails_only_its_record_and_redelivery_converges() {
    // The order id as a DynamoDB string value: in PutItem and GetItem bodies only.
    hung_store_fails_only_its_record(|_, id| format!(r#"{{"S":"{id}"}}"#)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_s3_fails_only_its_record_and_redelivery_converges() {
    // The receipt path in the bucket: in S3 request paths only.
    hung_store_fails_only_its_record(|sys, id| format!("{}/receipts/{id}", sys.resources.bucket))
        .await;
}
