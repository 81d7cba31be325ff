//! `Idempotency-Key` on `POST /orders`.

use e2e::system::{order_body, post_order, read_json, TestSystem};
use lambda_http::Request;
use std::time::Duration;

fn keyed(body: &str, key: &str) -> Request {
    let mut request = post_order(body);
    request
        .headers_mut()
        .insert("idempotency-key", key.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_key_replays_the_original_response() {
    let sys = TestSystem::start(false).await;
    let first = sys
        .command
        .handle(keyed(&order_body("idem"), "key-1"))
        .await;
    let (status, body) = read_json(&first);
    assert_eq!(status, 201);
    assert!(first.headers().get("idempotent-replayed").is_none());

    // Same order with other whitespace and field order: still the same request.
    let reordered: serde_json::Value = serde_json::from_str(&order_body("idem")).unwrap();
    let text = serde_json::to_string_pretty(&reordered).unwrap();
    let again = sys.command.handle(keyed(&text, "key-1")).await;
    let (status2, body2) = read_json(&again);
    assert_eq!(status2, 201);
    assert_eq!(body2, body, "same order id, same body");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], first.headers()["location"]);
    assert_eq!(sys.count("orders"), 1);
    assert_eq!(sys.count("outbox"), 1);

    // The same key with a different order from the same customer.
    let mut other: serde_json::Value = serde_json::from_str(&order_body("idem")).unwrap();
    other["lines"][0]["quantity"] = 7.into();
    let (status, problem) =
        read_json(&sys.command.handle(keyed(&other.to_string(), "key-1")).await);
    assert_eq!(status, 422);
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    assert_eq!(sys.count("orders"), 1);

    // Another key is another order; a malformed key is refused.
    assert_eq!(
        read_json(
            &sys.command
                .handle(keyed(&order_body("idem"), "key-2"))
                .await
        )
        .0,
        201
    );
    assert_eq!(sys.count("orders"), 2);
    let (status, problem) = read_json(
        &sys.command
            .handle(keyed(&order_body("idem"), &"k".repeat(256)))
            .await,
    );
    assert_eq!(
        (status, problem["type"].as_str()),
        (400, Some("/problems/invalid-idempotency-key"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_create_exactly_one_order() {
    let sys = TestSystem::start(false).await;
    let body = order_body("race");
    let attempts = (0..16).map(|_| sys.command.handle(keyed(&body, "race-key")));
    let responses = futures::future::join_all(attempts).await;
    let bodies: Vec<serde_json::Value> = responses
        .iter()
        .map(|r| {
            let (status, body) = read_json(r);
            assert_eq!(status, 201, "{body}");
            body
        })
        .collect();
    assert!(bodies
        .windows(2)
        .all(|w| w[0]["orderId"] == w[1]["orderId"]));
    assert_eq!(sys.count("orders"), 1);
    let replays = responses
        .iter()
        .filter(|r| r.headers().contains_key("idempotent-replayed"))
        .count();
    assert_eq!(replays, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_after_their_window() {
    let sys = TestSystem::start(false).await;
    let app = command::CommandApp::new(
        sys.store.clone(),
        orders::sns::EventPublisher::new(
            &sys.aws,
            sys.resources.topic_arn.clone(),
            Duration::from_secs(2),
        ),
        Duration::from_secs(1),
    );
    let (_, first) = read_json(&app.handle(keyed(&order_body("ttl"), "short-lived")).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, second) = read_json(&app.handle(keyed(&order_body("ttl"), "short-lived")).await);
    assert_eq!(status, 201);
    assert_ne!(
        first["orderId"], second["orderId"],
        "an expired key starts afresh"
    );
    assert_eq!(sys.count("orders"), 2);
    // The relay sweeps expired keys.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sys.relay().await.expired_keys, 1);
    assert_eq!(sys.count("idempotency_keys"), 0);
}
