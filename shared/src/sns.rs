//! Publishing order events to the SNS topic.

use crate::domain::event::OrderEvent;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use std::time::Duration;

/// SNS accepts at most this many messages in one PublishBatch call.
pub const MAX_BATCH: usize = 10;

/// An event waiting in the outbox, ready to publish as stored.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub order_id: uuid::Uuid,
    pub correlation_id: Option<String>,
    pub payload: String,
}

fn attribute(value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| PublishError::Sns(e.to_string()))
}

/// A failed publish. The event stays in the outbox and is published later.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publishing to SNS timed out after {0:?}")]
    Timeout(Duration),
    #[error("SNS rejected the publish: {0}")]
    Sns(String),
    #[error("event could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Publishes events to one topic, with `eventType` and `orderId` message attributes so that
/// subscribers can filter without reading the body.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    timeout: Duration,
}

impl EventPublisher {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: String, timeout: Duration) -> Self {
        Self {
            client: aws_sdk_sns::Client::new(config),
            topic_arn,
            timeout,
        }
    }

    /// Publishes an already serialized event (as stored in the outbox); returns SNS's
    /// message id.
    pub async fn publish_payload(
        &self,
        event_type: &str,
        order_id: &str,
        correlation_id: Option<&str>,
        payload: String,
    ) -> Result<String, PublishError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(payload)
            .message_attributes("eventType", attribute(event_type)?)
            .message_attributes("orderId", attribute(order_id)?);
        if let Some(correlation_id) = correlation_id {
            request = request.message_attributes("correlationId", attribute(correlation_id)?);
        }
        let request = request.send();
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(PublishError::Timeout(self.timeout)),
            Ok(Err(err)) => Err(PublishError::Sns(
                aws_sdk_sns::error::DisplayErrorContext(err).to_string(),
            )),
            Ok(Ok(output)) => Ok(output.message_id.unwrap_or_default()),
        }
    }

    pub async fn publish(&self, event: &OrderEvent) -> Result<String, PublishError> {
        let payload = serde_json::to_string(event)?;
        self.publish_payload(
            event.event_type.as_str(),
            &event.order_id.to_string(),
            event.correlation_id.as_deref(),
            payload,
        )
        .await
    }

    /// Publishes up to [`MAX_BATCH`] events in one call; one result per event, in order.
    pub async fn publish_batch(&self, events: &[PendingEvent]) -> Vec<Result<(), PublishError>> {
        let entries: Result<Vec<_>, PublishError> = events
            .iter()
            .map(|e| {
                let mut entry = PublishBatchRequestEntry::builder()
                    .id(e.event_id.simple().to_string())
                    .message(&e.payload)
                    .message_attributes("eventType", attribute(&e.event_type)?)
                    .message_attributes("orderId", attribute(&e.order_id.to_string())?);
                if let Some(correlation_id) = &e.correlation_id {
                    entry = entry.message_attributes("correlationId", attribute(correlation_id)?);
                }
                entry
                    .build()
                    .map_err(|err| PublishError::Sns(err.to_string()))
            })
            .collect();
        let entries = match entries {
            Ok(entries) => entries,
            Err(err) => {
                return events
                    .iter()
                    .map(|_| Err(PublishError::Sns(err.to_string())))
                    .collect()
            }
        };
        let request = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send();
        let output = match tokio::time::timeout(self.timeout, request).await {
            Err(_) => {
                return events
                    .iter()
                    .map(|_| Err(PublishError::Timeout(self.timeout)))
                    .collect()
            }
            Ok(Err(err)) => {
                let text = aws_sdk_sns::error::DisplayErrorContext(err).to_string();
                return events
                    .iter()
                    .map(|_| Err(PublishError::Sns(text.clone())))
                    .collect();
            }
            Ok(Ok(output)) => output,
        };
        let failed: std::collections::HashMap<String, String> = output
            .failed
            .unwrap_or_default()
            .into_iter()
            .map(|f| {
                (
                    f.id,
                    format!("{}: {}", f.code, f.message.unwrap_or_default()),
                )
            })
            .collect();
        let succeeded: std::collections::HashSet<String> = output
            .successful
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.id)
            .collect();
        events
            .iter()
            .map(|e| {
                let id = e.event_id.simple().to_string();
                if succeeded.contains(&id) {
                    Ok(())
                } else {
                    Err(PublishError::Sns(
                        failed
                            .get(&id)
                            .cloned()
                            .unwrap_or_else(|| "not acknowledged".into()),
                    ))
                }
            })
            .collect()
    }
}
