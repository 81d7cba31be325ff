//! The outbox relay: publishes events that are still unpublished after a grace period, oldest
//! first, and sweeps expired idempotency keys. At-least-once: the projection makes a
//! duplicate harmless.
//!
//! No event can hold up the others: batches are packed by bytes as well as by count
//! ([`crate::sns::pack`]), an event SNS will never accept is set aside (kept, counted, logged
//! and alarmed on) instead of retried at the head of the queue, and each run walks the queue
//! once, so an event that failed for a passing reason does not hide the events behind it.

use crate::config::RelayConfig;
use crate::postgres::idempotency::{expire_keys, ExpirySettings};
use crate::postgres::outbox::{self, QueuePosition};
use crate::postgres::{bounded, checkout, DbError, TimeoutGuard};
use crate::sns::{pack, EventPublisher, PendingEvent, PublishError};
use deadpool_postgres::Pool;
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// How the relay paces itself.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events younger than this are left to the command that wrote them.
    pub grace: Duration,
    /// Rows claimed per transaction.
    pub batch_size: i64,
    /// Batches per run, so that one run ends well within the function timeout.
    pub max_batches: usize,
    /// No new batch starts after this much time, whatever is left.
    pub max_duration: Duration,
    /// Upper bound on each database operation.
    pub op_timeout: Duration,
    /// How expired idempotency keys are swept after publishing.
    pub key_expiry: ExpirySettings,
}

/// Expired idempotency keys deleted per statement.
pub const KEY_EXPIRY_BATCH: i64 = 5_000;
/// Time a run may spend sweeping expired keys, after at most `RELAY_MAX_SECONDS` of
/// publishing: 40 s + 10 s stays inside the relay function's 60 s timeout.
pub const KEY_EXPIRY_BUDGET: Duration = Duration::from_secs(10);

impl RelaySettings {
    /// The settings the relay function and the operator's `relay` command run with.
    pub fn from_config(config: &RelayConfig) -> Self {
        Self {
            grace: config.grace,
            batch_size: config.batch_size,
            max_batches: config.max_batches,
            max_duration: config.max_duration,
            op_timeout: config.db.statement_timeout,
            key_expiry: ExpirySettings {
                batch: KEY_EXPIRY_BATCH,
                budget: KEY_EXPIRY_BUDGET,
                op_timeout: config.db.statement_timeout,
            },
        }
    }
}

/// What one run did, and the backlog it left.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayReport {
    pub published: usize,
    /// Failed for a passing reason; retried by the next run.
    pub failed: usize,
    /// Set aside by this run: SNS will never accept them.
    pub set_aside: usize,
    pub expired_keys: u64,
    /// Unpublished events still queued after the run.
    pub backlog: i64,
    /// Age in seconds of the oldest queued event (0 when none).
    pub oldest_age_seconds: f64,
    /// Events set aside so far (this run or earlier), waiting for an operator.
    pub set_aside_total: i64,
}

/// Publishes one read-model heartbeat (see [`crate::domain::heartbeat`]) through the
/// events topic, stamped now. A failure is logged and reported, never retried: the next run
/// sends a fresh one, and missing heartbeats are what the lag alarm watches for.
pub async fn emit_heartbeat(publisher: &EventPublisher) -> bool {
    let heartbeat =
        crate::domain::heartbeat::Heartbeat::new("relay", crate::domain::order::now_micros());
    match publisher.publish_heartbeat(&heartbeat).await {
        Ok(message_id) => {
            tracing::info!(event_id = %heartbeat.event_id, message_id, "relay published heartbeat");
            true
        }
        Err(error) => {
            tracing::warn!(event_id = %heartbeat.event_id, error = %error, "relay heartbeat publish failed");
            false
        }
    }
}

/// What one claimed batch came to.
#[derive(Debug, Default)]
struct BatchOutcome {
    claimed: usize,
    published: usize,
    failed: usize,
    set_aside: usize,
    /// SNS failed a whole call for a passing reason (down, slow, throttling): the run stops.
    stalled: bool,
    position: Option<QueuePosition>,
}

/// Publishes due events in batches until none are left, `max_batches` ran, the time budget is
/// spent or SNS is unavailable; then sweeps expired idempotency keys.
///
/// Rows are claimed with `FOR UPDATE SKIP LOCKED` inside a transaction that lasts until they
/// are marked, so concurrent relays never claim the same row.
pub async fn relay_once(
    pool: &Pool,
    publisher: &EventPublisher,
    settings: &RelaySettings,
) -> Result<RelayReport, DbError> {
    let mut report = RelayReport::default();
    let started = std::time::Instant::now();
    let mut position = None;
    for _ in 0..settings.max_batches.max(1) {
        if started.elapsed() >= settings.max_duration {
            tracing::warn!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "relay time budget spent; the next run continues"
            );
            break;
        }
        let outcome = relay_batch(pool, publisher, settings, position).await?;
        report.published += outcome.published;
        report.failed += outcome.failed;
        report.set_aside += outcome.set_aside;
        position = outcome.position;
        if outcome.claimed < settings.batch_size as usize || outcome.stalled {
            break;
        }
    }
    report.expired_keys = expire_keys(pool, &settings.key_expiry).await?;
    let backlog = bounded(settings.op_timeout, async {
        outbox::backlog(&*checkout(pool).await?).await
    })
    .await?;
    report.backlog = backlog.queued;
    report.oldest_age_seconds = backlog.oldest_age_seconds;
    report.set_aside_total = backlog.set_aside;
    Ok(report)
}

async fn relay_batch(
    pool: &Pool,
    publisher: &EventPublisher,
    settings: &RelaySettings,
    after: Option<QueuePosition>,
) -> Result<BatchOutcome, DbError> {
    let op = settings.op_timeout;
    let mut client = bounded(op, checkout(pool)).await?;
    let guard = client.timeout_guard();
    let tx = client.transaction().await?;
    let claimed = bounded(
        op,
        outbox::claim_due(&tx, settings.grace, after, settings.batch_size),
    )
    .await;
    let (pending, position) = guard.check(claimed)?;
    let mut outcome = BatchOutcome {
        claimed: pending.len(),
        position,
        ..BatchOutcome::default()
    };
    let packed = pack(&pending);
    let too_large: Vec<(Uuid, String)> = packed
        .too_large
        .iter()
        .map(|event| {
            let error = PublishError::TooLarge {
                bytes: event.publish_size(),
            };
            log_failure(event, &error);
            (event.event_id, error.to_string())
        })
        .collect();
    let recorded = bounded(op, outbox::record_failures(&tx, &too_large, true)).await;
    guard.check(recorded)?;
    outcome.set_aside += too_large.len();

    let refused_call =
        |r: &Result<(), PublishError>| matches!(r, Err(PublishError::RequestRefused(_)));
    for batch in &packed.batches {
        let results = publisher.publish_batch(batch).await;
        if batch.len() > 1 && results.iter().all(refused_call) {
            // SNS refused the whole call: send each event alone to find the one it refuses.
            // Only when others then get through is the call's refusal that event's fault (a
            // wrong topic refuses every call, and must not set the whole outbox aside).
            let (mut refused_alone, mut any_published) = (Vec::new(), false);
            for event in batch {
                let results = publisher.publish_batch(&[*event]).await;
                if results.iter().all(refused_call) {
                    refused_alone.push(event.event_id);
                }
                let timed_out = matches!(results[..], [Err(PublishError::Timeout(_))]);
                let counts = record(&tx, op, &guard, &[*event], results).await?;
                any_published |= counts.published > 0;
                outcome.add(counts);
                if timed_out {
                    outcome.stalled = true;
                    break;
                }
            }
            if any_published && !refused_alone.is_empty() {
                let set_aside = bounded(op, outbox::set_aside(&tx, &refused_alone)).await;
                guard.check(set_aside)?;
                tracing::error!(events = ?refused_alone, "relay set aside events SNS refused in every call that carried them");
                outcome.failed -= refused_alone.len();
                outcome.set_aside += refused_alone.len();
            }
            outcome.stalled |= !any_published;
        } else {
            let counts = record(&tx, op, &guard, batch, results).await?;
            // Nothing got through, for a passing reason: SNS is unavailable now. The rest of
            // the claimed events stay queued, unattempted, for the next run.
            outcome.stalled = counts.published == 0 && counts.set_aside == 0;
            outcome.add(counts);
        }
        if outcome.stalled {
            break;
        }
    }
    let committed = bounded(op, async { Ok(tx.commit().await?) }).await;
    guard.check(committed)?;
    Ok(outcome)
}

/// What publishing some events came to.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    published: usize,
    failed: usize,
    set_aside: usize,
}

impl BatchOutcome {
    fn add(&mut self, counts: Counts) {
        self.published += counts.published;
        self.failed += counts.failed;
        self.set_aside += counts.set_aside;
    }
}

/// Logs and records the results of one publish call, in the claim's transaction: after each
/// call, so that the transaction never idles longer than one publish (the server ends
/// sessions idle in a transaction, see migrations/0005).
async fn record(
    tx: &deadpool_postgres::Transaction<'_>,
    op: Duration,
    guard: &TimeoutGuard,
    events: &[&PendingEvent],
    results: Vec<Result<(), PublishError>>,
) -> Result<Counts, DbError> {
    let mut published = Vec::new();
    let (mut refused, mut failed) = (Vec::new(), Vec::new());
    for (event, result) in events.iter().zip(results) {
        match result {
            Ok(()) => {
                tracing::info!(order_id = %event.order_id, event_id = %event.event_id, event_type = %event.event_type, correlation_id = event.correlation_id.as_deref().unwrap_or(""), "relay published event");
                published.push(event.event_id);
            }
            Err(error) => {
                log_failure(event, &error);
                let target = if error.is_permanent() {
                    &mut refused
                } else {
                    &mut failed
                };
                target.push((event.event_id, error.to_string()));
            }
        }
    }
    let recorded = bounded(op, async {
        outbox::mark_published(tx, &published).await?;
        outbox::record_failures(tx, &refused, true).await?;
        outbox::record_failures(tx, &failed, false).await
    })
    .await;
    guard.check(recorded)?;
    Ok(Counts {
        published: published.len(),
        failed: failed.len(),
        set_aside: refused.len(),
    })
}

fn log_failure(event: &PendingEvent, error: &PublishError) {
    let correlation_id = event.correlation_id.as_deref().unwrap_or("");
    if error.is_permanent() {
        tracing::error!(order_id = %event.order_id, event_id = %event.event_id, event_type = %event.event_type, correlation_id, error = %error, "relay set aside an event SNS will never accept");
    } else {
        tracing::warn!(order_id = %event.order_id, event_id = %event.event_id, correlation_id, error = %error, "relay publish failed");
    }
}
