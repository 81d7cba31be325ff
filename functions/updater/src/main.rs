//! The updater function: wires the DynamoDB and S3 clients once, then projects batches.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use orders::config::UpdaterConfig;
use orders::dynamodb::OrderViewStore;
use orders::projection::ReadModel;
use orders::s3::ReceiptStore;
use std::sync::Arc;
use tracing::Instrument;
use updater::Projector;

/// On the runtime its environment calls for (`orders::runtime`): one thread unless it serves
/// several requests at once.
fn main() -> Result<(), Error> {
    orders::runtime::run(serve())?
}

async fn serve() -> Result<(), Error> {
    orders::telemetry::init();
    let config = UpdaterConfig::from_env()?;
    let aws = orders::aws::load(orders::aws::SdkBudget::UPDATER).await;
    let read_model = ReadModel::new(
        OrderViewStore::new(&aws, config.table),
        ReceiptStore::new(&aws, config.bucket),
    );
    let projector = Projector::new(read_model, config.concurrency);
    // Shared by concurrent invocations on Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1):
    // each batch still projects up to PROJECTION_CONCURRENCY orders at once.
    let projector = Arc::new(projector);
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let projector = projector.clone();
        async move {
            let span = orders::telemetry::invocation_span(&event.context.request_id);
            Ok::<_, Error>(projector.handle(event.payload).instrument(span).await?)
        }
    }))
    .await
}
