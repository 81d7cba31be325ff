//! The query function: wires the DynamoDB client once, then serves requests.

use lambda_http::{service_fn, Error, Request};
use orders::config::QueryConfig;
use orders::dynamodb::OrderViewStore;
use query::QueryApp;

#[tokio::main]
async fn main() -> Result<(), Error> {
    orders::telemetry::init();
    let config = QueryConfig::from_env()?;
    let aws = orders::aws::load().await;
    let app = QueryApp::new(OrderViewStore::new(&aws, config.table));
    let app = &app;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(app.handle(request).await)
    }))
    .await
}
