//! Dependencies that fail: the database down, SNS unreachable.

use command::CommandApp;
use e2e::system::{order_body, post_order, read_json, TestSystem};
use orders::postgres::OrderStore;
use orders::sns::EventPublisher;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_gives_503_quickly_and_recovers_without_a_restart() {
    let mut sys = TestSystem::start(false).await;
    let (status, _) = read_json(&sys.command.handle(post_order(&order_body("before"))).await);
    assert_eq!(status, 201);

    sys.pg.stop();
    let started = Instant::now();
    let response = sys.command.handle(post_order(&order_body("during"))).await;
    let elapsed = started.elapsed();
    let (status, problem) = read_json(&response);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/service-unavailable");
    // Bounded by the configured timeouts (2 s connect, 5 s per operation), never a hang.
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");

    sys.pg.restart();
    let (status, problem) = read_json(&sys.command.handle(post_order(&order_body("after"))).await);
    assert_eq!(status, 201, "{problem}");
    assert_eq!(
        sys.pg.psql(
            "orders",
            "SELECT string_agg(customer_id, ',' ORDER BY created_at) FROM orders"
        ),
        "before,after",
        "the order sent while the database was down was not written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_at_start_does_not_prevent_serving_503() {
    let sys = TestSystem::start(false).await;
    let mut db = sys.pg.db_config();
    db.port = e2e::free_port();
    let pool = orders::postgres::connect(&db, &sys.aws)
        .await
        .expect("pool builds without connecting");
    let app = CommandApp::new(
        OrderStore::new(pool, db.statement_timeout),
        EventPublisher::new(
            &sys.aws,
            sys.resources.topic_arn.clone(),
            Duration::from_secs(2),
        ),
        Duration::from_secs(3600),
    );
    let (status, _) = read_json(&app.handle(post_order(&order_body("nowhere"))).await);
    assert_eq!(status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_still_answers_201_and_leaves_the_event_in_the_outbox() {
    let sys = TestSystem::start(false).await;
    // SNS at an address where nothing listens.
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let app = CommandApp::new(
        sys.store.clone(),
        EventPublisher::new(
            &dead,
            sys.resources.topic_arn.clone(),
            Duration::from_millis(500),
        ),
        Duration::from_secs(3600),
    );
    let (status, created) = read_json(&app.handle(post_order(&order_body("no-sns"))).await);
    assert_eq!(status, 201, "{created}");
    let id = created["orderId"].as_str().unwrap();
    let row = sys.pg.psql(
        "orders",
        &format!("SELECT (published_at IS NULL) || ' ' || attempts || ' ' || (last_error IS NOT NULL) FROM outbox WHERE order_id = '{id}'"),
    );
    assert_eq!(
        row, "true 1 true",
        "event waits, unpublished, with its error recorded"
    );
    assert!(
        sys.receive(Duration::from_secs(2)).await.is_empty(),
        "nothing reached the queue"
    );
}
