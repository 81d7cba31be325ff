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
    // The clock is the database's: instead of sleeping past a short window, the test moves a
    // key's expiry into the past, exactly (no slack on either side).
    let expire_all = || {
        sys.pg.psql(
            "orders",
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 microsecond'",
        )
    };
    let (_, first) = read_json(
        &sys.command
            .handle(keyed(&order_body("ttl"), "short-lived"))
            .await,
    );
    let (status, replay) = read_json(
        &sys.command
            .handle(keyed(&order_body("ttl"), "short-lived"))
            .await,
    );
    assert_eq!(
        (status, &replay["orderId"]),
        (201, &first["orderId"]),
        "a live key replays"
    );
    assert_eq!(sys.relay().await.expired_keys, 0, "a live key is not swept");

    expire_all();
    let (status, second) = read_json(
        &sys.command
            .handle(keyed(&order_body("ttl"), "short-lived"))
            .await,
    );
    assert_eq!(status, 201);
    assert_ne!(
        first["orderId"], second["orderId"],
        "an expired key starts afresh"
    );
    assert_eq!(sys.count("orders"), 2);
    // The relay sweeps expired keys.
    expire_all();
    assert_eq!(sys.relay().await.expired_keys, 1);
    assert_eq!(sys.count("idempotency_keys"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_sweep_deletes_in_batches_until_none_are_expired() {
    let sys = TestSystem::start(false).await;
    let (_, created) = read_json(&sys.command.handle(keyed(&order_body("bulk"), "seed")).await);
    let order_id = created["orderId"].as_str().unwrap().to_string();
    // Far more expired keys than one statement deletes (100 in the tests' settings, 5,000 in
    // the relay's), beside live ones that must stay.
    let (expired, live) = (25_000, 50);
    sys.pg.psql(
        "orders",
        &format!(
            "INSERT INTO idempotency_keys (scope, key, request_hash, order_id, status_code,
                                           response_body, expires_at)
             SELECT 'bulk', 'k' || n, md5('x'), '{order_id}', 201, '{{}}'::jsonb,
                    CASE WHEN n <= {expired} THEN now() - interval '1 hour'
                         ELSE now() + interval '1 hour' END
             FROM generate_series(1, {}) n",
            expired + live
        ),
    );
    let mut settings = e2e::system::relay_settings();
    settings.key_expiry.batch = orders::relay::KEY_EXPIRY_BATCH;
    let publisher = orders::sns::EventPublisher::new(
        &sys.aws,
        sys.resources.topic_arn.clone(),
        Duration::from_secs(2),
    );
    let started = std::time::Instant::now();
    let report = orders::relay::relay_once(sys.store.pool(), &publisher, &settings)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(report.expired_keys, expired as u64);
    assert_eq!(sys.count("idempotency_keys"), live + 1, "live keys stay");
    // A figure, not an assertion: how fast the sweep runs here.
    println!(
        "swept {expired} keys in {elapsed:?}: {:.0} keys/s",
        expired as f64 / elapsed.as_secs_f64()
    );
}
