//! The outbox as the relay works it: claim due events, then record what publishing did.
//! Every statement runs in the caller's transaction, so claimed rows stay locked (and skipped
//! by other relays) until they are recorded.

use super::DbError;
use crate::sns::PendingEvent;
use deadpool_postgres::Transaction;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where a relay run is in the queue: the last claimed event, in queue order. Each run walks
/// the queue once, so an event that failed is not claimed again until the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePosition {
    occurred_at: OffsetDateTime,
    event_id: Uuid,
}

/// Locks and returns up to `limit` unpublished events older than `grace`, oldest first,
/// after `after`. Rows another relay holds are skipped; set-aside rows are not queued.
pub async fn claim_due(
    tx: &Transaction<'_>,
    grace: Duration,
    after: Option<QueuePosition>,
    limit: i64,
) -> Result<(Vec<PendingEvent>, Option<QueuePosition>), DbError> {
    let rows = tx
        .query(
            "SELECT event_id, event_type, order_id, payload->>'correlationId', payload::text,
                    occurred_at, payload->>'schemaVersion'
             FROM outbox
             WHERE published_at IS NULL AND set_aside_at IS NULL
               AND occurred_at <= now() - make_interval(secs => $1)
               AND ($3::timestamptz IS NULL OR (occurred_at, event_id) > ($3, $4))
             ORDER BY occurred_at, event_id
             LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[
                &grace.as_secs_f64(),
                &limit,
                &after.map(|p| p.occurred_at),
                &after.map_or(Uuid::nil(), |p| p.event_id),
            ],
        )
        .await?;
    let position = rows.last().map(|r| QueuePosition {
        occurred_at: r.get(5),
        event_id: r.get(0),
    });
    let events = rows
        .iter()
        .map(|r| PendingEvent {
            event_id: r.get(0),
            event_type: r.get(1),
            order_id: r.get(2),
            correlation_id: r.get(3),
            schema_version: r.get::<_, Option<String>>(6).and_then(|v| v.parse().ok()),
            payload: r.get(4),
        })
        .collect();
    Ok((events, position.or(after)))
}

/// Marks events published.
pub async fn mark_published(tx: &Transaction<'_>, ids: &[Uuid]) -> Result<(), DbError> {
    if !ids.is_empty() {
        tx.execute(
            "UPDATE outbox SET published_at = now(), attempts = attempts + 1, last_error = NULL
             WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await?;
    }
    Ok(())
}

/// Records a failed attempt per event; with `set_aside`, the events also leave the queue
/// (SNS will never accept them) until an operator clears `set_aside_at`.
pub async fn record_failures(
    tx: &Transaction<'_>,
    failures: &[(Uuid, String)],
    set_aside: bool,
) -> Result<(), DbError> {
    if failures.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = failures.iter().map(|(id, _)| *id).collect();
    let errors: Vec<&str> = failures.iter().map(|(_, e)| e.as_str()).collect();
    tx.execute(
        "UPDATE outbox o SET attempts = attempts + 1, last_error = f.error,
             set_aside_at = CASE WHEN $3 THEN now() ELSE o.set_aside_at END
         FROM UNNEST($1::uuid[], $2::text[]) AS f(event_id, error)
         WHERE o.event_id = f.event_id",
        &[&ids, &errors, &set_aside],
    )
    .await?;
    Ok(())
}

/// Takes events out of the queue without counting another attempt (their failure is already
/// recorded), until an operator clears `set_aside_at`.
pub async fn set_aside(tx: &Transaction<'_>, ids: &[Uuid]) -> Result<(), DbError> {
    tx.execute(
        "UPDATE outbox SET set_aside_at = now() WHERE event_id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// The relay's view of the queue after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// Unpublished events still queued.
    pub queued: i64,
    /// Age in seconds of the oldest queued event (0 when none).
    pub oldest_age_seconds: f64,
    /// Events set aside, waiting for an operator.
    pub set_aside: i64,
}

/// Counts the queue and the set-aside events.
pub async fn backlog(client: &impl deadpool_postgres::GenericClient) -> Result<Backlog, DbError> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE set_aside_at IS NULL),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at)
                        FILTER (WHERE set_aside_at IS NULL))::float8, 0),
                    count(*) FILTER (WHERE set_aside_at IS NOT NULL)
             FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await?;
    Ok(Backlog {
        queued: row.get(0),
        oldest_age_seconds: row.get(1),
        set_aside: row.get(2),
    })
}
