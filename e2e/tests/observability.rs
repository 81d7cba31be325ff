//! One order can be followed across functions: its correlation id is on the command's and the
//! updater's log lines; logs are JSON with function, request id and cold-start fields; no
//! personal data is logged.

use e2e::logs::Captured;
use e2e::system::{order_body, post_order, read_json, TestSystem};
use std::time::Duration;
use tracing::instrument::WithSubscriber;

/// The value of `field` in the line's own fields or any of its spans.
fn field<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line.get(name).or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|span| span.get(name))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correlation_id_follows_the_order_from_request_to_read_model() {
    let sys = TestSystem::start(false).await;
    let command_logs = Captured::default();
    let updater_logs = Captured::default();
    let command_writer = command_logs.clone();
    let updater_writer = updater_logs.clone();

    let request = post_order(&order_body("observed"));
    let response = sys
        .command
        .handle(request)
        .with_subscriber(orders::telemetry::json_subscriber(move || {
            command_writer.clone()
        }))
        .await;
    let (status, created) = read_json(&response);
    assert_eq!(status, 201);
    let order_id = created["orderId"].as_str().unwrap();
    let correlation = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        correlation, "demo-correlation-0001",
        "the client's header is kept"
    );

    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
    let body: serde_json::Value =
        serde_json::from_str(records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        body["MessageAttributes"]["correlationId"]["Value"],
        correlation.as_str(),
        "carried as an SNS attribute"
    );
    sys.project(records)
        .with_subscriber(orders::telemetry::json_subscriber(move || {
            updater_writer.clone()
        }))
        .await;

    for (function, logs) in [
        ("command", command_logs.lines()),
        ("updater", updater_logs.lines()),
    ] {
        assert!(!logs.is_empty(), "{function} logged nothing");
        let of_order: Vec<_> = logs
            .iter()
            .filter(|l| field(l, "order_id").and_then(|v| v.as_str()) == Some(order_id))
            .collect();
        assert!(!of_order.is_empty(), "{function}: no line names the order");
        for line in &of_order {
            assert_eq!(
                field(line, "correlation_id").and_then(|v| v.as_str()),
                Some(correlation.as_str()),
                "{function}: {line}"
            );
            assert!(
                line["level"].is_string() && line["timestamp"].is_string(),
                "{line}"
            );
        }
        let text = serde_json::to_string(&logs).unwrap();
        assert!(
            !text.contains("grace@example.com"),
            "{function} logged an email address"
        );
        assert!(
            !text.contains("Grace Hopper"),
            "{function} logged a customer name"
        );
    }
    let invocation = command_logs
        .lines()
        .into_iter()
        .find_map(|l| {
            l["spans"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "invocation").cloned())
        })
        .expect("command lines carry the invocation span");
    assert!(invocation["function"].is_string());
    assert!(invocation["cold_start"].is_boolean());
    assert_eq!(
        invocation["request_id"], "Kq3pWj9hoAMEVNQ=",
        "outside Lambda, API Gateway's request id"
    );
}
