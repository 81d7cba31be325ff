//! Commands on orders and the pure decisions they lead to: given the order as it stands, a
//! command and who asks, either the changed order with its event, or a typed refusal.
//! No I/O: the HTTP pipeline and the store run these under a row lock.

use super::access::{Caller, Denied};
use super::event::{EventType, OrderEvent};
use super::order::{IllegalTransition, Order, OrderStatus, ShippingAddress};
use super::validation::{check_address, check_text, FieldError, MAX_REASON_CHARS};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A change to an existing order, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Move through the lifecycle (customers may only cancel).
    ChangeStatus {
        to: OrderStatus,
        reason: Option<String>,
    },
    /// Deliver elsewhere (staff or the owner, while the order is not yet shipped).
    ChangeShippingAddress(ShippingAddress),
}

/// A request body that names one command: each command route's body type.
pub trait CommandRequest: DeserializeOwned + Serialize {
    /// The command, or every field that is wrong.
    fn command(&self) -> Result<OrderCommand, Vec<FieldError>>;
}

/// The body of `POST /orders/{id}/status`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeStatusRequest {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CommandRequest for ChangeStatusRequest {
    fn command(&self) -> Result<OrderCommand, Vec<FieldError>> {
        let mut errors = Vec::new();
        let to = self.status.parse::<OrderStatus>().ok();
        if to.is_none() {
            errors.push(FieldError::new(
                "status",
                "must be one of PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED",
            ));
        }
        if let Some(reason) = &self.reason {
            check_text(&mut errors, || "reason".into(), reason, MAX_REASON_CHARS);
        }
        match to {
            Some(to) if errors.is_empty() => Ok(OrderCommand::ChangeStatus {
                to,
                reason: self.reason.as_ref().map(|r| r.trim().to_string()),
            }),
            _ => Err(errors),
        }
    }
}

/// The body of `POST /orders/{id}/shipping-address` is the address itself.
impl CommandRequest for ShippingAddress {
    fn command(&self) -> Result<OrderCommand, Vec<FieldError>> {
        let mut errors = Vec::new();
        let address = check_address(&mut errors, "", self);
        if errors.is_empty() {
            Ok(OrderCommand::ChangeShippingAddress(address))
        } else {
            Err(errors)
        }
    }
}

/// Who asks, when, and what they expect: everything a decision needs besides the order.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub caller: &'a Caller,
    /// The version named by `If-Match`, if any.
    pub expected_version: Option<i64>,
    pub now: OffsetDateTime,
    pub correlation_id: Option<String>,
}

/// An accepted command: the order as it now stands and the event that records the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub order: Order,
    pub event: OrderEvent,
}

/// Why a command was refused. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another customer's order: to this caller it does not exist.
    #[error("the order is not visible to this caller")]
    NotVisible,
    /// The caller may not ask for this at all.
    #[error(transparent)]
    Forbidden(Denied),
    /// `If-Match` named another version.
    #[error("If-Match names version {expected}, but the order is at version {current}")]
    StaleVersion { expected: i64, current: i64 },
    /// The lifecycle does not allow this status change.
    #[error("{error}")]
    IllegalTransition {
        current: OrderStatus,
        error: IllegalTransition,
    },
    /// The change is allowed only in other statuses.
    #[error("this change is allowed only while the order is {}", names(.allowed))]
    WrongStatus {
        current: OrderStatus,
        allowed: &'static [OrderStatus],
    },
}

fn names(statuses: &[OrderStatus]) -> String {
    let names: Vec<_> = statuses.iter().map(|s| s.as_str()).collect();
    names.join(" or ")
}

/// The statuses in which the shipping address may still change.
pub const ADDRESS_CHANGEABLE: &[OrderStatus] = &[OrderStatus::Pending, OrderStatus::Confirmed];

impl OrderCommand {
    /// Checks what can be checked before the order is read: whether this caller may ask for
    /// this command at all.
    pub fn permitted(&self, caller: &Caller) -> Result<(), Denied> {
        match self {
            OrderCommand::ChangeStatus { to, .. } => caller.may_request_status(*to),
            OrderCommand::ChangeShippingAddress(_) => Ok(()),
        }
    }
}

/// Decides a command against the order as it stands: visibility first (another customer's
/// order answers as a missing one), then permission, then `If-Match`, then the command's rule.
pub fn decide(
    current: &Order,
    command: &OrderCommand,
    context: &Context<'_>,
) -> Result<Decision, Refusal> {
    let caller = context.caller;
    caller
        .may_read(&current.customer.id)
        .map_err(|_| Refusal::NotVisible)?;
    command.permitted(caller).map_err(Refusal::Forbidden)?;
    if let Some(expected) = context.expected_version {
        if expected != current.version {
            return Err(Refusal::StaleVersion {
                expected,
                current: current.version,
            });
        }
    }
    let (order, event_type) = match command {
        OrderCommand::ChangeStatus { to, reason } => {
            let order = current
                .with_status(*to, context.now, reason.clone())
                .map_err(|error| Refusal::IllegalTransition {
                    current: current.status,
                    error,
                })?;
            let event_type = if *to == OrderStatus::Cancelled {
                EventType::OrderCancelled
            } else {
                EventType::OrderStatusChanged
            };
            (order, event_type)
        }
        OrderCommand::ChangeShippingAddress(address) => {
            if !ADDRESS_CHANGEABLE.contains(&current.status) {
                return Err(Refusal::WrongStatus {
                    current: current.status,
                    allowed: ADDRESS_CHANGEABLE,
                });
            }
            let mut order = current.next_version(context.now);
            order.shipping_address = Some(address.clone());
            (order, EventType::ShippingAddressChanged)
        }
    };
    let event = OrderEvent::new(event_type, &order, context.correlation_id.clone());
    Ok(Decision { order, event })
}

/// Places a new, already validated order for this caller: the order and its `OrderCreated`.
pub fn place(
    order: Order,
    caller: &Caller,
    correlation_id: Option<String>,
) -> Result<Decision, Denied> {
    caller.may_order_for(&order.customer.id)?;
    let event = OrderEvent::created(&order, correlation_id);
    Ok(Decision { order, event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::now_micros;
    use crate::domain::validation::decode_request;

    const ADA: &str = "cust-ada";

    fn given_an_order(status: OrderStatus) -> Order {
        let body = format!(
            r#"{{"customer":{{"id":"{ADA}","name":"Ada","email":"ada@example.com"}},
               "currency":"EUR","lines":[{{"sku":"S","name":"N","quantity":1,"unitPrice":5}}]}}"#
        );
        let mut order = decode_request(body.as_bytes()).unwrap().validate().unwrap();
        order.status = status;
        order
    }

    fn customer(id: &str) -> Caller {
        Caller::Customer {
            customer_id: id.into(),
        }
    }

    fn staff() -> Caller {
        Caller::Staff {
            subject: "ops".into(),
        }
    }

    fn when(
        order: &Order,
        command: OrderCommand,
        caller: &Caller,
        expected_version: Option<i64>,
    ) -> Result<Decision, Refusal> {
        let context = Context {
            caller,
            expected_version,
            now: now_micros(),
            correlation_id: Some("corr".into()),
        };
        decide(order, &command, &context)
    }

    fn status(to: OrderStatus) -> OrderCommand {
        OrderCommand::ChangeStatus { to, reason: None }
    }

    fn address(city: &str) -> ShippingAddress {
        ShippingAddress {
            recipient: "Ada".into(),
            line1: "1 Engine Way".into(),
            line2: None,
            city: city.into(),
            postal_code: "N1".into(),
            country: "GB".into(),
        }
    }

    #[test]
    fn staff_confirm_a_pending_order() {
        let order = given_an_order(OrderStatus::Pending);
        let decision = when(&order, status(OrderStatus::Confirmed), &staff(), Some(1)).unwrap();
        assert_eq!(decision.order.status, OrderStatus::Confirmed);
        assert_eq!(decision.order.version, 2);
        assert_eq!(decision.event.event_type, EventType::OrderStatusChanged);
        assert_eq!(decision.event.order, decision.order);
        assert_eq!(decision.event.correlation_id.as_deref(), Some("corr"));
    }

    #[test]
    fn the_owner_cancels_and_the_event_says_so() {
        let order = given_an_order(OrderStatus::Confirmed);
        let decision = when(&order, status(OrderStatus::Cancelled), &customer(ADA), None).unwrap();
        assert_eq!(decision.event.event_type, EventType::OrderCancelled);
        assert_eq!(decision.order.history.len(), 1);
    }

    #[test]
    fn another_customer_cannot_see_the_order_whatever_they_ask() {
        let order = given_an_order(OrderStatus::Pending);
        for command in [
            status(OrderStatus::Cancelled),
            status(OrderStatus::Confirmed),
            OrderCommand::ChangeShippingAddress(address("Paris")),
        ] {
            assert_eq!(
                when(&order, command, &customer("cust-bob"), Some(9)),
                Err(Refusal::NotVisible)
            );
        }
    }

    #[test]
    fn the_owner_may_only_cancel() {
        let order = given_an_order(OrderStatus::Pending);
        assert_eq!(
            when(&order, status(OrderStatus::Confirmed), &customer(ADA), None),
            Err(Refusal::Forbidden(Denied::CustomerStatusChange))
        );
    }

    #[test]
    fn a_stale_if_match_is_refused_before_the_rule() {
        let order = given_an_order(OrderStatus::Delivered);
        assert_eq!(
            when(&order, status(OrderStatus::Shipped), &staff(), Some(3)),
            Err(Refusal::StaleVersion {
                expected: 3,
                current: 1
            })
        );
    }

    #[test]
    fn an_illegal_transition_names_the_current_status() {
        let order = given_an_order(OrderStatus::Pending);
        let refusal = when(&order, status(OrderStatus::Delivered), &staff(), None).unwrap_err();
        assert!(matches!(
            refusal,
            Refusal::IllegalTransition {
                current: OrderStatus::Pending,
                ..
            }
        ));
        assert_eq!(
            refusal.to_string(),
            "an order that is PENDING cannot become DELIVERED"
        );
    }

    #[test]
    fn the_owner_changes_the_address_until_the_order_ships() {
        for current in [OrderStatus::Pending, OrderStatus::Confirmed] {
            let order = given_an_order(current);
            let command = OrderCommand::ChangeShippingAddress(address("Paris"));
            let decision = when(&order, command, &customer(ADA), Some(1)).unwrap();
            assert_eq!(decision.order.shipping_address, Some(address("Paris")));
            assert_eq!(
                (decision.order.version, decision.order.status),
                (2, current)
            );
            assert!(decision.order.history.is_empty());
            assert_eq!(decision.event.event_type, EventType::ShippingAddressChanged);
        }
        for current in [
            OrderStatus::Shipped,
            OrderStatus::Delivered,
            OrderStatus::Cancelled,
        ] {
            let order = given_an_order(current);
            let command = OrderCommand::ChangeShippingAddress(address("Paris"));
            let refusal = when(&order, command, &staff(), None).unwrap_err();
            assert_eq!(
                refusal,
                Refusal::WrongStatus {
                    current,
                    allowed: ADDRESS_CHANGEABLE
                }
            );
            assert_eq!(
                refusal.to_string(),
                "this change is allowed only while the order is PENDING or CONFIRMED"
            );
        }
    }

    #[test]
    fn requests_become_commands_or_name_their_bad_fields() {
        let ok = ChangeStatusRequest {
            status: "SHIPPED".into(),
            reason: Some(" tracking 42 ".into()),
        };
        assert_eq!(
            ok.command(),
            Ok(OrderCommand::ChangeStatus {
                to: OrderStatus::Shipped,
                reason: Some("tracking 42".into())
            })
        );
        let bad = ChangeStatusRequest {
            status: "LOST".into(),
            reason: Some(String::new()),
        };
        let fields: Vec<_> = bad
            .command()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["status", "reason"]);
        let mut wrong = address(" ");
        wrong.country = "Germany".into();
        let fields: Vec<_> = wrong
            .command()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["city", "country"]);
    }

    #[test]
    fn placing_an_order_for_someone_else_is_refused() {
        let order = given_an_order(OrderStatus::Pending);
        assert_eq!(
            place(order.clone(), &customer("cust-bob"), None).unwrap_err(),
            Denied::OtherCustomersOrder
        );
        let decision = place(order.clone(), &customer(ADA), None).unwrap();
        assert_eq!(decision.event.event_type, EventType::OrderCreated);
        assert_eq!(decision.order, order);
    }
}
