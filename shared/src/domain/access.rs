//! Who may do what: the rules the handlers apply to the caller that the API's JWT authorizer
//! verified. A customer acts only on their own orders and may only cancel; staff (a token with
//! the staff scope) may read any order and make any legal status change.

use crate::domain::order::OrderStatus;
use std::collections::HashMap;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A customer, identified by the customer id their token carries.
    Customer { customer_id: String },
    /// Back office: any order, any legal transition.
    Staff { subject: String },
}

/// Why a request has no usable caller (answered 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("the request carries no verified token claims")]
    NoClaims,
    #[error("the token has no {0} claim")]
    MissingClaim(String),
}

/// Why a caller may not do something (answered 403, or 404 where the order must stay unseen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The order belongs to someone else: to this caller it does not exist.
    #[error("the order is not visible to this caller")]
    NotVisible,
    #[error("customers may only place orders for themselves")]
    OtherCustomersOrder,
    #[error("customers may only list their own orders")]
    OtherCustomersListing,
    #[error("customers may only cancel their orders")]
    CustomerStatusChange,
}

/// How callers are read from token claims (from configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The claim that holds a customer's id (`sub` by default).
    pub customer_claim: String,
    /// The scope that makes a caller staff (`orders/admin` by default).
    pub staff_scope: String,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            customer_claim: "sub".into(),
            staff_scope: "orders/admin".into(),
        }
    }
}

impl AccessPolicy {
    /// The caller described by a JWT authorizer's claims (every value a string, as API Gateway
    /// passes them) and scopes. Scopes come from `scopes` and from the `scope`/`scp` claims
    /// (space-separated, or API Gateway's `[a b]` rendering of an array).
    pub fn caller(
        &self,
        claims: &HashMap<String, String>,
        scopes: &[String],
    ) -> Result<Caller, Unauthenticated> {
        if claims.is_empty() {
            return Err(Unauthenticated::NoClaims);
        }
        let claimed = ["scope", "scp"]
            .iter()
            .filter_map(|name| claims.get(*name))
            .flat_map(|text| unbracketed(text.trim()).split_whitespace());
        let is_staff = scopes
            .iter()
            .map(String::as_str)
            .chain(claimed)
            .any(|scope| scope == self.staff_scope);
        let subject = |name: &str| {
            claims
                .get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Unauthenticated::MissingClaim(name.to_string()))
        };
        if is_staff {
            let subject = subject(&self.customer_claim).or_else(|_| subject("sub"))?;
            return Ok(Caller::Staff { subject });
        }
        Ok(Caller::Customer {
            customer_id: subject(&self.customer_claim)?,
        })
    }
}

/// The scope list inside API Gateway's `[a b]` rendering of an array claim; any other text as
/// it is. Only a matched pair around the whole claim is removed, so `orders/admin]` stays a
/// scope of its own (and never counts as `orders/admin`).
fn unbracketed(text: &str) -> &str {
    text.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(text)
}

impl Caller {
    /// Who the caller is, for scoping idempotency keys and for logs.
    pub fn subject(&self) -> &str {
        match self {
            Caller::Customer { customer_id } => customer_id,
            Caller::Staff { subject } => subject,
        }
    }

    pub fn is_staff(&self) -> bool {
        matches!(self, Caller::Staff { .. })
    }

    fn owns(&self, customer_id: &str) -> bool {
        match self {
            Caller::Customer { customer_id: own } => own == customer_id,
            Caller::Staff { .. } => true,
        }
    }

    /// May place an order for `customer_id`.
    pub fn may_order_for(&self, customer_id: &str) -> Result<(), Denied> {
        self.owns(customer_id)
            .then_some(())
            .ok_or(Denied::OtherCustomersOrder)
    }

    /// May see the order of `owner` (otherwise it answers as if the order did not exist).
    pub fn may_read(&self, owner: &str) -> Result<(), Denied> {
        self.owns(owner).then_some(()).ok_or(Denied::NotVisible)
    }

    /// May list the orders of `customer_id`.
    pub fn may_list(&self, customer_id: &str) -> Result<(), Denied> {
        self.owns(customer_id)
            .then_some(())
            .ok_or(Denied::OtherCustomersListing)
    }

    /// May ask for a change to `to` at all (before the order is looked at).
    pub fn may_request_status(&self, to: OrderStatus) -> Result<(), Denied> {
        match self {
            Caller::Staff { .. } => Ok(()),
            Caller::Customer { .. } if to == OrderStatus::Cancelled => Ok(()),
            Caller::Customer { .. } => Err(Denied::CustomerStatusChange),
        }
    }

    /// The only owner whose orders this caller may see, or none for staff (who see all): the
    /// filter a query applies before it reads, or locks, a row.
    pub fn visible_owner(&self) -> Option<&str> {
        match self {
            Caller::Customer { customer_id } => Some(customer_id),
            Caller::Staff { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn customer(id: &str) -> Caller {
        Caller::Customer {
            customer_id: id.into(),
        }
    }

    #[test]
    fn a_customer_is_the_sub_claim() {
        let policy = AccessPolicy::default();
        let caller = policy.caller(&claims(&[("sub", "cust-1")]), &[]).unwrap();
        assert_eq!(caller, customer("cust-1"));
        assert_eq!(caller.subject(), "cust-1");
    }

    #[test]
    fn the_customer_claim_is_configurable() {
        let policy = AccessPolicy {
            customer_claim: "custom:customer_id".into(),
            ..AccessPolicy::default()
        };
        let caller = policy
            .caller(
                &claims(&[("sub", "uuid-1"), ("custom:customer_id", "cust-9")]),
                &[],
            )
            .unwrap();
        assert_eq!(caller, customer("cust-9"));
        assert_eq!(
            policy.caller(&claims(&[("sub", "uuid-1")]), &[]),
            Err(Unauthenticated::MissingClaim("custom:customer_id".into()))
        );
    }

    #[test]
    fn staff_is_the_scope_from_any_source() {
        let policy = AccessPolicy::default();
        for (claims, scopes) in [
            (claims(&[("sub", "svc"), ("scope", "orders/admin")]), vec![]),
            (
                claims(&[("sub", "svc"), ("scope", "openid orders/admin email")]),
                vec![],
            ),
            (
                claims(&[("sub", "svc"), ("scp", "[orders/admin other]")]),
                vec![],
            ),
            (claims(&[("sub", "svc")]), vec!["orders/admin".to_string()]),
        ] {
            assert!(
                policy.caller(&claims, &scopes).unwrap().is_staff(),
                "{claims:?}"
            );
        }
        // Near misses: a longer scope, and brackets that are not one pair around the claim.
        for scope in [
            "orders/administrator",
            "orders/admin]",
            "[orders/admin",
            "other orders/admin]",
            "[orders/admin] other",
            "[[orders/admin]]",
        ] {
            let caller = policy
                .caller(&claims(&[("sub", "c"), ("scope", scope)]), &[])
                .unwrap();
            assert!(!caller.is_staff(), "{scope:?} must not count as staff");
        }
    }

    #[test]
    fn no_claims_or_no_subject_is_unauthenticated() {
        let policy = AccessPolicy::default();
        assert_eq!(
            policy.caller(&HashMap::new(), &[]),
            Err(Unauthenticated::NoClaims)
        );
        assert_eq!(
            policy.caller(&claims(&[("sub", "  "), ("exp", "1")]), &[]),
            Err(Unauthenticated::MissingClaim("sub".into()))
        );
    }

    #[test]
    fn customers_act_on_their_own_orders_only() {
        let ada = customer("ada");
        assert_eq!(ada.may_order_for("ada"), Ok(()));
        assert_eq!(ada.may_order_for("bob"), Err(Denied::OtherCustomersOrder));
        assert_eq!(ada.may_read("bob"), Err(Denied::NotVisible));
        assert_eq!(ada.may_list("bob"), Err(Denied::OtherCustomersListing));
        assert_eq!(ada.visible_owner(), Some("ada"));
        assert_eq!(ada.may_request_status(OrderStatus::Cancelled), Ok(()));
        for to in [
            OrderStatus::Confirmed,
            OrderStatus::Shipped,
            OrderStatus::Delivered,
        ] {
            assert_eq!(
                ada.may_request_status(to),
                Err(Denied::CustomerStatusChange)
            );
        }
    }

    #[test]
    fn staff_may_do_anything_legal() {
        let staff = Caller::Staff {
            subject: "ops".into(),
        };
        assert_eq!(staff.may_order_for("bob"), Ok(()));
        assert_eq!(staff.may_read("bob"), Ok(()));
        assert_eq!(staff.may_list("bob"), Ok(()));
        assert_eq!(staff.may_request_status(OrderStatus::Shipped), Ok(()));
        assert_eq!(staff.visible_owner(), None);
    }
}
