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
