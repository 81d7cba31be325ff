//! Upcasters: an event written at an older schema version, rewritten step by step into the
//! shape of the current version before it is decoded. One pure function per older version,
//! each taking version `n` to `n + 1`; they are chained, so the decoder only knows the
//! current shape.

use super::event::SCHEMA_VERSION;
use serde_json::{Map, Value};

/// Why an old event cannot be brought to the current version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    #[error("schema version {0} was never written")]
    UnknownVersion(u64),
    #[error("version {version} event: {reason}")]
    Malformed { version: u64, reason: String },
}

/// Takes an event from version `n` to `n + 1`.
type Upcaster = fn(Map<String, Value>) -> Result<Map<String, Value>, UpcastError>;

/// `UPCASTERS[i]` takes version `i + 1` to `i + 2`; one entry per version before the current.
const UPCASTERS: [Upcaster; SCHEMA_VERSION as usize - 1] = [v1_to_v2];

/// The event `value`, written at schema version `from`, in the shape of [`SCHEMA_VERSION`]
/// (its `schemaVersion` field included). A current event is returned unchanged.
pub fn upcast(value: Map<String, Value>, from: u64) -> Result<Map<String, Value>, UpcastError> {
    if from == 0 || from > u64::from(SCHEMA_VERSION) {
        return Err(UpcastError::UnknownVersion(from));
    }
    UPCASTERS
        .iter()
        .skip((from - 1) as usize)
        .try_fold(value, |value, step| step(value))
}

/// Version 1 -> 2. Version 1's order snapshot named its id `id` (later releases of version 1
/// already wrote `orderId`) and could lack `history` (before status history was recorded).
/// Version 2 names it `orderId` only and always carries `history`. `shippingAddress` is
/// optional in both: a version 1 event simply has none.
fn v1_to_v2(mut event: Map<String, Value>) -> Result<Map<String, Value>, UpcastError> {
    let malformed = |reason: &str| UpcastError::Malformed {
        version: 1,
        reason: reason.into(),
    };
    let order = event
        .get_mut("order")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| malformed("missing object field order"))?;
    match (order.remove("id"), order.contains_key("orderId")) {
        (Some(_), true) => return Err(malformed("order carries both id and orderId")),
        (Some(id), false) => {
            order.insert("orderId".into(), id);
        }
        (None, _) => {}
    }
    order
        .entry("history")
        .or_insert_with(|| Value::Array(Vec::new()));
    event.insert("schemaVersion".into(), Value::from(2));
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v1_first_release() -> Map<String, Value> {
        let value = json!({
            "eventId": "0193a5f2-7c1f-7a2b-8c3d-4e5f6a7b8c9d",
            "eventType": "OrderCreated",
            "schemaVersion": 1,
            "orderId": "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d",
            "orderVersion": 1,
            "occurredAt": "2026-11-22T10:15:30.123456Z",
            "order": {
                "id": "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d",
                "customer": {"id": "c-1", "name": "Ada", "email": "ada@example.com"},
                "currency": "EUR",
                "lines": [],
                "total": 0,
                "status": "PENDING",
                "version": 1,
                "createdAt": "2026-11-22T10:15:30.123456Z",
                "updatedAt": "2026-11-22T10:15:30.123456Z",
                "futureField": true
            }
        });
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn v1_is_renamed_given_a_history_and_stamped_v2() {
        let upcast = upcast(v1_first_release(), 1).unwrap();
        let order = upcast["order"].as_object().unwrap();
        assert_eq!(order["orderId"], "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d");
        assert!(!order.contains_key("id"));
        assert_eq!(order["history"], json!([]));
        assert!(!order.contains_key("shippingAddress"));
        assert_eq!(upcast["schemaVersion"], 2);
        // Everything else passes through untouched, unknown fields included.
        assert_eq!(order["futureField"], true);
        assert_eq!(upcast["eventId"], v1_first_release()["eventId"]);
    }

    #[test]
    fn a_later_v1_with_order_id_and_history_keeps_them() {
        let mut v1 = v1_first_release();
        let order = v1["order"].as_object_mut().unwrap();
        let id = order.remove("id").unwrap();
        order.insert("orderId".into(), id);
        order.insert("history".into(), json!([{"from": "PENDING"}]));
        let upcast = upcast(v1, 1).unwrap();
        assert_eq!(upcast["order"]["history"], json!([{"from": "PENDING"}]));
        assert_eq!(
            upcast["order"]["orderId"],
            "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d"
        );
    }

    #[test]
    fn the_current_version_is_returned_unchanged() {
        let mut v2 = upcast(v1_first_release(), 1).unwrap();
        v2["order"]["orderId"] = "x".into();
        assert_eq!(upcast(v2.clone(), 2).unwrap(), v2);
    }

    #[test]
    fn unknown_versions_and_malformed_v1_events_are_errors() {
        assert_eq!(
            upcast(v1_first_release(), 0),
            Err(UpcastError::UnknownVersion(0))
        );
        assert_eq!(
            upcast(v1_first_release(), 3),
            Err(UpcastError::UnknownVersion(3))
        );
        let mut both = v1_first_release();
        both["order"]["orderId"] = "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d".into();
        assert!(matches!(
            upcast(both, 1),
            Err(UpcastError::Malformed { version: 1, .. })
        ));
        let mut no_order = v1_first_release();
        no_order.remove("order");
        assert!(matches!(
            upcast(no_order, 1),
            Err(UpcastError::Malformed { version: 1, .. })
        ));
    }
}
