//! The read model: one denormalized item per order, built from events.

use super::event::OrderEvent;
use super::order::{Customer, Order, OrderId, OrderLine, OrderStatus, StatusChange};
use super::receipt::{cancellation_key, documents, receipt_json_key, receipt_key, Document};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// An order as the read side stores and serves it (the DynamoDB item, and the body of
/// `GET /orders/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub order_id: OrderId,
    /// Copied out of `customer` so that an index can list a customer's orders.
    pub customer_id: String,
    pub customer: Customer,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub total: i64,
    pub status: OrderStatus,
    pub version: i64,
    #[serde(with = "crate::domain::timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::domain::timestamp")]
    pub updated_at: OffsetDateTime,
    /// Every status change, oldest first.
    #[serde(default)]
    pub history: Vec<StatusChange>,
    /// The HTML receipt in the receipts bucket.
    pub receipt_key: String,
    /// Its JSON copy.
    pub receipt_json_key: String,
    /// The cancellation notice, once the order is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_key: Option<String>,
    /// The event this view was last built from.
    pub last_event_id: Uuid,
    /// When the projection wrote this view: how fresh the read side is.
    #[serde(with = "crate::domain::timestamp")]
    pub projected_at: OffsetDateTime,
}

/// What projecting one event produces: the view to store and the documents beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub view: OrderView,
    pub documents: Vec<Document>,
}

/// Builds the read model for an event from the snapshot it carries.
pub fn project_event(event: &OrderEvent, projected_at: OffsetDateTime) -> Projection {
    project_order(&event.order, event.event_id, projected_at)
}

/// Builds the read model for an order as the write model holds it (used by rebuild).
pub fn project_order(
    order: &Order,
    last_event_id: Uuid,
    projected_at: OffsetDateTime,
) -> Projection {
    let view = OrderView {
        order_id: order.id,
        customer_id: order.customer.id.clone(),
        customer: order.customer.clone(),
        currency: order.currency.clone(),
        lines: order.lines.clone(),
        total: order.total,
        status: order.status,
        version: order.version,
        created_at: order.created_at,
        updated_at: order.updated_at,
        history: order.history.clone(),
        receipt_key: receipt_key(order.id),
        receipt_json_key: receipt_json_key(order.id),
        cancellation_key: (order.status == OrderStatus::Cancelled)
            .then(|| cancellation_key(order.id)),
        last_event_id,
        projected_at,
    };
    Projection {
        view,
        documents: documents(order),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::tests::sample_event;

    #[test]
    fn view_carries_the_snapshot_and_document_keys() {
        let event = sample_event();
        let now = OffsetDateTime::now_utc();
        let p = project_event(&event, now);
        assert_eq!(p.view.order_id, event.order_id);
        assert_eq!(p.view.customer_id, "c-1");
        assert_eq!(p.view.total, 750);
        assert_eq!(p.view.lines[0].line_total, 750);
        assert_eq!(p.view.version, 1);
        assert_eq!(p.view.last_event_id, event.event_id);
        assert_eq!(
            p.view.receipt_key,
            format!("receipts/{}/receipt.html", event.order_id)
        );
        assert_eq!(p.view.cancellation_key, None);
        let keys: Vec<_> = p.documents.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                p.view.receipt_key.as_str(),
                p.view.receipt_json_key.as_str()
            ]
        );
    }

    #[test]
    fn documents_do_not_depend_on_projection_time() {
        let event = sample_event();
        let a = project_event(&event, OffsetDateTime::now_utc());
        let b = project_event(&event, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(a.documents, b.documents);
    }
}
