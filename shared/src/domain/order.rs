//! The order aggregate as stored in PostgreSQL and carried, whole, in every event.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

/// An order's identifier: a UUID (version 7, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(Uuid);

impl OrderId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for OrderId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// The text was not a UUID in its canonical hyphenated form.
#[derive(Debug, thiserror::Error)]
#[error("order id must be a UUID such as 0192f1c4-8a5e-7c3b-9d2f-4b6a8e1c0d3f")]
pub struct InvalidOrderId;

impl FromStr for OrderId {
    type Err = InvalidOrderId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical 36-character form: no braces, URNs or simple (unhyphenated) form,
        // so one order has exactly one URL.
        if s.len() != 36 {
            return Err(InvalidOrderId);
        }
        Uuid::try_parse(s).map(Self).map_err(|_| InvalidOrderId)
    }
}

/// Where an order stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// The lifecycle: PENDING -> CONFIRMED -> SHIPPED -> DELIVERED, and CANCELLED from
    /// PENDING or CONFIRMED. DELIVERED and CANCELLED are final.
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (Pending, Confirmed)
                | (Confirmed, Shipped)
                | (Shipped, Delivered)
                | (Pending, Cancelled)
                | (Confirmed, Cancelled)
        )
    }

    /// The statuses this one may move to.
    pub fn next_statuses(self) -> Vec<OrderStatus> {
        use OrderStatus::*;
        [Pending, Confirmed, Shipped, Delivered, Cancelled]
            .into_iter()
            .filter(|n| self.can_become(*n))
            .collect()
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "CONFIRMED" => Ok(Self::Confirmed),
            "SHIPPED" => Ok(Self::Shipped),
            "DELIVERED" => Ok(Self::Delivered),
            "CANCELLED" => Ok(Self::Cancelled),
            other => Err(format!("unknown order status {other:?}")),
        }
    }
}

/// The customer who placed an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
}

/// One line of an order. Money is in the currency's minor unit (cents for USD).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub line_total: i64,
}

/// One status change in an order's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub from: OrderStatus,
    pub to: OrderStatus,
    /// The order's version after the change.
    pub version: i64,
    #[serde(with = "crate::domain::timestamp")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A status change the lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from} cannot become {to}")]
pub struct IllegalTransition {
    pub from: &'static str,
    pub to: &'static str,
}

/// Where an order is to be delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShippingAddress {
    /// Who receives the parcel.
    pub recipient: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 code, for example `DE`.
    pub country: String,
}

/// An order: the write model's aggregate, the snapshot every event carries, the body of every
/// command response and the core of the read model's view. A field is declared here once.
/// Fields added after the first release carry `#[serde(default)]`, so that stored views written
/// before them still decode; events of older schema versions are brought to the current shape
/// by their upcasters (`domain::upcast`) first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// `orderId`; schema version 1 events named it `id` (their upcaster renames it).
    #[serde(rename = "orderId")]
    pub id: OrderId,
    pub customer: Customer,
    /// ISO 4217 code, for example `EUR`.
    pub currency: String,
    pub lines: Vec<OrderLine>,
    /// Sum of the line totals, in minor units.
    pub total: i64,
    pub status: OrderStatus,
    /// Starts at 1 and grows by one with every change.
    pub version: i64,
    #[serde(with = "crate::domain::timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::domain::timestamp")]
    pub updated_at: OffsetDateTime,
    /// Every status change, oldest first.
    #[serde(default)]
    pub history: Vec<StatusChange>,
    /// Where to deliver, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
}

impl Order {
    /// The order after moving to `to`: next version, history extended. Only transitions the
    /// lifecycle allows.
    pub fn with_status(
        &self,
        to: OrderStatus,
        at: OffsetDateTime,
        reason: Option<String>,
    ) -> Result<Order, IllegalTransition> {
        if !self.status.can_become(to) {
            return Err(IllegalTransition {
                from: self.status.as_str(),
                to: to.as_str(),
            });
        }
        let mut next = self.next_version(at);
        next.status = to;
        next.history.push(StatusChange {
            from: self.status,
            to,
            version: next.version,
            at,
            reason,
        });
        Ok(next)
    }

    /// A copy at the next version, changed at `at`: the start of every change.
    pub fn next_version(&self, at: OffsetDateTime) -> Order {
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = at;
        next
    }
}

/// Current time truncated to microseconds, PostgreSQL's `timestamptz` precision, so that a
/// timestamp reads back from the database equal to what was written.
pub fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let micros = now.microsecond();
    now.replace_microsecond(micros).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_id_accepts_only_the_canonical_form() {
        let id = OrderId::new();
        let text = id.to_string();
        assert_eq!(text.parse::<OrderId>().unwrap(), id);
        assert!(text.to_uppercase().parse::<OrderId>().is_ok());
        assert!(text.replace('-', "").parse::<OrderId>().is_err());
        assert!(format!("{{{text}}}").parse::<OrderId>().is_err());
        assert!("not-a-uuid".parse::<OrderId>().is_err());
        assert!("".parse::<OrderId>().is_err());
    }

    #[test]
    fn status_round_trips_through_text_and_json() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn lifecycle_allows_only_forward_moves_and_early_cancellation() {
        use OrderStatus::*;
        let all = [Pending, Confirmed, Shipped, Delivered, Cancelled];
        let allowed: Vec<(OrderStatus, OrderStatus)> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Confirmed),
                (Pending, Cancelled),
                (Confirmed, Shipped),
                (Confirmed, Cancelled),
                (Shipped, Delivered)
            ]
        );
        assert!(Delivered.next_statuses().is_empty());
        assert!(Cancelled.next_statuses().is_empty());
    }

    #[test]
    fn a_status_change_bumps_the_version_and_records_history() {
        let at = now_micros();
        let order = Order {
            id: OrderId::new(),
            customer: Customer {
                id: "c".into(),
                name: "n".into(),
                email: "e@x.io".into(),
            },
            currency: "EUR".into(),
            lines: vec![],
            total: 0,
            status: OrderStatus::Pending,
            version: 1,
            created_at: at,
            updated_at: at,
            history: vec![],
            shipping_address: None,
        };
        let confirmed = order.with_status(OrderStatus::Confirmed, at, None).unwrap();
        assert_eq!(
            (confirmed.version, confirmed.status),
            (2, OrderStatus::Confirmed)
        );
        assert_eq!(confirmed.history.len(), 1);
        assert_eq!(confirmed.history[0].from, OrderStatus::Pending);
        let err = confirmed
            .with_status(OrderStatus::Delivered, at, None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "an order that is CONFIRMED cannot become DELIVERED"
        );
        let cancelled = confirmed
            .with_status(OrderStatus::Cancelled, at, Some("changed my mind".into()))
            .unwrap();
        assert_eq!(cancelled.version, 3);
        assert_eq!(
            cancelled.history[1].reason.as_deref(),
            Some("changed my mind")
        );
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        assert_eq!(now_micros().nanosecond() % 1000, 0);
    }
}
