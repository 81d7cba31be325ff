//! SQS -> read model: project each order event into DynamoDB and S3, and record each
//! read-model heartbeat with its end-to-end lag (the `HeartbeatLag` metric).

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use orders::domain::event::EventDecodeError;
use orders::domain::heartbeat::{decode_queue_message, Heartbeat, Message};
use orders::domain::view::project_event;
use orders::metrics::{MetricSet, Unit};
use orders::projection::{ApplyError, ReadModel};
use tracing::Instrument;

pub use orders::projection::ProjectionOutcome;

/// Why a record was reported failed (SQS redelivers it; after maxReceiveCount it goes to the
/// dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("record has no body")]
    NoBody,
    #[error(transparent)]
    Decode(#[from] EventDecodeError),
    #[error(transparent)]
    Store(#[from] ApplyError),
}

/// A record that was handled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projected {
    pub outcome: ProjectionOutcome,
    /// Milliseconds from the event's occurrence (or the heartbeat's emission) to its
    /// projection.
    pub lag_ms: f64,
    /// The record was a heartbeat, not an order event.
    pub heartbeat: bool,
}

/// A failed record without a message id cannot be reported alone, so the whole batch fails.
#[derive(Debug, thiserror::Error)]
#[error("a failed record has no messageId; failing the whole batch")]
pub struct UnidentifiableFailure;

/// The updater's dependencies, built once per process.
#[derive(Clone)]
pub struct Projector {
    read_model: ReadModel,
    concurrency: usize,
}

impl Projector {
    pub fn new(read_model: ReadModel, concurrency: usize) -> Self {
        Self {
            read_model,
            concurrency: concurrency.max(1),
        }
    }

    /// Projects a batch, at most `concurrency` records at a time, and names the failed ones
    /// (ReportBatchItemFailures): one bad record never fails or drops the others.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnidentifiableFailure> {
        let results: Vec<(Option<String>, Result<Projected, ProjectionError>)> =
            stream::iter(event.records)
                .map(|record| async move {
                    let id = record.message_id.clone();
                    let span = tracing::info_span!(
                        "record",
                        message_id = id.as_deref().unwrap_or(""),
                        order_id = tracing::field::Empty,
                        correlation_id = tracing::field::Empty,
                    );
                    (id, self.project_record(&record).instrument(span).await)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;

        let outcomes: Vec<Option<Projected>> = results
            .iter()
            .map(|(_, r)| r.as_ref().ok().copied())
            .collect();
        batch_metrics(&outcomes).emit();

        let mut response = SqsBatchResponse::default();
        for (message_id, result) in results {
            if result.is_ok() {
                continue;
            }
            let Some(message_id) = message_id.filter(|id| !id.is_empty()) else {
                return Err(UnidentifiableFailure);
            };
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }

    /// Decodes one record and applies its projection (see [`ReadModel::apply`]): a stale or
    /// duplicate event changes nothing and is acknowledged.
    pub async fn project_record(&self, record: &SqsMessage) -> Result<Projected, ProjectionError> {
        let result = self.project(record).await;
        match &result {
            Ok(projected) => tracing::info!(
                outcome = projected.outcome.as_str(),
                projection_lag_ms = projected.lag_ms,
                "record projected"
            ),
            Err(err @ ProjectionError::Decode(_)) | Err(err @ ProjectionError::NoBody) => {
                tracing::error!(error = %err, "record rejected")
            }
            Err(ProjectionError::Store(err)) if !err.is_transient() => {
                tracing::error!(error = %err, "record failed on a permanent fault; it is retried until it lands in the dead-letter queue")
            }
            Err(err) => tracing::warn!(error = %err, "record failed; it will be retried"),
        }
        result
    }

    async fn project(&self, record: &SqsMessage) -> Result<Projected, ProjectionError> {
        let body = record.body.as_deref().ok_or(ProjectionError::NoBody)?;
        let event = match decode_queue_message(body)? {
            Message::Order(event) => event,
            Message::Heartbeat(heartbeat) => return self.record_heartbeat(&heartbeat).await,
        };
        let span = tracing::Span::current();
        span.record("order_id", event.order_id.to_string());
        if let Some(correlation_id) = &event.correlation_id {
            span.record("correlation_id", correlation_id.as_str());
        }
        tracing::info!(
            order_id = %event.order_id,
            version = event.order_version,
            event_type = event.event_type.as_str(),
            "projecting event"
        );
        let now = time::OffsetDateTime::now_utc();
        let projection = project_event(&event, now);
        let outcome = self.read_model.apply(&projection).await?;
        let lag_ms = ((now - event.occurred_at).as_seconds_f64() * 1000.0).max(0.0);
        Ok(Projected {
            outcome,
            lag_ms,
            heartbeat: false,
        })
    }

    /// Stores the heartbeat in its item (unless a later one is there) and measures its lag.
    async fn record_heartbeat(&self, heartbeat: &Heartbeat) -> Result<Projected, ProjectionError> {
        let now = time::OffsetDateTime::now_utc();
        let lag_ms = heartbeat.lag_ms(now);
        let outcome = match self
            .read_model
            .views
            .put_heartbeat(heartbeat, lag_ms, now)
            .await
            .map_err(ApplyError::from)?
        {
            orders::dynamodb::WriteOutcome::Applied => ProjectionOutcome::Applied,
            orders::dynamodb::WriteOutcome::Stale => ProjectionOutcome::Stale,
        };
        tracing::info!(
            event_id = %heartbeat.event_id,
            emitted_at = %orders::domain::timestamp::format(heartbeat.emitted_at),
            outcome = outcome.as_str(),
            heartbeat_lag_ms = lag_ms,
            "heartbeat projected"
        );
        Ok(Projected {
            outcome,
            lag_ms,
            heartbeat: true,
        })
    }
}

/// The batch's log line and EMF record, from each record's outcome (`None`: failed). Order
/// events count as applied, stale or failed with their maximum `ProjectionLag`; heartbeats
/// report `HeartbeatLag`, only in batches that carried one, so a pipeline that stops
/// delivering heartbeats leaves that metric missing (its alarm treats missing as breaching).
pub fn batch_metrics(outcomes: &[Option<Projected>]) -> MetricSet {
    let (mut applied, mut stale, mut failed, mut max_lag) = (0, 0, 0, 0f64);
    let mut heartbeat_lag: Option<f64> = None;
    for outcome in outcomes {
        match outcome {
            None => failed += 1,
            Some(p) if p.heartbeat => {
                heartbeat_lag = Some(heartbeat_lag.unwrap_or(0f64).max(p.lag_ms));
            }
            Some(p) => {
                match p.outcome {
                    ProjectionOutcome::Applied => applied += 1,
                    ProjectionOutcome::Stale => stale += 1,
                }
                max_lag = max_lag.max(p.lag_ms);
            }
        }
    }
    tracing::info!(
        batch_size = outcomes.len(),
        applied,
        stale,
        failed,
        projection_lag_max_ms = max_lag,
        heartbeat_lag_ms = heartbeat_lag,
        "batch projected"
    );
    let metrics = MetricSet::new()
        .count("BatchSize", outcomes.len())
        .count("ProjectionsApplied", applied)
        .count("ProjectionsStale", stale)
        .count("ProjectionsFailed", failed)
        .metric("ProjectionLag", Unit::Milliseconds, max_lag);
    match heartbeat_lag {
        Some(lag) => metrics.metric("HeartbeatLag", Unit::Milliseconds, lag),
        None => metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projected(heartbeat: bool, lag_ms: f64) -> Option<Projected> {
        Some(Projected {
            outcome: ProjectionOutcome::Applied,
            lag_ms,
            heartbeat,
        })
    }

    #[test]
    fn heartbeat_lag_is_reported_apart_and_only_when_a_heartbeat_came() {
        let doc = batch_metrics(&[projected(false, 40.0), projected(true, 120.0), None]).to_json();
        assert_eq!(doc["HeartbeatLag"], 120.0);
        assert_eq!(doc["ProjectionLag"], 40.0);
        assert_eq!(doc["ProjectionsApplied"], 1.0);
        assert_eq!(doc["ProjectionsFailed"], 1.0);
        assert_eq!(doc["BatchSize"], 3.0);
        let names: Vec<_> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_string())
            .collect();
        assert!(names.contains(&"HeartbeatLag".to_string()));
        let doc = batch_metrics(&[projected(false, 40.0)]).to_json();
        assert!(doc.get("HeartbeatLag").is_none(), "{doc}");
    }
}
