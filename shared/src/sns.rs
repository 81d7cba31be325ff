//! Publishing order events to the SNS topic.

use crate::domain::event::OrderEvent;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use std::time::Duration;

/// SNS accepts at most this many messages in one PublishBatch call.
pub const MAX_BATCH: usize = 10;

/// SNS's limit, in bytes, on one message and on all messages of one PublishBatch call
/// together (256 KiB), counting each message's body and its attributes' names, data types
/// and values.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Error codes with which SNS refuses a message for what it is (not for the state of the
/// service or of our permissions): publishing the same message again can never succeed.
const REFUSED_CODES: &[&str] = &[
    "InvalidParameter",
    "InvalidParameterValue",
    "ParameterValueInvalid",
    "ValidationError",
];

/// An event waiting in the outbox, ready to publish as stored.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub order_id: uuid::Uuid,
    pub correlation_id: Option<String>,
    /// The `schemaVersion` the stored payload was written with (not this code's version: an
    /// old event keeps its own).
    pub schema_version: Option<u32>,
    pub payload: String,
}

impl PendingEvent {
    /// The event, serialized, ready to publish.
    pub fn from_event(event: &OrderEvent) -> Result<Self, PublishError> {
        Ok(Self {
            event_id: event.event_id,
            event_type: event.event_type.as_str().to_string(),
            order_id: event.order_id.as_uuid(),
            correlation_id: event.correlation_id.clone(),
            schema_version: Some(event.schema_version),
            payload: serde_json::to_string(event)?,
        })
    }

    /// The message attributes sent with this event (name, data type, value): `eventType`,
    /// `orderId`, `schemaVersion` (a `Number`, for filter policies), and `correlationId` when
    /// there is one (SNS refuses an empty attribute value).
    fn attributes(&self) -> Vec<(&'static str, &'static str, String)> {
        let mut attributes = vec![
            ("eventType", STRING_TYPE, self.event_type.clone()),
            ("orderId", STRING_TYPE, self.order_id.to_string()),
        ];
        if let Some(version) = self.schema_version {
            attributes.push(("schemaVersion", NUMBER_TYPE, version.to_string()));
        }
        if let Some(id) = self.correlation_id.as_deref().filter(|id| !id.is_empty()) {
            attributes.push(("correlationId", STRING_TYPE, id.to_string()));
        }
        attributes
    }

    /// The bytes SNS counts against [`MAX_PAYLOAD_BYTES`] for this event.
    pub fn publish_size(&self) -> usize {
        self.payload.len()
            + self
                .attributes()
                .iter()
                .map(|(name, data_type, value)| name.len() + data_type.len() + value.len())
                .sum::<usize>()
    }
}

/// Events split, in order, into PublishBatch calls SNS accepts.
#[derive(Debug, Default)]
pub struct Packed<'a> {
    /// Each at most [`MAX_BATCH`] events, together at most [`MAX_PAYLOAD_BYTES`].
    pub batches: Vec<Vec<&'a PendingEvent>>,
    /// Events larger than [`MAX_PAYLOAD_BYTES`] on their own: SNS never accepts them.
    pub too_large: Vec<&'a PendingEvent>,
}

/// Packs events, keeping their order, into as few batches as the count and size limits allow.
pub fn pack(events: &[PendingEvent]) -> Packed<'_> {
    let mut packed = Packed::default();
    let mut current: Vec<&PendingEvent> = Vec::new();
    let mut current_bytes = 0;
    for event in events {
        let size = event.publish_size();
        if size > MAX_PAYLOAD_BYTES {
            packed.too_large.push(event);
            continue;
        }
        if current.len() == MAX_BATCH || current_bytes + size > MAX_PAYLOAD_BYTES {
            packed.batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current.push(event);
        current_bytes += size;
    }
    if !current.is_empty() {
        packed.batches.push(current);
    }
    packed
}

const STRING_TYPE: &str = "String";
const NUMBER_TYPE: &str = "Number";

fn attribute(data_type: &str, value: &str) -> Result<MessageAttributeValue, PublishError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| PublishError::Sns(e.to_string()))
}

/// A failed publish. The event stays in the outbox and is published later, unless the
/// failure is [permanent](PublishError::is_permanent).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("publishing to SNS timed out after {0:?}")]
    Timeout(Duration),
    #[error("SNS rejected the publish: {0}")]
    Sns(String),
    /// SNS refused this message, in a call it otherwise accepted, for what it carries (a
    /// malformed or oversized message), not for a passing reason.
    #[error("SNS refused the message: {0}")]
    Refused(String),
    /// SNS refused the whole call as invalid. One of its messages may be the cause, or the
    /// call itself (a wrong topic): not permanent for any one event by itself.
    #[error("SNS refused the request: {0}")]
    RequestRefused(String),
    #[error(
        "the event is {bytes} bytes with its attributes; SNS accepts at most {MAX_PAYLOAD_BYTES}"
    )]
    TooLarge { bytes: usize },
    #[error("event could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl PublishError {
    /// True when publishing the same event again can never succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused(_) | Self::TooLarge { .. })
    }

    fn from_sdk<E, R>(err: aws_sdk_sns::error::SdkError<E, R>) -> Self
    where
        E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let refused = err
            .as_service_error()
            .and_then(|e| e.code())
            .is_some_and(|code| REFUSED_CODES.contains(&code));
        let text = aws_sdk_sns::error::DisplayErrorContext(err).to_string();
        if refused {
            Self::RequestRefused(text)
        } else {
            Self::Sns(text)
        }
    }
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

    /// Publishes one event with its attributes; returns SNS's message id.
    pub async fn publish_pending(&self, event: &PendingEvent) -> Result<String, PublishError> {
        let mut request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(&event.payload);
        for (name, data_type, value) in event.attributes() {
            request = request.message_attributes(name, attribute(data_type, &value)?);
        }
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => Err(PublishError::Timeout(self.timeout)),
            Ok(Err(err)) => Err(PublishError::from_sdk(err)),
            Ok(Ok(output)) => Ok(output.message_id.unwrap_or_default()),
        }
    }

    pub async fn publish(&self, event: &OrderEvent) -> Result<String, PublishError> {
        self.publish_pending(&PendingEvent::from_event(event)?)
            .await
    }

    /// Publishes a read-model heartbeat with its `eventType` message attribute (it has no
    /// order, so no `orderId`); returns SNS's message id.
    pub async fn publish_heartbeat(
        &self,
        heartbeat: &crate::domain::heartbeat::Heartbeat,
    ) -> Result<String, PublishError> {
        let request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(serde_json::to_string(heartbeat)?)
            .message_attributes("eventType", attribute(STRING_TYPE, &heartbeat.event_type)?)
            .send();
        match tokio::time::timeout(self.timeout, request).await {
            Err(_) => Err(PublishError::Timeout(self.timeout)),
            Ok(Err(err)) => Err(PublishError::from_sdk(err)),
            Ok(Ok(output)) => Ok(output.message_id.unwrap_or_default()),
        }
    }

    /// Publishes one batch from [`pack`] in one call; one result per event, in order.
    pub async fn publish_batch(&self, events: &[&PendingEvent]) -> Vec<Result<(), PublishError>> {
        let entries: Result<Vec<_>, PublishError> = events
            .iter()
            .map(|e| {
                let mut entry = PublishBatchRequestEntry::builder()
                    .id(e.event_id.simple().to_string())
                    .message(&e.payload);
                for (name, data_type, value) in e.attributes() {
                    entry = entry.message_attributes(name, attribute(data_type, &value)?);
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
                let err = PublishError::from_sdk(err);
                return events
                    .iter()
                    .map(|_| {
                        Err(match &err {
                            PublishError::RequestRefused(text) => {
                                PublishError::RequestRefused(text.clone())
                            }
                            other => PublishError::Sns(other.to_string()),
                        })
                    })
                    .collect();
            }
            Ok(Ok(output)) => output,
        };
        let mut failed: std::collections::HashMap<String, PublishError> = output
            .failed
            .unwrap_or_default()
            .into_iter()
            .map(|f| {
                let text = format!("{}: {}", f.code, f.message.unwrap_or_default());
                let error = if f.sender_fault && REFUSED_CODES.contains(&f.code.as_str()) {
                    PublishError::Refused(text)
                } else {
                    PublishError::Sns(text)
                };
                (f.id, error)
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
                    Err(failed
                        .remove(&id)
                        .unwrap_or_else(|| PublishError::Sns("not acknowledged".into())))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(payload_bytes: usize) -> PendingEvent {
        PendingEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: "OrderCreated".into(),
            order_id: uuid::Uuid::new_v4(),
            correlation_id: Some("c-1".into()),
            schema_version: Some(2),
            payload: "x".repeat(payload_bytes),
        }
    }

    fn check(packed: &Packed<'_>) {
        for batch in &packed.batches {
            assert!(!batch.is_empty() && batch.len() <= MAX_BATCH);
            let bytes: usize = batch.iter().map(|e| e.publish_size()).sum();
            assert!(bytes <= MAX_PAYLOAD_BYTES, "batch of {bytes} bytes");
        }
    }

    #[test]
    fn size_counts_the_body_and_every_attribute() {
        let e = event(100);
        let attributes = "eventType".len()
            + 6
            + "OrderCreated".len()
            + "orderId".len()
            + 6
            + 36
            + "schemaVersion".len()
            + "Number".len()
            + 1
            + "correlationId".len()
            + 6
            + 3;
        assert_eq!(e.publish_size(), 100 + attributes);
        let mut uncorrelated = event(100);
        uncorrelated.correlation_id = Some(String::new());
        assert_eq!(
            uncorrelated.attributes().len(),
            3,
            "no empty attribute is sent"
        );
    }

    #[test]
    fn large_events_are_packed_by_bytes_and_small_ones_by_count() {
        // 100 events of about 120 KB: two fit in 256 KiB, three do not.
        let large: Vec<PendingEvent> = (0..100).map(|_| event(120_000)).collect();
        let packed = pack(&large);
        check(&packed);
        assert_eq!(packed.batches.len(), 50);
        assert!(packed.too_large.is_empty());

        let small: Vec<PendingEvent> = (0..25).map(|_| event(500)).collect();
        let packed = pack(&small);
        check(&packed);
        assert_eq!(
            packed.batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
    }

    #[test]
    fn an_event_too_large_on_its_own_is_set_apart_and_order_is_kept() {
        let mut events = vec![event(1000), event(MAX_PAYLOAD_BYTES), event(1000)];
        events.push(event(MAX_PAYLOAD_BYTES - event(0).publish_size()));
        let packed = pack(&events);
        check(&packed);
        assert_eq!(packed.too_large.len(), 1);
        assert_eq!(packed.too_large[0].event_id, events[1].event_id);
        let order: Vec<_> = packed.batches.concat().iter().map(|e| e.event_id).collect();
        assert_eq!(
            order,
            [events[0].event_id, events[2].event_id, events[3].event_id]
        );
        assert_eq!(packed.batches.len(), 2, "the exactly-full event goes alone");
    }

    #[test]
    fn only_refusals_and_oversized_events_are_permanent() {
        assert!(PublishError::Refused("InvalidParameter".into()).is_permanent());
        assert!(PublishError::TooLarge { bytes: 300_000 }.is_permanent());
        assert!(!PublishError::Sns("Throttled".into()).is_permanent());
        assert!(!PublishError::RequestRefused("InvalidParameter: TopicArn".into()).is_permanent());
        assert!(!PublishError::Timeout(Duration::from_secs(2)).is_permanent());
    }
}
