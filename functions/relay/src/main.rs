//! The outbox relay function, run on a schedule: publishes events the command side could not
//! publish (SNS down, or the process died between commit and publish).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use orders::config::RelayConfig;
use orders::metrics::{MetricSet, Unit};
use orders::relay::{relay_once, RelaySettings};
use orders::sns::EventPublisher;

#[tokio::main]
async fn main() -> Result<(), Error> {
    orders::telemetry::init();
    let config = RelayConfig::from_env()?;
    let aws = orders::aws::load().await;
    let pool = orders::postgres::connect(&config.db, &aws).await?;
    let publisher = EventPublisher::new(&aws, config.topic_arn, config.publish_timeout);
    let settings = RelaySettings {
        grace: config.grace,
        batch_size: config.batch_size,
        max_batches: config.max_batches,
        op_timeout: config.db.statement_timeout,
    };
    let (pool, publisher, settings) = (&pool, &publisher, &settings);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report = relay_once(pool, publisher, settings).await?;
            tracing::info!(
                published = report.published,
                failed = report.failed,
                expired_keys = report.expired_keys,
                outbox_backlog = report.backlog,
                outbox_oldest_age_seconds = report.oldest_age_seconds,
                "relay run finished"
            );
            MetricSet::new()
                .count("OutboxPublished", report.published)
                .count("OutboxPublishFailed", report.failed)
                .count("OutboxBacklog", report.backlog.max(0) as usize)
                .metric("OutboxOldestAge", Unit::Seconds, report.oldest_age_seconds)
                .count("IdempotencyKeysExpired", report.expired_keys as usize)
                .emit();
            Ok::<_, Error>(serde_json::to_value(&report)?)
        },
    ))
    .await
}
