//! The outbox relay handler: one run per scheduled invocation, ending with a read-model
//! heartbeat (the lag canary; see `orders::domain::heartbeat`).

use orders::metrics::{MetricSet, Unit};
use orders::postgres::DbError;
use orders::relay::{emit_heartbeat, relay_once, RelayReport, RelaySettings};
use orders::sns::EventPublisher;

/// The relay's dependencies, built once per process.
pub struct Relay {
    pool: deadpool_postgres::Pool,
    publisher: EventPublisher,
    settings: RelaySettings,
}

impl Relay {
    pub fn new(
        pool: deadpool_postgres::Pool,
        publisher: EventPublisher,
        settings: RelaySettings,
    ) -> Self {
        Self {
            pool,
            publisher,
            settings,
        }
    }

    /// Runs once, whatever the triggering event (an EventBridge schedule, or a manual invoke),
    /// and reports what it did and the backlog it left. A run that reached the database
    /// then publishes a heartbeat, so a relay or database outage also silences the canary.
    pub async fn handle(&self, _event: serde_json::Value) -> Result<RelayReport, DbError> {
        let report = relay_once(&self.pool, &self.publisher, &self.settings).await?;
        let heartbeat = emit_heartbeat(&self.publisher).await;
        tracing::info!(
            published = report.published,
            failed = report.failed,
            set_aside = report.set_aside,
            set_aside_total = report.set_aside_total,
            expired_keys = report.expired_keys,
            outbox_backlog = report.backlog,
            outbox_oldest_age_seconds = report.oldest_age_seconds,
            "relay run finished"
        );
        // OutboxSetAside (all set-aside events, not only this run's) and the run count are
        // alarmed on in template.yaml: a relay that stops finishing runs stops emitting them.
        MetricSet::new()
            .count("OutboxPublished", report.published)
            .count("OutboxPublishFailed", report.failed)
            .count("OutboxSetAside", report.set_aside_total.max(0) as usize)
            .count("OutboxBacklog", report.backlog.max(0) as usize)
            .metric("OutboxOldestAge", Unit::Seconds, report.oldest_age_seconds)
            .count("IdempotencyKeysExpired", report.expired_keys as usize)
            .count("RelayRunsCompleted", 1)
            .count("HeartbeatsPublished", usize::from(heartbeat))
            .emit();
        Ok(report)
    }
}
