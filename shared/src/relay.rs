//! The outbox relay: publishes events that are still unpublished after a grace period, oldest
//! first, and sweeps expired idempotency keys. At-least-once: the projection makes a
//! duplicate harmless.

use crate::postgres::{bounded, DbError};
use crate::sns::{EventPublisher, PendingEvent, MAX_BATCH};
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
}

/// What one run did, and the backlog it left.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayReport {
    pub published: usize,
    pub failed: usize,
    pub expired_keys: u64,
    /// Unpublished events after the run.
    pub backlog: i64,
    /// Age in seconds of the oldest unpublished event (0 when none).
    pub oldest_age_seconds: f64,
}

/// Publishes due events in batches until none are left or `max_batches` ran.
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
    for _ in 0..settings.max_batches.max(1) {
        if started.elapsed() >= settings.max_duration {
            tracing::warn!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "relay time budget spent; the next run continues"
            );
            break;
        }
        let (claimed, published, failed) = relay_batch(pool, publisher, settings).await?;
        report.published += published;
        report.failed += failed;
        if claimed < settings.batch_size as usize || published == 0 {
            break;
        }
    }
    report.expired_keys = bounded(settings.op_timeout, expire_idempotency_keys(pool)).await?;
    let (backlog, oldest) = bounded(settings.op_timeout, backlog(pool)).await?;
    report.backlog = backlog;
    report.oldest_age_seconds = oldest;
    Ok(report)
}

async fn relay_batch(
    pool: &Pool,
    publisher: &EventPublisher,
    settings: &RelaySettings,
) -> Result<(usize, usize, usize), DbError> {
    let mut client = bounded(settings.op_timeout, async { Ok(pool.get().await?) }).await?;
    let tx = client.transaction().await?;
    let rows = bounded(settings.op_timeout, async {
        Ok(tx
            .query(
                "SELECT event_id, event_type, order_id, payload->>'correlationId', payload::text FROM outbox
                 WHERE published_at IS NULL AND occurred_at <= now() - make_interval(secs => $1)
                 ORDER BY occurred_at
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED",
                &[&settings.grace.as_secs_f64(), &settings.batch_size],
            )
            .await?)
    })
    .await?;
    let pending: Vec<PendingEvent> = rows
        .iter()
        .map(|r| PendingEvent {
            event_id: r.get(0),
            event_type: r.get(1),
            order_id: r.get(2),
            correlation_id: r.get(3),
            payload: r.get(4),
        })
        .collect();

    let mut published: Vec<Uuid> = Vec::new();
    let mut failed: Vec<(Uuid, String)> = Vec::new();
    for chunk in pending.chunks(MAX_BATCH) {
        for (event, result) in chunk.iter().zip(publisher.publish_batch(chunk).await) {
            match result {
                Ok(()) => {
                    tracing::info!(order_id = %event.order_id, event_id = %event.event_id, event_type = %event.event_type, correlation_id = event.correlation_id.as_deref().unwrap_or(""), "relay published event");
                    published.push(event.event_id);
                }
                Err(err) => {
                    tracing::warn!(order_id = %event.order_id, event_id = %event.event_id, correlation_id = event.correlation_id.as_deref().unwrap_or(""), error = %err, "relay publish failed");
                    failed.push((event.event_id, err.to_string()));
                }
            }
        }
    }
    let failed_ids: Vec<Uuid> = failed.iter().map(|(id, _)| *id).collect();
    let errors: Vec<String> = failed.iter().map(|(_, e)| e.clone()).collect();
    bounded(settings.op_timeout, async {
        tx.execute(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
             WHERE event_id = ANY($1)",
            &[&published],
        )
        .await?;
        tx.execute(
            "UPDATE outbox o SET attempts = attempts + 1, last_error = f.error
             FROM UNNEST($1::uuid[], $2::text[]) AS f(event_id, error)
             WHERE o.event_id = f.event_id",
            &[&failed_ids, &errors],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok((pending.len(), published.len(), failed.len()))
}

async fn expire_idempotency_keys(pool: &Pool) -> Result<u64, DbError> {
    let client = pool.get().await?;
    Ok(client
        .execute(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (
                 SELECT scope, key FROM idempotency_keys WHERE expires_at <= now() LIMIT 1000)",
            &[],
        )
        .await?)
}

/// Unpublished events and the age in seconds of the oldest.
pub async fn backlog(pool: &Pool) -> Result<(i64, f64), DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at))::float8, 0)
             FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
