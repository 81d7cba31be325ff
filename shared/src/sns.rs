//! Publishing order events to the SNS topic.

use crate::domain::event::OrderEvent;
use aws_sdk_sns::types::MessageAttributeValue;
use std::time::Duration;

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
        payload: String,
    ) -> Result<String, PublishError> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| PublishError::Sns(e.to_string()))
        };
        let request = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(payload)
            .message_attributes("eventType", attribute(event_type)?)
            .message_attributes("orderId", attribute(order_id)?)
            .send();
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
            payload,
        )
        .await
    }
}
