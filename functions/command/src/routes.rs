//! The command routes: `POST /orders`, and `POST /orders/{id}/{change}` for each change to an
//! existing order. A change is its request body type; the domain's `decide` does the rest.

use lambda_http::http::Method;
use lambda_http::{Request, RequestExt};
use orders::domain::command::{ChangeStatusRequest, CommandRequest, OrderCommand};
use orders::domain::order::ShippingAddress;
use orders::domain::validation::decode_body;
use orders::problem::Problem;

/// The changes to an existing order, by the last segment of their path.
pub(crate) const CHANGES: &[ChangeRoute] = &[
    ChangeRoute::of::<ChangeStatusRequest>("status"),
    ChangeRoute::of::<ShippingAddress>("shipping-address"),
];

/// A validated command and the canonical form of the request that asked for it.
pub(crate) type Decoded = (OrderCommand, serde_json::Value);

/// One `POST /orders/{id}/{segment}` route.
pub(crate) struct ChangeRoute {
    pub segment: &'static str,
    /// Reads the body as the route's request type and validates it.
    pub decode: fn(&[u8]) -> Result<Decoded, Problem>,
}

impl ChangeRoute {
    const fn of<R: CommandRequest>(segment: &'static str) -> Self {
        Self {
            segment,
            decode: decode::<R>,
        }
    }

    /// The operation an idempotency key is scoped to.
    pub fn operation(&self) -> String {
        format!("POST /orders/{{id}}/{}", self.segment)
    }
}

fn decode<R: CommandRequest>(body: &[u8]) -> Result<Decoded, Problem> {
    let input: R = decode_body(body).map_err(Problem::undecodable)?;
    let command = input.command().map_err(Problem::validation)?;
    // The canonical form: a retry must send the same request, whatever its formatting.
    let canonical = serde_json::to_value(&input).map_err(|_| Problem::internal())?;
    Ok((command, canonical))
}

/// What a request asks for.
pub(crate) enum Route {
    CreateOrder,
    Change {
        id: String,
        route: &'static ChangeRoute,
    },
}

pub(crate) fn route(request: &Request) -> Result<Route, Problem> {
    let path = request.uri().path().trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let change = match segments.as_slice() {
        ["orders"] => None,
        ["orders", id, segment] => CHANGES
            .iter()
            .find(|c| c.segment == *segment)
            .map(|route| (*id, route)),
        _ => return Err(Problem::not_found(format!("No route for {path}"))),
    };
    let route = match change {
        None if segments.len() == 1 => Route::CreateOrder,
        None => return Err(Problem::not_found(format!("No route for {path}"))),
        Some((id, route)) => Route::Change {
            id: request
                .path_parameters_ref()
                .and_then(|p| p.first("id"))
                .unwrap_or(id)
                .to_string(),
            route,
        },
    };
    if request.method() != Method::POST {
        return Err(Problem::method_not_allowed(request.method().as_str()));
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orders::OrderStatus;

    fn sample(name: &str) -> Request {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        lambda_http::request::from_str(&text).unwrap()
    }

    #[test]
    fn each_change_has_its_own_segment_and_reads_its_own_body() {
        let mut segments: Vec<_> = CHANGES.iter().map(|c| c.segment).collect();
        segments.sort_unstable();
        segments.dedup();
        assert_eq!(segments.len(), CHANGES.len());
        let status = CHANGES.iter().find(|c| c.segment == "status").unwrap();
        let (command, canonical) = (status.decode)(br#"{ "status": "SHIPPED" }"#).unwrap();
        assert_eq!(
            command,
            OrderCommand::ChangeStatus {
                to: OrderStatus::Shipped,
                reason: None
            }
        );
        assert_eq!(canonical, serde_json::json!({"status": "SHIPPED"}));
        assert_eq!(
            (status.decode)(br#"{"status":"LOST"}"#).unwrap_err().status,
            422
        );
        assert_eq!((status.decode)(b"{").unwrap_err().status, 400);
        let address = CHANGES
            .iter()
            .find(|c| c.segment == "shipping-address")
            .unwrap();
        assert_eq!(
            (address.decode)(br#"{"status":"SHIPPED"}"#)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn the_sample_requests_find_their_routes() {
        assert!(matches!(
            route(&sample("post-order.json")),
            Ok(Route::CreateOrder)
        ));
        for (name, segment) in [
            ("post-order-status.json", "status"),
            ("shipping-address-change.json", "shipping-address"),
        ] {
            match route(&sample(name)) {
                Ok(Route::Change { id, route }) => {
                    assert_eq!(id, "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d");
                    assert_eq!(route.segment, segment);
                }
                _ => panic!("{name} has no change route"),
            }
        }
        let get = sample("get-order.json");
        assert_eq!(route(&get).err().map(|p| p.status), Some(404));
    }
}
