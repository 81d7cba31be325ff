//! Domain events: what the write side publishes and the read side projects.
//!
//! Every event carries the full order snapshot at its version, so the projection never needs
//! earlier events: a lost or reordered intermediate event cannot leave a wrong final state.

use super::order::{Order, OrderId};
use super::upcast::{upcast, UpcastError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The envelope schema version this code writes and the newest it can read. Older versions
/// are read through their [upcasters](super::upcast); see `asyncapi.yaml` for each shape.
pub const SCHEMA_VERSION: u32 = 2;

/// The kinds of order events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    OrderCreated,
    /// Any status change but a cancellation.
    OrderStatusChanged,
    OrderCancelled,
    /// The delivery address was set or replaced.
    ShippingAddressChanged,
}

impl EventType {
    /// Every event type, for parsing and for tests.
    pub const ALL: [EventType; 4] = [
        Self::OrderCreated,
        Self::OrderStatusChanged,
        Self::OrderCancelled,
        Self::ShippingAddressChanged,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OrderCreated => "OrderCreated",
            Self::OrderStatusChanged => "OrderStatusChanged",
            Self::OrderCancelled => "OrderCancelled",
            Self::ShippingAddressChanged => "ShippingAddressChanged",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One change to one order, with the order as it stands after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderEvent {
    pub event_id: Uuid,
    pub event_type: EventType,
    pub schema_version: u32,
    pub order_id: OrderId,
    /// The order's version after this event.
    pub order_version: i64,
    #[serde(with = "crate::domain::timestamp")]
    pub occurred_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    pub order: Order,
}

impl OrderEvent {
    /// The event that records a newly placed order.
    pub fn created(order: &Order, correlation_id: Option<String>) -> Self {
        Self::new(EventType::OrderCreated, order, correlation_id)
    }

    /// The event of this type that records `order` as it now stands.
    pub fn new(event_type: EventType, order: &Order, correlation_id: Option<String>) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            schema_version: SCHEMA_VERSION,
            order_id: order.id,
            order_version: order.version,
            occurred_at: order.updated_at,
            correlation_id,
            order: order.clone(),
        }
    }
}

/// Why a queue message is not an event this code can project.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventDecodeError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message is not an order event: {0}")]
    NotAnEvent(String),
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("event schema version {0} is newer than the supported version {SCHEMA_VERSION}")]
    UnsupportedSchemaVersion(u64),
    #[error("old event cannot be upcast: {0}")]
    Upcast(#[from] UpcastError),
    #[error("event is inconsistent: {0}")]
    Inconsistent(String),
}

/// Reads an event from an SQS message body: either an SNS notification envelope (the default
/// subscription) or the bare event (raw message delivery).
pub fn decode_message(body: &str) -> Result<OrderEvent, EventDecodeError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| EventDecodeError::NotJson(e.to_string()))?;
    let value = match unwrap_sns_envelope(&value) {
        Some(inner) => serde_json::from_str(inner)
            .map_err(|e| EventDecodeError::NotJson(format!("SNS Message: {e}")))?,
        None => value,
    };
    decode_event(value)
}

fn unwrap_sns_envelope(value: &serde_json::Value) -> Option<&str> {
    if value.get("Type")?.as_str()? == "Notification" {
        value.get("Message")?.as_str()
    } else {
        None
    }
}

fn decode_event(value: serde_json::Value) -> Result<OrderEvent, EventDecodeError> {
    let serde_json::Value::Object(obj) = value else {
        return Err(EventDecodeError::NotAnEvent(
            "expected a JSON object".into(),
        ));
    };
    let event_type = obj
        .get("eventType")
        .and_then(|v| v.as_str())
        .ok_or_else(|| EventDecodeError::NotAnEvent("missing string field eventType".into()))?;
    if EventType::parse(event_type).is_none() {
        return Err(EventDecodeError::UnknownEventType(event_type.to_string()));
    }
    let schema_version = obj
        .get("schemaVersion")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| {
            EventDecodeError::NotAnEvent("missing numeric field schemaVersion".into())
        })?;
    if schema_version > u64::from(SCHEMA_VERSION) {
        return Err(EventDecodeError::UnsupportedSchemaVersion(schema_version));
    }
    // Older versions are rewritten into the current shape; the decoder below reads that
    // shape only.
    let value = serde_json::Value::Object(upcast(obj, schema_version)?);
    let event: OrderEvent =
        serde_json::from_value(value).map_err(|e| EventDecodeError::NotAnEvent(e.to_string()))?;
    if event.order_id != event.order.id || event.order_version != event.order.version {
        return Err(EventDecodeError::Inconsistent(format!(
            "envelope names order {} version {} but carries order {} version {}",
            event.order_id, event.order_version, event.order.id, event.order.version
        )));
    }
    if event.order_version < 1 {
        return Err(EventDecodeError::Inconsistent(
            "order version must be at least 1".into(),
        ));
    }
    Ok(event)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::validation::decode_request;

    pub(crate) fn sample_event() -> OrderEvent {
        let body = br#"{"customer":{"id":"c-1","name":"Ada","email":"ada@example.com"},
            "currency":"EUR","lines":[{"sku":"S","name":"N","quantity":3,"unitPrice":250}]}"#;
        let order = decode_request(body).unwrap().validate().unwrap();
        OrderEvent::created(&order, Some("corr-1".into()))
    }

    #[test]
    fn created_event_mirrors_the_order() {
        let event = sample_event();
        assert_eq!(event.event_type, EventType::OrderCreated);
        assert_eq!(event.order_id, event.order.id);
        assert_eq!(event.order_version, 1);
        assert_eq!(event.schema_version, SCHEMA_VERSION);
    }

    #[test]
    fn event_types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }

    /// `event` as a first-release version 1 event: `id`, no `history`, no `shippingAddress`.
    pub(crate) fn as_v1(event: &OrderEvent) -> serde_json::Value {
        let mut value = serde_json::to_value(event).unwrap();
        value["schemaVersion"] = 1.into();
        let order = value["order"].as_object_mut().unwrap();
        let id = order.remove("orderId").unwrap();
        order.insert("id".into(), id);
        order.remove("history");
        order.remove("shippingAddress");
        value
    }

    #[test]
    fn version_1_events_are_upcast_and_project_the_same_order() {
        let event = sample_event();
        assert!(event.order.history.is_empty() && event.order.shipping_address.is_none());
        let decoded = decode_message(&as_v1(&event).to_string()).unwrap();
        assert_eq!(decoded, event);
        // A later version 1 event, already with `orderId`, reads the same.
        let mut later = serde_json::to_value(&event).unwrap();
        later["schemaVersion"] = 1.into();
        assert_eq!(decode_message(&later.to_string()).unwrap(), event);
    }

    #[test]
    fn version_2_reads_only_its_own_shape() {
        let event = sample_event();
        let mut old_name = as_v1(&event);
        old_name["schemaVersion"] = SCHEMA_VERSION.into();
        assert!(matches!(
            decode_message(&old_name.to_string()),
            Err(EventDecodeError::NotAnEvent(e)) if e.contains("orderId")
        ));
        // Unknown fields are ignored: adding an optional field is a compatible change.
        let mut extended = serde_json::to_value(&event).unwrap();
        extended["order"]["giftWrap"] = true.into();
        extended["priority"] = "high".into();
        assert_eq!(decode_message(&extended.to_string()).unwrap(), event);
    }

    #[test]
    fn a_version_1_event_that_cannot_be_upcast_is_reported() {
        let mut both = as_v1(&sample_event());
        both["order"]["orderId"] = both["order"]["id"].clone();
        assert!(matches!(
            decode_message(&both.to_string()),
            Err(EventDecodeError::Upcast(_))
        ));
        let mut zero = serde_json::to_value(sample_event()).unwrap();
        zero["schemaVersion"] = 0.into();
        assert_eq!(
            decode_message(&zero.to_string()),
            Err(EventDecodeError::Upcast(UpcastError::UnknownVersion(0)))
        );
    }

    #[test]
    fn decodes_raw_and_sns_wrapped_messages() {
        let event = sample_event();
        let raw = serde_json::to_string(&event).unwrap();
        assert_eq!(decode_message(&raw).unwrap(), event);
        let wrapped = serde_json::json!({
            "Type": "Notification",
            "MessageId": "5b0a8c1e-0000-4000-8000-000000000000",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:order-events",
            "Message": raw,
            "Timestamp": "2026-11-22T10:00:00.000Z",
        });
        assert_eq!(decode_message(&wrapped.to_string()).unwrap(), event);
    }

    #[test]
    fn reports_each_kind_of_bad_message() {
        assert!(matches!(
            decode_message("not json"),
            Err(EventDecodeError::NotJson(_))
        ));
        assert!(matches!(
            decode_message(r#"{"hello":"world"}"#),
            Err(EventDecodeError::NotAnEvent(_))
        ));
        assert!(matches!(
            decode_message("[1]"),
            Err(EventDecodeError::NotAnEvent(_))
        ));
        let mut value = serde_json::to_value(sample_event()).unwrap();
        value["eventType"] = "OrderTeleported".into();
        assert_eq!(
            decode_message(&value.to_string()),
            Err(EventDecodeError::UnknownEventType("OrderTeleported".into()))
        );
        let mut value = serde_json::to_value(sample_event()).unwrap();
        value["schemaVersion"] = (SCHEMA_VERSION + 1).into();
        assert_eq!(
            decode_message(&value.to_string()),
            Err(EventDecodeError::UnsupportedSchemaVersion(3))
        );
        let mut value = serde_json::to_value(sample_event()).unwrap();
        value["orderVersion"] = 7.into();
        assert!(matches!(
            decode_message(&value.to_string()),
            Err(EventDecodeError::Inconsistent(_))
        ));
        let mut value = serde_json::to_value(sample_event()).unwrap();
        value["order"]["total"] = "lots".into();
        assert!(matches!(
            decode_message(&value.to_string()),
            Err(EventDecodeError::NotAnEvent(_))
        ));
        let wrapped = serde_json::json!({"Type": "Notification", "Message": "{oops"});
        assert!(matches!(
            decode_message(&wrapped.to_string()),
            Err(EventDecodeError::NotJson(_))
        ));
    }
}
