//! The updater function: wires the DynamoDB and S3 clients once, then projects batches.

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use orders::config::UpdaterConfig;
use orders::dynamodb::OrderViewStore;
use orders::projection::ReadModel;
use orders::s3::ReceiptStore;
use tracing::Instrument;
use updater::Projector;

#[tokio::main]
async fn main() -> Result<(), Error> {
    orders::telemetry::init();
    let config = UpdaterConfig::from_env()?;
    let aws = orders::aws::load(orders::aws::SdkBudget::UPDATER).await;
    let read_model = ReadModel::new(
        OrderViewStore::new(&aws, config.table),
        ReceiptStore::new(&aws, config.bucket),
    );
    let projector = Projector::new(read_model, config.concurrency);
    let projector = &projector;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = orders::telemetry::invocation_span(&event.context.request_id);
        Ok::<_, Error>(projector.handle(event.payload).instrument(span).await?)
    }))
    .await
}
