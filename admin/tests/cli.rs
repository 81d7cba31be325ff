//! The `orders-admin` binary, run as an operator would, against PostgreSQL and moto.

use e2e::system::{order_body, post_order, read_json, TestSystem};
use std::process::Output;
use std::time::Duration;

async fn admin(sys: &TestSystem, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_orders-admin"));
    command
        .args(args)
        .envs(sys.pg.env())
        .envs(sys.moto.env())
        .env("ORDERS_TABLE", &sys.resources.table)
        .env("RECEIPTS_BUCKET", &sys.resources.bucket)
        .env("ORDER_EVENTS_TOPIC_ARN", &sys.resources.topic_arn)
        .env("ORDER_EVENTS_QUEUE_URL", &sys.resources.queue_url)
        .env("ORDER_EVENTS_DLQ_URL", &sys.resources.dlq_url)
        .env("RELAY_GRACE_SECONDS", "0")
        .env("LOG_LEVEL", "warn");
    command.output().await.expect("run orders-admin")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_migrate_verify_rebuild_relay_and_redrive() {
    let sys = TestSystem::start(false).await;

    let out = admin(&sys, &["migrate"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("none (schema is current)"),
        "{}",
        stdout(&out)
    );

    let out = admin(&sys, &["verify"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("0 orders, 0 views checked, 0 differences"));

    // An order whose event is never projected: verify reports it and fails.
    let (_, created) = read_json(&sys.command.handle(post_order(&order_body("ops"))).await);
    let id = created["orderId"].as_str().unwrap();
    let out = admin(&sys, &["verify", "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["drift"][0]["kind"], "missing");
    assert_eq!(report["drift"][0]["order_id"], id);

    let out = admin(&sys, &["rebuild", "--order", id]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("1 applied"));
    assert_eq!(admin(&sys, &["verify"]).await.status.code(), Some(0));
    // A full rebuild rewrites the same version (idempotent) and leaves verify clean.
    let out = admin(&sys, &["rebuild", "--page-size", "1"]).await;
    assert!(
        stdout(&out).contains("rebuild: 1 applied, 0 already newer, 0 failed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(admin(&sys, &["verify"]).await.status.code(), Some(0));

    // Relay: the command already published, so there is nothing to do.
    let out = admin(&sys, &["relay"]).await;
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["published"], 0);
    assert_eq!(report["backlog"], 0);

    // Redrive: a message parked in the DLQ goes back to the queue.
    sys.sqs
        .send_message()
        .queue_url(&sys.resources.dlq_url)
        .message_body("parked message")
        .send()
        .await
        .unwrap();
    let out = admin(&sys, &["redrive-dlq"]).await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("moved 1 messages"),
        "{}",
        stdout(&out)
    );
    let mut bodies = Vec::new();
    for _ in 0..5 {
        for r in sys.receive(Duration::from_secs(1)).await {
            bodies.push(r.body.unwrap_or_default());
        }
    }
    assert!(bodies.contains(&"parked message".to_string()), "{bodies:?}");

    // Bad arguments are refused with a clear message, not a panic.
    let out = admin(&sys, &["rebuild", "--order", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("order id must be a UUID"));
}

/// Rebuild reads the write model, not events: after the schema version 2 change, an order
/// whose events include a version 1 one (from the outbox) rebuilds to the view the updater
/// projected from those events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_after_version_1_events_yields_the_projected_view() {
    let sys = TestSystem::start(true).await;
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let unpublished = sys.command_publishing_via(&dead, Duration::from_millis(300));
    let (status, created) = read_json(&unpublished.handle(post_order(&order_body("v1"))).await);
    assert_eq!(status, 201);
    let id = created["orderId"].as_str().unwrap().to_string();
    // The created event as a version 1 release stored it; the next one is version 2.
    sys.store_outbox_as_v1(&id);
    let confirm = e2e::system::change_status(&id, r#"{"status":"CONFIRMED"}"#, &[]);
    assert_eq!(read_json(&unpublished.handle(confirm).await).0, 200);
    let versions = sys.pg.psql(
        e2e::postgres::DATABASE,
        "SELECT string_agg(payload->>'schemaVersion', ',' ORDER BY order_version) FROM outbox",
    );
    assert_eq!(versions.trim(), "1,2");

    let out = admin(&sys, &["relay"]).await;
    assert!(out.status.success(), "{out:?}");
    // Each is checked against asyncapi.yaml on receipt (version 1, then version 2).
    assert_eq!(sys.drain(2, Duration::from_secs(30)).await, 2);
    let views = orders::dynamodb::OrderViewStore::new(&sys.aws, sys.resources.table.clone());
    let order_id = id.parse().unwrap();
    let projected = views.get(order_id).await.unwrap().expect("projected");
    assert_eq!(projected.order.version, 2);
    assert_eq!(admin(&sys, &["verify"]).await.status.code(), Some(0));

    let out = admin(&sys, &["rebuild", "--order", &id]).await;
    assert!(stdout(&out).contains("1 applied"), "{out:?}");
    let rebuilt = views.get(order_id).await.unwrap().expect("rebuilt");
    assert_ne!(rebuilt.projected_at, projected.projected_at, "rewritten");
    assert_eq!(rebuilt.order, projected.order);
    assert_eq!(
        (
            rebuilt.customer_id,
            rebuilt.receipt_key,
            rebuilt.cancellation_key
        ),
        (
            projected.customer_id,
            projected.receipt_key,
            projected.cancellation_key
        )
    );
    assert_eq!(admin(&sys, &["verify"]).await.status.code(), Some(0));
}
