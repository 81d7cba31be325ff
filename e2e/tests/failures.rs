//! Dependencies that fail: the database down, crashed or holding a lock; SNS unreachable;
//! DynamoDB and S3 that never answer.

use command::CommandApp;
use e2e::fault_proxy::black_hole;
use e2e::system::{change_status, get_order, order_body, post_order, read_json, TestSystem};
use orders::aws::{with_budget, SdkBudget};
use orders::postgres::OrderStore;
use orders::sns::EventPublisher;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_gives_503_quickly_and_recovers_without_a_restart() {
    let mut sys = TestSystem::start(false).await;
    let (status, _) = read_json(&sys.command.handle(post_order(&order_body("before"))).await);
    assert_eq!(status, 201);

    // SIGQUIT: PostgreSQL's immediate shutdown (`pg_ctl stop -m immediate`), no checkpoint.
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

/// A command handler on its own pool (returned too) of `pool_size` connections, each
/// operation bounded by `op_timeout` on the client.
async fn command_with_pool(
    sys: &TestSystem,
    pool_size: usize,
    op_timeout: Duration,
) -> (CommandApp, deadpool_postgres::Pool) {
    let mut db = sys.pg.db_config();
    db.pool_size = pool_size;
    let pool = orders::postgres::connect(&db, &sys.aws)
        .await
        .expect("pool");
    let app = CommandApp::new(
        OrderStore::new(pool.clone(), op_timeout),
        EventPublisher::new(
            &sys.aws,
            sys.resources.topic_arn.clone(),
            Duration::from_secs(2),
        ),
        Duration::from_secs(3600),
    );
    (app, pool)
}

/// Another session holding a row lock on the order, as a stuck transaction would.
async fn lock_order(sys: &TestSystem, id: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user={} password={} dbname={}",
            sys.pg.port,
            e2e::postgres::USER,
            e2e::postgres::PASSWORD,
            e2e::postgres::DATABASE
        ),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM orders WHERE id = '{id}' FOR UPDATE"
        ))
        .await
        .expect("lock the order");
    client
}

fn confirm(id: &str) -> lambda_http::Request {
    change_status(id, r#"{"status":"CONFIRMED"}"#, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_server_timeout_fails_the_request_and_others_go_on() {
    let sys = TestSystem::start(false).await;
    let id = sys.create_orders(&["locked".to_string()]).await.remove(0);
    // The client waits up to a minute: a 503 can only come from the server's lock_timeout.
    let (app, _) = command_with_pool(&sys, 1, Duration::from_secs(60)).await;
    let holder = lock_order(&sys, &id).await;

    let (status, problem) = read_json(&app.handle(confirm(&id)).await);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/service-unavailable");
    // The same (only) pooled connection serves the next request at once.
    let (status, problem) = read_json(&app.handle(post_order(&order_body("beside"))).await);
    assert_eq!(status, 201, "{problem}");

    drop(holder);
    let (status, body) = read_json(&app.handle(confirm(&id)).await);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_abandoned_by_a_client_timeout_is_never_reused() {
    let sys = TestSystem::start(false).await;
    let id = sys.create_orders(&["stuck".to_string()]).await.remove(0);
    // The client gives up (500 ms) long before the server would (lock_timeout 3 s): the
    // abandoned statement still waits on the server, on the pool's only connection.
    let (app, pool) = command_with_pool(&sys, 1, Duration::from_millis(500)).await;
    let (status, _) = read_json(&app.handle(post_order(&order_body("warm"))).await);
    assert_eq!(status, 201);
    let holder = lock_order(&sys, &id).await;

    let (status, problem) = read_json(&app.handle(confirm(&id)).await);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        pool.status().size,
        0,
        "the connection still busy with the abandoned statement went back to the pool"
    );
    let (status, problem) = read_json(&app.handle(post_order(&order_body("next"))).await);
    assert_eq!(status, 201, "{problem}");
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_database_backend_costs_at_most_503s_and_loses_nothing() {
    let sys = TestSystem::start(false).await;
    let (app, _) = command_with_pool(&sys, 2, Duration::from_secs(5)).await;
    for i in 0..2 {
        let (status, _) = read_json(
            &app.handle(post_order(&order_body(&format!("pre{i}"))))
                .await,
        );
        assert_eq!(status, 201);
    }
    // SIGKILL one of the pool's backends: PostgreSQL treats it as a crash, ends every
    // session and runs crash recovery; the pooled connections are dead without a goodbye.
    let pid: i32 = sys
        .pg
        .psql(
            "orders",
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'orders-cqrs' LIMIT 1",
        )
        .parse()
        .expect("a pooled backend");
    // SAFETY: kill(2) on a PostgreSQL backend of the cluster this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);

    // Each order is retried with its Idempotency-Key until it is 201, as a client must: a
    // COMMIT the server made durable just before the crash ended its session answers 503
    // (the outcome is unknown to the command), and the retry must replay it, not place it
    // again.
    let mut created = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while created < 3 {
        assert!(Instant::now() < deadline, "the database never served again");
        let mut request = post_order(&order_body(&format!("post{created}")));
        request.headers_mut().insert(
            "idempotency-key",
            format!("crash-retry-{created}").parse().expect("key"),
        );
        let (status, problem) = read_json(&app.handle(request).await);
        match status {
            201 => created += 1,
            503 => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("a crash must cost a 503, not {other}: {problem}"),
        }
    }
    assert_eq!(
        sys.count("orders"),
        5,
        "no committed order lost, none placed twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_that_never_answers_gives_a_503_and_failed_records_not_a_hang() {
    let sys = TestSystem::start(false).await;
    let id = sys.create_orders(&["hang".to_string()]).await.remove(0);
    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
    // DynamoDB and S3 accept connections and never answer. A safety net far above the SDK
    // bounds turns a regression (no SDK timeouts: a hang) into a failure.
    let hung = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", black_hole().await)).await;
    let net = Duration::from_secs(60);

    let query = query::QueryApp::new(
        orders::dynamodb::OrderViewStore::new(
            &with_budget(&hung, SdkBudget::QUERY),
            sys.resources.table.clone(),
        ),
        orders::s3::ReceiptStore::new(
            &with_budget(&hung, SdkBudget::QUERY),
            sys.resources.bucket.clone(),
        ),
        Duration::from_secs(300),
        b"e2e-cursor-key".to_vec(),
    );
    let response = tokio::time::timeout(net, query.handle(get_order(&id)))
        .await
        .expect("the query hung");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let (status, problem) = read_json(&response);
    assert_eq!(status, 503, "{problem}");

    let projector = sys.projector_via(&with_budget(&hung, SdkBudget::UPDATER));
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    event.records = records.clone();
    let response = tokio::time::timeout(net, projector.handle(event))
        .await
        .expect("the updater hung")
        .expect("the batch is answered, not failed as a whole");
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| Some(f.item_identifier.clone()))
        .collect();
    assert_eq!(failed, [records[0].message_id.clone()]);
}
