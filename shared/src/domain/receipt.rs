//! The receipt document stored for each order version.

use super::order::{Customer, Order, OrderId, OrderLine};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A receipt: what the customer bought, for how much, as of one order version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub order_id: OrderId,
    pub order_version: i64,
    pub customer: Customer,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    pub total: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl Receipt {
    pub fn for_order(order: &Order) -> Self {
        Self {
            order_id: order.id,
            order_version: order.version,
            customer: order.customer.clone(),
            currency: order.currency.clone(),
            lines: order.lines.clone(),
            total: order.total,
            issued_at: order.updated_at,
        }
    }

    /// The object key: one per order version, so a redelivered event overwrites its own
    /// receipt and never adds another.
    pub fn key(order_id: OrderId, version: i64) -> String {
        format!("receipts/{order_id}/v{version}.json")
    }

    /// The stored bytes: a pure function of the order, so retries write identical content.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }
}
