//! The read model's heartbeat: a message the relay publishes on every run through the same
//! topic and queue as order events, so that the updater can measure the lag of the whole
//! path (SNS -> SQS -> event-source mapping -> updater -> DynamoDB) even when no order moves.
//! It carries no order: the updater keeps one item for it, under a key that is not an order
//! id (so `GET /orders/{id}` can never return it) and without `customerId` (so it is in no
//! customer's listing).

use super::event::{decode_message, EventDecodeError, OrderEvent};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The `eventType` of a heartbeat (body field and message attribute).
pub const HEARTBEAT_EVENT_TYPE: &str = "ReadModelHeartbeat";
/// The heartbeat message's own schema version.
pub const HEARTBEAT_SCHEMA_VERSION: u32 = 1;
/// The table key of the one heartbeat item: not a UUID, so never an order id.
pub const HEARTBEAT_ITEM_KEY: &str = "heartbeat#read-model";

/// One heartbeat, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// When the relay published it; the lag is measured from here.
    #[serde(with = "crate::domain::timestamp")]
    pub emitted_at: OffsetDateTime,
    /// Who emitted it (the relay).
    pub source: String,
}

impl Heartbeat {
    /// A heartbeat emitted now by `source`.
    pub fn new(source: &str, emitted_at: OffsetDateTime) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: HEARTBEAT_EVENT_TYPE.into(),
            schema_version: HEARTBEAT_SCHEMA_VERSION,
            emitted_at,
            source: source.into(),
        }
    }

    /// Milliseconds from emission to `now` (never negative: clocks of two hosts may differ).
    pub fn lag_ms(&self, now: OffsetDateTime) -> f64 {
        ((now - self.emitted_at).as_seconds_f64() * 1000.0).max(0.0)
    }
}

/// What a message on the order-events queue is.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Order(Box<OrderEvent>),
    Heartbeat(Heartbeat),
}

/// Reads a queue message (SNS envelope or raw delivery): a heartbeat, or else an order event
/// decoded by [`decode_message`].
pub fn decode_queue_message(body: &str) -> Result<Message, EventDecodeError> {
    if let Some(heartbeat) = as_heartbeat(body)? {
        return Ok(Message::Heartbeat(heartbeat));
    }
    decode_message(body).map(|event| Message::Order(Box::new(event)))
}

fn as_heartbeat(body: &str) -> Result<Option<Heartbeat>, EventDecodeError> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
        return Ok(None);
    };
    let inner = match value.get("Type").and_then(|t| t.as_str()) {
        Some("Notification") => match value.get("Message").and_then(|m| m.as_str()) {
            Some(message) => match serde_json::from_str(message) {
                Ok(inner) => inner,
                Err(_) => return Ok(None),
            },
            None => return Ok(None),
        },
        _ => value,
    };
    if inner.get("eventType").and_then(|t| t.as_str()) != Some(HEARTBEAT_EVENT_TYPE) {
        return Ok(None);
    }
    let heartbeat: Heartbeat = serde_json::from_value(inner)
        .map_err(|e| EventDecodeError::NotAnEvent(format!("heartbeat: {e}")))?;
    if heartbeat.schema_version > HEARTBEAT_SCHEMA_VERSION {
        return Err(EventDecodeError::UnsupportedSchemaVersion(u64::from(
            heartbeat.schema_version,
        )));
    }
    Ok(Some(heartbeat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::tests::sample_event;
    use crate::domain::order::now_micros;

    #[test]
    fn a_heartbeat_is_recognised_raw_and_in_an_sns_envelope() {
        let heartbeat = Heartbeat::new("relay", now_micros());
        let raw = serde_json::to_string(&heartbeat).unwrap();
        let envelope = serde_json::json!({"Type": "Notification", "Message": raw}).to_string();
        for body in [&raw, &envelope] {
            assert_eq!(
                decode_queue_message(body).unwrap(),
                Message::Heartbeat(heartbeat.clone())
            );
        }
        let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(json["eventType"], HEARTBEAT_EVENT_TYPE);
        assert!(json["emittedAt"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn order_events_still_decode_and_bad_heartbeats_are_rejected() {
        let event = sample_event();
        let body = serde_json::to_string(&event).unwrap();
        assert_eq!(
            decode_queue_message(&body).unwrap(),
            Message::Order(Box::new(event))
        );
        let bad = r#"{"eventType":"ReadModelHeartbeat","schemaVersion":1}"#;
        assert!(matches!(
            decode_queue_message(bad),
            Err(EventDecodeError::NotAnEvent(_))
        ));
        assert!(decode_queue_message("not json").is_err());
    }

    #[test]
    fn lag_is_measured_from_emission_and_never_negative() {
        let at = now_micros();
        let heartbeat = Heartbeat::new("relay", at);
        assert_eq!(
            heartbeat.lag_ms(at + time::Duration::milliseconds(250)),
            250.0
        );
        assert_eq!(heartbeat.lag_ms(at - time::Duration::seconds(1)), 0.0);
    }
}
