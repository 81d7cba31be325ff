//! The command function: wires the pool and clients once, then serves requests, several at
//! once when `AWS_LAMBDA_MAX_CONCURRENCY` > 1 (Lambda Managed Instances), else one at a time.

use command::CommandApp;
use lambda_http::{service_fn, Error, Request};
use orders::config::CommandConfig;
use orders::postgres::OrderStore;
use orders::sns::EventPublisher;
use std::sync::Arc;

/// On the runtime its environment calls for (`orders::runtime`): one thread unless it serves
/// several requests at once.
fn main() -> Result<(), Error> {
    orders::runtime::run(serve())?
}

async fn serve() -> Result<(), Error> {
    orders::telemetry::init();
    let config = CommandConfig::from_env()?;
    let aws = orders::aws::load(orders::aws::SdkBudget::WRITE).await;
    let pool = orders::postgres::connect(&config.db, &aws).await?;
    let app = CommandApp::new(
        OrderStore::new(pool, config.db.statement_timeout),
        EventPublisher::new(&aws, config.topic_arn, config.publish_timeout),
        config.idempotency_ttl,
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
