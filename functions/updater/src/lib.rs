//! SQS -> read model: project each order event into DynamoDB and S3.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use orders::domain::event::{decode_message, EventDecodeError};
use orders::domain::view::project_event;
use orders::dynamodb::{OrderViewStore, ViewStoreError, WriteOutcome};
use orders::s3::{ReceiptStore, ReceiptStoreError};
use tracing::Instrument;

/// What happened to one record that was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionOutcome {
    /// The view now reflects the event.
    Applied,
    /// A newer version was already projected; the event was acknowledged and ignored.
    Stale,
}

/// Why a record was reported failed (SQS redelivers it; after maxReceiveCount it goes to the
/// dead-letter queue).
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("record has no body")]
    NoBody,
    #[error(transparent)]
    Decode(#[from] EventDecodeError),
    #[error(transparent)]
    View(#[from] ViewStoreError),
    #[error(transparent)]
    Receipt(#[from] ReceiptStoreError),
}

/// A failed record without a message id cannot be reported alone, so the whole batch fails.
#[derive(Debug, thiserror::Error)]
#[error("a failed record has no messageId; failing the whole batch")]
pub struct UnidentifiableFailure;

/// The updater's dependencies, built once per process.
#[derive(Clone)]
pub struct Projector {
    views: OrderViewStore,
    receipts: ReceiptStore,
    concurrency: usize,
}

impl Projector {
    pub fn new(views: OrderViewStore, receipts: ReceiptStore, concurrency: usize) -> Self {
        Self {
            views,
            receipts,
            concurrency: concurrency.max(1),
        }
    }

    /// Projects a batch, at most `concurrency` records at a time, and names the failed ones
    /// (ReportBatchItemFailures): one bad record never fails or drops the others.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, UnidentifiableFailure> {
        let results: Vec<(Option<String>, Result<ProjectionOutcome, ProjectionError>)> =
            stream::iter(event.records)
                .map(|record| async move {
                    let id = record.message_id.clone();
                    let span =
                        tracing::info_span!("record", message_id = id.as_deref().unwrap_or(""));
                    (id, self.project_record(&record).instrument(span).await)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;

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

    /// Writes the view if it is not older than the stored one, then the receipt. A stale
    /// event changes nothing. Re-projecting the same version is idempotent, so a record whose
    /// receipt write failed completes on redelivery.
    pub async fn project_record(
        &self,
        record: &SqsMessage,
    ) -> Result<ProjectionOutcome, ProjectionError> {
        let result = self.project(record).await;
        match &result {
            Ok(outcome) => tracing::info!(?outcome, "record projected"),
            Err(err @ ProjectionError::Decode(_)) | Err(err @ ProjectionError::NoBody) => {
                tracing::error!(error = %err, "record rejected")
            }
            Err(err) => tracing::warn!(error = %err, "record failed; it will be retried"),
        }
        result
    }

    async fn project(&self, record: &SqsMessage) -> Result<ProjectionOutcome, ProjectionError> {
        let body = record.body.as_deref().ok_or(ProjectionError::NoBody)?;
        let event = decode_message(body)?;
        let span = tracing::Span::current();
        span.record("message_id", record.message_id.as_deref().unwrap_or(""));
        tracing::info!(
            order_id = %event.order_id,
            version = event.order_version,
            event_type = event.event_type.as_str(),
            correlation_id = event.correlation_id.as_deref().unwrap_or(""),
            "projecting event"
        );
        let projection = project_event(&event, time::OffsetDateTime::now_utc());
        match self.views.put_if_not_older(&projection.view).await? {
            WriteOutcome::Stale => Ok(ProjectionOutcome::Stale),
            WriteOutcome::Applied => {
                self.receipts
                    .put(
                        &projection.receipt_key,
                        projection.receipt.to_json(),
                        "application/json",
                    )
                    .await?;
                Ok(ProjectionOutcome::Applied)
            }
        }
    }
}
