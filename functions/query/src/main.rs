//! The query function: wires the DynamoDB and S3 clients once, then serves requests, several at
//! once when `AWS_LAMBDA_MAX_CONCURRENCY` > 1 (Lambda Managed Instances), else one at a time.

use lambda_http::{service_fn, Error, Request};
use orders::config::QueryConfig;
use orders::dynamodb::OrderViewStore;
use orders::s3::ReceiptStore;
use query::QueryApp;
use std::sync::Arc;

/// On the runtime its environment calls for (`orders::runtime`): one thread unless it serves
/// several requests at once.
fn main() -> Result<(), Error> {
    orders::runtime::run(serve())?
}

async fn serve() -> Result<(), Error> {
    orders::telemetry::init();
    let config = QueryConfig::from_env()?;
    let aws = orders::aws::load(orders::aws::SdkBudget::QUERY).await;
    let app = QueryApp::new(
        OrderViewStore::new(&aws, config.table),
        ReceiptStore::new(&aws, config.bucket),
        config.receipt_url_ttl,
        config.cursor_key,
    )
    .with_access(config.access);
    // One app shared by every concurrent invocation (Managed Instances run several at once).
    let app = Arc::new(app);
    lambda_http::run_concurrent(service_fn(move |request: Request| {
        let app = app.clone();
        async move { Ok::<_, Error>(app.handle(request).await) }
    }))
    .await
}
