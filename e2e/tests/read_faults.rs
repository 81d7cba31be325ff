//! The query function tells a fault a retry can fix (503 with `Retry-After`) from one it cannot
//! (500): the SDK's error kind is kept, not flattened into text.

use e2e::system::{get_order, read_json, TestSystem};
use lambda_http::http::header;
use orders::dynamodb::OrderViewStore;
use orders::s3::ReceiptStore;
use query::QueryApp;
use std::time::Duration;

fn query_app(aws: &aws_config::SdkConfig, table: &str, bucket: &str) -> QueryApp {
    QueryApp::new(
        OrderViewStore::new(aws, table.to_string()),
        ReceiptStore::new(aws, bucket.to_string()),
        Duration::from_secs(300),
        b"e2e-cursor-key".to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_500_and_an_unreachable_one_a_503() {
    let sys = TestSystem::start(false).await;
    let id = uuid::Uuid::now_v7().to_string();

    // A permanent fault: the table does not exist (a wrong name in the configuration).
    let missing = query_app(&sys.aws, "no-such-table", &sys.resources.bucket);
    let response = missing.handle(get_order(&id)).await;
    let (status, problem) = read_json(&response);
    assert_eq!(status, 500, "{problem}");
    assert_eq!(problem["type"], "/problems/internal-error");
    assert!(response.headers().get(header::RETRY_AFTER).is_none());

    // A transient one: nothing listens where DynamoDB should be.
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let unreachable = query_app(&dead, &sys.resources.table, &sys.resources.bucket);
    let response = unreachable.handle(get_order(&id)).await;
    let (status, problem) = read_json(&response);
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["type"], "/problems/service-unavailable");
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");

    // The real table answers as before: a missing order is a 404.
    let healthy = query_app(&sys.aws, &sys.resources.table, &sys.resources.bucket);
    assert_eq!(read_json(&healthy.handle(get_order(&id)).await).0, 404);
}
