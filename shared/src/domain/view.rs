//! The read model: one denormalized item per order, built from events.

use super::event::OrderEvent;
use super::order::{Order, OrderStatus};
use super::receipt::{cancellation_key, documents, receipt_key, Document};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// An order as the read side stores and serves it (the DynamoDB item, and the body of
/// `GET /orders/{id}`): the order's own fields, flattened, and what the read side adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    #[serde(flatten)]
    pub order: Order,
    /// Copied out of `customer` so that an index can list a customer's orders.
    pub customer_id: String,
    /// The HTML receipt in the receipts bucket.
    pub receipt_key: String,
    /// The cancellation notice, once the order is cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellation_key: Option<String>,
    /// The event this view was last built from.
    pub last_event_id: Uuid,
    /// When the projection wrote this view: how fresh the read side is.
    #[serde(with = "crate::domain::timestamp")]
    pub projected_at: OffsetDateTime,
}

/// What projecting one event produces: the view to store and the documents it links to.
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
        order: order.clone(),
        customer_id: order.customer.id.clone(),
        receipt_key: receipt_key(order.id),
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
        assert_eq!(p.view.order, event.order);
        assert_eq!(p.view.customer_id, "c-1");
        assert_eq!(p.view.last_event_id, event.event_id);
        assert_eq!(
            p.view.receipt_key,
            format!("receipts/{}/receipt.html", event.order_id)
        );
        assert_eq!(p.view.cancellation_key, None);
        let keys: Vec<_> = p.documents.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, [p.view.receipt_key.as_str()]);
    }

    #[test]
    fn the_view_reads_and_writes_the_fields_it_always_had() {
        let p = project_event(&sample_event(), crate::domain::order::now_micros());
        let json = serde_json::to_value(&p.view).unwrap();
        for field in [
            "orderId",
            "customerId",
            "customer",
            "total",
            "status",
            "version",
            "createdAt",
            "history",
            "receiptKey",
            "lastEventId",
            "projectedAt",
        ] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        assert!(json.get("id").is_none() && json.get("shippingAddress").is_none());
        assert!(
            json.get("receiptJsonKey").is_none(),
            "no JSON receipt is stored"
        );
        // A view stored before the shipping address existed still decodes.
        let view: OrderView = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(view, p.view);
        // So does one stored when a JSON copy of the receipt was written beside it.
        let mut old = json;
        old["receiptJsonKey"] = "receipts/x/receipt.json".into();
        let view: OrderView = serde_json::from_value(old).unwrap();
        assert_eq!(view, p.view);
    }

    #[test]
    fn documents_do_not_depend_on_projection_time() {
        let event = sample_event();
        let a = project_event(&event, OffsetDateTime::now_utc());
        let b = project_event(&event, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(a.documents, b.documents);
    }

    #[test]
    fn every_document_a_view_links_to_is_written_with_it() {
        let order = sample_event().order;
        let cancelled = order
            .with_status(
                OrderStatus::Cancelled,
                crate::domain::order::now_micros(),
                None,
            )
            .unwrap();
        for order in [order, cancelled] {
            let p = project_order(&order, Uuid::nil(), OffsetDateTime::UNIX_EPOCH);
            let written: Vec<_> = p.documents.iter().map(|d| d.key.clone()).collect();
            let linked: Vec<_> = std::iter::once(p.view.receipt_key.clone())
                .chain(p.view.cancellation_key.clone())
                .collect();
            assert_eq!(written, linked, "{:?}", order.status);
        }
    }
}
