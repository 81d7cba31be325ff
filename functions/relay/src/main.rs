//! The outbox relay function, run on a schedule: publishes events the command side could not
//! publish (SNS down, or the process died between commit and publish).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use orders::config::RelayConfig;
use orders::relay::RelaySettings;
use orders::sns::EventPublisher;
use relay::Relay;
use std::sync::Arc;
use tracing::Instrument;

/// On the runtime its environment calls for (`orders::runtime`): one thread unless it serves
/// several requests at once.
fn main() -> Result<(), Error> {
    orders::runtime::run(serve())?
}

async fn serve() -> Result<(), Error> {
    orders::telemetry::init();
    let config = RelayConfig::from_env()?;
    let aws = orders::aws::load(orders::aws::SdkBudget::WRITE).await;
    let pool = orders::postgres::connect(&config.db, &aws).await?;
    let settings = RelaySettings::from_config(&config);
    let relay = Relay::new(
        pool,
        EventPublisher::new(&aws, config.topic_arn, config.publish_timeout),
        settings,
    );
    // Shared by concurrent invocations on Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY > 1).
    let relay = Arc::new(relay);
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let relay = relay.clone();
        async move {
            let span = orders::telemetry::invocation_span(&event.context.request_id);
            let report = relay.handle(event.payload).instrument(span).await?;
            Ok::<_, Error>(serde_json::to_value(&report)?)
        }
    }))
    .await
}
