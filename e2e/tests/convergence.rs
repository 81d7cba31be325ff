//! No event lost, none applied twice: each fault ends with `verify` reporting zero drift.

use e2e::fault_proxy::{black_hole, FaultProxy};
use e2e::system::{order_body, post_order, read_json, relay_settings, TestSystem};
use orders::relay::relay_once;
use orders::sns::EventPublisher;
use std::time::Duration;

fn assert_converged(report: &orders::reconcile::DriftReport, orders: usize) {
    assert!(report.is_clean(), "drift: {:?}", report.drift);
    assert_eq!(report.orders_checked, orders);
    assert_eq!(report.views_checked, orders);
}

/// What a relay run did: published, failed, set aside, and the queue it left.
fn counts(report: &orders::relay::RelayReport) -> (usize, usize, usize, i64) {
    (
        report.published,
        report.failed,
        report.set_aside,
        report.backlog,
    )
}

/// Puts a copy of an event at the head of the outbox, its payload changed by `payload` (SQL
/// over the original `payload`).
fn put_at_head_of_outbox(sys: &TestSystem, payload: &str) {
    sys.pg.psql(
        "orders",
        &format!(
            "INSERT INTO outbox (event_id, order_id, event_type, order_version, occurred_at,
                                 payload)
             SELECT gen_random_uuid(), order_id, event_type, 99,
                    occurred_at - interval '1 hour', {payload}
             FROM outbox LIMIT 1"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_failing_after_commit_is_repaired_by_the_relay() {
    let sys = TestSystem::start(false).await;
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let app = sys.command_publishing_via(&dead, Duration::from_millis(500));
    for i in 0..3 {
        let (status, _) = read_json(&app.handle(post_order(&order_body(&format!("c{i}")))).await);
        assert_eq!(status, 201);
    }
    assert_eq!(sys.verify().await.drift.len(), 3, "nothing projected yet");

    let report = sys.relay().await;
    assert_eq!((report.published, report.failed, report.backlog), (3, 0, 0));
    assert_eq!(sys.drain(3, Duration::from_secs(20)).await, 3);
    assert_converged(&sys.verify().await, 3);
    // A second run finds nothing to do.
    assert_eq!(sys.relay().await.published, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_dying_between_commit_and_publish_loses_nothing() {
    let sys = TestSystem::start(false).await;
    // SNS accepts the connection and never answers; the request is then abandoned mid-publish,
    // exactly where a crash after commit would leave it.
    let hang = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", black_hole().await)).await;
    let app = sys.command_publishing_via(&hang, Duration::from_secs(300));
    let abandoned = tokio::time::timeout(
        Duration::from_secs(3),
        app.handle(post_order(&order_body("crash"))),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the request was still publishing when it was cut off"
    );
    assert_eq!(sys.count("orders"), 1, "the order was committed");
    assert_eq!(
        sys.pg.psql(
            "orders",
            "SELECT (published_at IS NULL) || ' ' || attempts FROM outbox"
        ),
        "true 0",
        "its event never left the outbox"
    );

    assert_eq!(sys.relay().await.published, 1);
    assert_eq!(sys.drain(1, Duration::from_secs(20)).await, 1);
    assert_converged(&sys.verify().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_three_times_leaves_one_item_and_one_receipt() {
    let sys = TestSystem::start(false).await;
    let (_, created) = read_json(&sys.command.handle(post_order(&order_body("dup"))).await);
    let id = created["orderId"].as_str().unwrap();
    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
    for _ in 0..3 {
        assert!(sys
            .project(records.clone())
            .await
            .batch_item_failures
            .is_empty());
    }
    assert_eq!(
        sys.receipt_keys(id).await,
        [format!("receipts/{id}/receipt.html")],
        "one receipt object, however often the record is delivered"
    );
    assert_converged(&sys.verify().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_or_s3_failing_for_some_records_fails_only_those_until_redelivery() {
    let sys = TestSystem::start(false).await;
    let customers: Vec<String> = (0..4).map(|i| format!("f{i}")).collect();
    let ids = sys.create_orders(&customers).await;
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while records.len() < 4 && std::time::Instant::now() < deadline {
        records.extend(sys.receive(Duration::from_secs(1)).await);
    }
    assert_eq!(records.len(), 4);

    let proxy = FaultProxy::start(sys.moto.endpoint()).await;
    // The DynamoDB write of order 0 fails; the S3 receipt of order 1 fails (its item is
    // written first, so the retry must complete the receipt).
    proxy.block(&format!("\"S\":\"{}\"", ids[0]));
    proxy.block(&format!("receipts/{}/", ids[1]));
    let faulty = sys.projector_via(&e2e::aws::sdk_config_for(&proxy.endpoint()).await);
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = records.clone();
    let response = faulty.handle(event).await.unwrap();
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let order_of = |message_id: &str| {
        let r = records
            .iter()
            .find(|r| r.message_id.as_deref() == Some(message_id))
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        let event: serde_json::Value =
            serde_json::from_str(body["Message"].as_str().unwrap()).unwrap();
        event["orderId"].as_str().unwrap().to_string()
    };
    let mut failed_orders: Vec<String> = failed.iter().map(|m| order_of(m)).collect();
    failed_orders.sort();
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    assert_eq!(
        failed_orders, want,
        "only the records that hit a fault failed"
    );
    assert!(proxy.failures() >= 2);
    assert!(!sys.verify().await.is_clean());

    // Redelivery of the failed records, with the fault gone.
    proxy.clear();
    let mut retry = aws_lambda_events::sqs::SqsEvent::default();
    retry.records = records
        .into_iter()
        .filter(|r| failed.contains(r.message_id.as_ref().unwrap()))
        .collect();
    assert!(faulty
        .handle(retry)
        .await
        .unwrap()
        .batch_item_failures
        .is_empty());
    assert_eq!(sys.receipt_keys(&ids[1]).await.len(), 1);
    assert_converged(&sys.verify().await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_reported_failed_and_disturb_nothing_else() {
    let sys = TestSystem::start(true).await;
    let (_, created) = read_json(&sys.command.handle(post_order(&order_body("good"))).await);
    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
    let good = records[0].clone();
    let event: serde_json::Value = serde_json::from_str(good.body.as_deref().unwrap()).unwrap();
    let mut newer_schema = event.clone();
    newer_schema["schemaVersion"] = (orders::domain::event::SCHEMA_VERSION + 1).into();
    let mut unknown_type = event.clone();
    unknown_type["eventType"] = "OrderRefunded".into();
    let bad_bodies = [
        ("not-json", "<xml>nope</xml>".to_string()),
        ("not-an-event", r#"{"orderId": 42}"#.to_string()),
        ("unknown-type", unknown_type.to_string()),
        ("newer-schema", newer_schema.to_string()),
    ];
    let mut batch = vec![good];
    for (id, body) in &bad_bodies {
        let mut r = batch[0].clone();
        r.message_id = Some(id.to_string());
        r.body = Some(body.clone());
        batch.push(r);
    }
    let response = sys.project(batch).await;
    let mut failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        ["newer-schema", "not-an-event", "not-json", "unknown-type"]
    );
    assert_eq!(created["orderId"].as_str().map(|s| s.len()), Some(36));
    assert_converged(&sys.verify().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_relays_never_publish_an_event_twice() {
    let sys = TestSystem::start(false).await;
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let app = sys.command_publishing_via(&dead, Duration::from_millis(300));
    let n = 12;
    for i in 0..n {
        assert_eq!(
            read_json(&app.handle(post_order(&order_body(&format!("r{i}")))).await).0,
            201
        );
    }
    // Relay A claims the six oldest events and hangs publishing them (SNS never answers),
    // holding its claim: the relays overlap for as long as the test needs, not by chance.
    let hang = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", black_hole().await)).await;
    let stuck = EventPublisher::new(
        &hang,
        sys.resources.topic_arn.clone(),
        Duration::from_secs(300),
    );
    let mut claim_six = relay_settings();
    claim_six.batch_size = 6;
    claim_six.max_batches = 1;
    let pool = sys.store.pool().clone();
    let a = tokio::spawn(async move { relay_once(&pool, &stuck, &claim_six).await });
    let unlocked = "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL
                    FOR UPDATE SKIP LOCKED) free";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sys.pg.psql("orders", unlocked) != "6" {
        assert!(
            std::time::Instant::now() < deadline,
            "relay A never claimed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Relay B runs to the end while A still holds its claim: it must skip A's rows (not wait
    // for them, not publish them).
    let b = sys.relay().await;
    assert!(!a.is_finished(), "relay B waited for relay A's rows");
    assert_eq!((b.published, b.failed, b.backlog), (6, 0, 6), "{b:?}");

    // A dies mid-publish (as a timed-out function would); its events are published later.
    a.abort();
    assert!(a.await.unwrap_err().is_cancelled());
    // Dropping A's transaction sends its ROLLBACK without waiting: its locks go a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sys.pg.psql("orders", unlocked) != "6" {
        assert!(
            std::time::Instant::now() < deadline,
            "relay A's claim outlived it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = sys.relay().await;
    assert_eq!((c.published, c.backlog), (6, 0), "{c:?}");
    assert_eq!(sys.drain(n, Duration::from_secs(30)).await, n);
    assert!(
        sys.receive(Duration::from_secs(2)).await.is_empty(),
        "no duplicate reached the queue"
    );
    assert_converged(&sys.verify().await, n);
}

/// The largest order validation allows, near enough: 100 lines whose SKU (64 characters) and
/// name (200) are 4-byte characters. Its event is over 100 KB, so three exceed one batch.
fn large_order_body(customer: &str) -> String {
    let wide = |n: usize| "\u{1D11E}".repeat(n);
    let lines: Vec<_> = (0..100)
        .map(|i| {
            serde_json::json!({
                "sku": format!("{i:03}{}", wide(61)),
                "name": wide(200),
                "quantity": 1,
                "unitPrice": 100
            })
        })
        .collect();
    serde_json::json!({
        "customer": {"id": customer, "name": "Big Spender", "email": "big@example.com"},
        "currency": "EUR",
        "lines": lines
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_at_the_head_of_the_outbox_do_not_block_the_relay() {
    // Raw delivery: moto's SNS envelope escapes every 4-byte character into 12 bytes, which
    // would push these messages over SQS's limit (AWS's envelope keeps them as UTF-8).
    let sys = TestSystem::start(true).await;
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let app = sys.command_publishing_via(&dead, Duration::from_millis(300));
    let (large, small) = (100, 20);
    for i in 0..large + small {
        let body = if i < large {
            large_order_body(&format!("big{i}"))
        } else {
            order_body(&format!("small{i}"))
        };
        let (status, problem) = read_json(&app.handle(post_order(&body)).await);
        assert_eq!(status, 201, "{problem}");
    }
    let sizes = sys.pg.psql(
        "orders",
        "SELECT count(*) || ' ' || min(octet_length(payload::text)) FROM outbox
         WHERE octet_length(payload::text) > 10000",
    );
    let (count, smallest) = sizes.split_once(' ').unwrap();
    assert_eq!(count, large.to_string(), "the large events");
    let smallest: usize = smallest.parse().unwrap();
    assert!(
        smallest * 3 > orders::sns::MAX_PAYLOAD_BYTES,
        "three large events must exceed one batch: {smallest} bytes each"
    );

    // SNS through a proxy that refuses what AWS refuses: a batch over 256 KiB in total.
    let proxy = FaultProxy::start(sys.moto.endpoint()).await;
    proxy.refuse_when(e2e::sns_limits::publish_batch_refusal);
    let mut settings = relay_settings();
    settings.batch_size = 40;
    let report = relay_via(&sys, &proxy, &settings).await;
    assert_eq!(proxy.failures(), 0, "a batch over SNS's limits was sent");
    assert_eq!(counts(&report), (large + small, 0, 0, 0), "{report:?}");
    assert_eq!(
        sys.drain(large + small, Duration::from_secs(120)).await,
        large + small
    );
    assert_converged(&sys.verify().await, large + small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sns_will_never_accept_is_set_aside_and_the_rest_is_relayed() {
    let sys = TestSystem::start(false).await;
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let app = sys.command_publishing_via(&dead, Duration::from_millis(300));
    for i in 0..3 {
        assert_eq!(
            read_json(&app.handle(post_order(&order_body(&format!("q{i}")))).await).0,
            201
        );
    }
    // At the head of the queue, an event over SNS's 256 KiB message limit (as a later schema
    // or a hand-made row could produce): no publish of it can ever succeed.
    put_at_head_of_outbox(
        &sys,
        "payload || jsonb_build_object('padding', repeat('x', 300000))",
    );
    let first = sys.relay().await;
    assert_eq!(
        (
            first.published,
            first.failed,
            first.set_aside,
            first.backlog,
            first.set_aside_total
        ),
        (3, 0, 1, 0, 1),
        "{first:?}"
    );
    let kept = sys.pg.psql(
        "orders",
        "SELECT attempts || ' ' || (last_error LIKE '%256%' OR last_error LIKE '%262144%')
         FROM outbox WHERE set_aside_at IS NOT NULL AND published_at IS NULL",
    );
    assert_eq!(kept, "1 true", "the row is kept with its error");
    // Later runs leave it alone and keep reporting it (the alarm's metric).
    let second = sys.relay().await;
    assert_eq!(
        (second.published, second.set_aside, second.set_aside_total),
        (0, 0, 1)
    );
    assert_eq!(sys.drain(3, Duration::from_secs(20)).await, 3);
    assert_converged(&sys.verify().await, 3);
}

/// Orders whose events wait in the outbox (SNS unreachable when they were placed).
async fn unpublished_orders(sys: &TestSystem, prefix: &str, n: usize) {
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let app = sys.command_publishing_via(&dead, Duration::from_millis(300));
    for i in 0..n {
        let body = order_body(&format!("{prefix}{i}"));
        assert_eq!(read_json(&app.handle(post_order(&body)).await).0, 201);
    }
}

/// A relay run whose SNS calls go through `proxy`, as the relay function (its role).
async fn relay_via(
    sys: &TestSystem,
    proxy: &FaultProxy,
    settings: &orders::relay::RelaySettings,
) -> orders::relay::RelayReport {
    let sns = sys
        .roles
        .config_of("relay", &e2e::aws::sdk_config_for(&proxy.endpoint()).await);
    let publisher = EventPublisher::new(
        &sns,
        sys.resources.topic_arn.clone(),
        Duration::from_secs(5),
    );
    relay_once(sys.store.pool(), &publisher, settings)
        .await
        .unwrap()
}

fn refuse_poisoned_batches(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    (text.contains("Action=PublishBatch") && text.contains("poison-pill"))
        .then(|| e2e::sns_limits::refusal("InvalidParameter", "Invalid parameter: Message"))
}

fn refuse_every_batch(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body)
        .contains("Action=PublishBatch")
        .then(|| e2e::sns_limits::refusal("InvalidParameter", "Invalid parameter: TopicArn"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_makes_sns_refuse_its_whole_batch_is_found_and_set_aside() {
    let sys = TestSystem::start(false).await;
    unpublished_orders(&sys, "p", 3).await;
    // At the head of the queue, an event that makes SNS refuse any call carrying it.
    put_at_head_of_outbox(&sys, "payload || jsonb_build_object('note', 'poison-pill')");
    let proxy = FaultProxy::start(sys.moto.endpoint()).await;
    proxy.refuse_when(refuse_poisoned_batches);
    let report = relay_via(&sys, &proxy, &relay_settings()).await;
    assert_eq!(counts(&report), (3, 0, 1, 0), "{report:?}");
    assert_eq!(
        sys.pg.psql(
            "orders",
            "SELECT payload->>'note' FROM outbox WHERE set_aside_at IS NOT NULL"
        ),
        "poison-pill"
    );
    assert_eq!(sys.drain(3, Duration::from_secs(20)).await, 3);
    assert_converged(&sys.verify().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_refusing_every_call_sets_nothing_aside() {
    let sys = TestSystem::start(false).await;
    unpublished_orders(&sys, "w", 3).await;
    // As a wrong topic would: every call refused, whatever it carries.
    let proxy = FaultProxy::start(sys.moto.endpoint()).await;
    proxy.refuse_when(refuse_every_batch);
    let report = relay_via(&sys, &proxy, &relay_settings()).await;
    assert_eq!(counts(&report), (0, 3, 0, 3), "{report:?}");
    // Fixed, the next run publishes them all.
    let report = sys.relay().await;
    assert_eq!((report.published, report.backlog), (3, 0), "{report:?}");
    assert_eq!(sys.drain(3, Duration::from_secs(20)).await, 3);
    assert_converged(&sys.verify().await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_restores_a_lost_read_model_without_overwriting_newer_views() {
    let sys = TestSystem::start(false).await;
    let customers: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
    let ids = sys.create_orders(&customers).await;
    assert_eq!(sys.drain(5, Duration::from_secs(20)).await, 5);
    assert_converged(&sys.verify().await, 5);

    // Lose two items, and let a "newer" view of a third appear (as if the live updater had
    // just projected version 2).
    let dynamo = aws_sdk_dynamodb::Client::new(&sys.aws);
    for id in &ids[..2] {
        dynamo
            .delete_item()
            .table_name(&sys.resources.table)
            .key(
                "orderId",
                aws_sdk_dynamodb::types::AttributeValue::S(id.clone()),
            )
            .send()
            .await
            .unwrap();
    }
    let mut newer = sys
        .read_model
        .views
        .get(ids[2].parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    newer.order.version = 2;
    sys.read_model.views.put_if_not_older(&newer).await.unwrap();
    let drift = sys.verify().await.drift;
    assert_eq!(drift.len(), 3, "{drift:?}");

    let report = orders::reconcile::rebuild(&sys.store, &sys.read_model, None, 2)
        .await
        .unwrap();
    assert_eq!((report.applied, report.stale, report.failed), (4, 1, 0));
    let view = sys
        .read_model
        .views
        .get(ids[2].parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.order.version, 2,
        "rebuild did not overwrite the newer view"
    );
    let drift = sys.verify().await.drift;
    assert_eq!(
        drift.len(),
        1,
        "only the simulated newer view differs: {drift:?}"
    );

    // Rebuilding one order.
    dynamo
        .delete_item()
        .table_name(&sys.resources.table)
        .key(
            "orderId",
            aws_sdk_dynamodb::types::AttributeValue::S(ids[4].clone()),
        )
        .send()
        .await
        .unwrap();
    let one = orders::reconcile::rebuild(
        &sys.store,
        &sys.read_model,
        Some(ids[4].parse().unwrap()),
        100,
    )
    .await
    .unwrap();
    assert_eq!(one.applied, 1);
    assert!(sys
        .read_model
        .views
        .get(ids[4].parse().unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_a_view_whose_history_or_update_time_differs() {
    let sys = TestSystem::start(false).await;
    let ids = sys
        .create_orders(&["h0".to_string(), "h1".to_string()])
        .await;
    assert_eq!(sys.drain(2, Duration::from_secs(20)).await, 2);
    assert_converged(&sys.verify().await, 2);

    // Same version, so the versioned write accepts it: only the content differs.
    let views = &sys.read_model.views;
    let mut rewritten = views.get(ids[0].parse().unwrap()).await.unwrap().unwrap();
    rewritten
        .order
        .history
        .push(orders::domain::order::StatusChange {
            from: orders::OrderStatus::Pending,
            to: orders::OrderStatus::Cancelled,
            version: rewritten.order.version,
            at: rewritten.order.updated_at,
            reason: None,
        });
    views.put_if_not_older(&rewritten).await.unwrap();
    let mut later = views.get(ids[1].parse().unwrap()).await.unwrap().unwrap();
    later.order.updated_at += time::Duration::seconds(1);
    views.put_if_not_older(&later).await.unwrap();

    let mut drift = sys.verify().await.drift;
    drift.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let mut want = vec![
        orders::reconcile::Drift::Content {
            order_id: ids[0].clone(),
            field: "history".into(),
        },
        orders::reconcile::Drift::Content {
            order_id: ids[1].clone(),
            field: "updatedAt".into(),
        },
    ];
    want.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(drift, want);
}
