//! An emulation of an API Gateway HTTP API with Lambda proxy integrations (payload format
//! 2.0): routes from the template's `HttpApi` events, the request turned into the documented
//! event (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>),
//! and the function's answer turned back into an HTTP response. What API Gateway answers by
//! itself is reproduced too: 404 `{"message":"Not Found"}` for an unknown route, 413 for a
//! payload over 10 MB, 500 `{"message":"Internal Server Error"}` when the function fails, and
//! 503 `{"message":"Service Unavailable"}` after the 30 s integration timeout.
//!
//! Routes with a JWT authorizer ([`RouteAuthorizer`]) check the `Authorization` header first,
//! as API Gateway does: 401 `{"message":"Unauthorized"}` (or 403 `{"message":"Forbidden"}` for
//! a missing scope) with a `www-authenticate` header, and the token's claims in
//! `requestContext.authorizer.jwt` of the event otherwise (see [`crate::auth`]).
//!
//! `GET /health` (and, with a signing key, `GET /.well-known/jwks.json`) is answered by the
//! runner itself.

mod event;
pub use event::{build_event, convert_response, EventInput};

use crate::auth::Verifier;
use crate::output;
use crate::runtime_api::Function;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Builds the body of `GET /health`.
pub type HealthReport = Arc<dyn Fn() -> Value + Send + Sync>;

/// Where the runner serves the local issuer's public keys.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// API Gateway's request payload limit.
pub const MAX_PAYLOAD: usize = 10 * 1024 * 1024;
/// API Gateway's maximum integration timeout for HTTP APIs.
pub const INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// One route: `METHOD /path/{param}` (method `ANY` matches every method), or `$default`.
#[derive(Clone)]
pub struct Route {
    pub method: String,
    /// `None` for the `$default` route.
    pub path: Option<String>,
    pub function: Function,
    /// The route's JWT authorizer; `None`: open to anyone.
    pub auth: Option<RouteAuthorizer>,
    segments: Vec<Segment>,
}

/// A JWT authorizer attached to a route.
#[derive(Clone)]
pub struct RouteAuthorizer {
    /// The authorizer's name in the template.
    pub name: String,
    pub verifier: Arc<Verifier>,
    /// The route's `AuthorizationScopes` (the token needs one of them); empty: none needed.
    pub scopes: Vec<String>,
}

impl Route {
    pub fn new(method: &str, path: Option<&str>, function: Function) -> Self {
        let segments = path
            .map(|p| {
                p.trim_start_matches('/')
                    .split('/')
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => match name.strip_suffix('+') {
                                Some(greedy) => Segment::Greedy(greedy.into()),
                                None => Segment::Param(name.into()),
                            },
                            None => Segment::Literal(s.into()),
                        },
                    )
                    .collect()
            })
            .unwrap_or_default();
        Self {
            method: method.to_ascii_uppercase(),
            path: path.map(str::to_string),
            function,
            auth: None,
            segments,
        }
    }

    /// The same route behind a JWT authorizer.
    pub fn with_auth(mut self, auth: RouteAuthorizer) -> Self {
        self.auth = Some(auth);
        self
    }

    /// `POST /orders`, or `$default`.
    pub fn key(&self) -> String {
        match &self.path {
            Some(path) => format!("{} {path}", self.method),
            None => "$default".into(),
        }
    }

    /// The path parameters when `path` matches (ignoring the method).
    fn match_path(&self, path: &str) -> Option<Vec<(String, String)>> {
        self.path.as_ref()?;
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut params = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(l) => {
                    if parts.get(i) != Some(&l.as_str()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = parts.get(i).filter(|p| !p.is_empty())?;
                    params.push((name.clone(), decode(value)));
                }
                Segment::Greedy(name) => {
                    let rest = parts
                        .get(i..)
                        .filter(|r| !r.is_empty() && !r[0].is_empty())?;
                    params.push((name.clone(), decode(&rest.join("/"))));
                    return Some(params);
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    /// How specific the route is: more literal segments first, then parameters before a
    /// greedy tail, then a named method before `ANY`.
    fn rank(&self) -> (usize, usize, bool, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let greedy = self
            .segments
            .iter()
            .any(|s| matches!(s, Segment::Greedy(_)));
        (literals, self.segments.len(), !greedy, self.method != "ANY")
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The route for `method path` and its path parameters; `$default` when nothing else matches.
fn find<'r>(
    routes: &'r [Route],
    method: &str,
    path: &str,
) -> Option<(&'r Route, Vec<(String, String)>)> {
    routes
        .iter()
        .filter(|r| r.method == "ANY" || r.method == method)
        .filter_map(|r| r.match_path(path).map(|params| (r, params)))
        .max_by_key(|(r, _)| r.rank())
        .or_else(|| {
            routes
                .iter()
                .find(|r| r.path.is_none())
                .map(|r| (r, Vec::new()))
        })
}

/// The API: closed (503) until [`Gateway::open`] installs the routes.
pub struct Gateway {
    pub account_id: String,
    pub api_id: String,
    state: RwLock<Option<Open>>,
    jwks: RwLock<Option<Value>>,
}

struct Open {
    routes: Arc<Vec<Route>>,
    health: HealthReport,
}

impl Gateway {
    pub fn new(account_id: &str, api_id: &str) -> Arc<Self> {
        Arc::new(Self {
            account_id: account_id.into(),
            api_id: api_id.into(),
            state: RwLock::new(None),
            jwks: RwLock::new(None),
        })
    }

    /// Serves `jwks` (the local issuer's public keys) at `GET /.well-known/jwks.json`.
    pub fn set_jwks(&self, jwks: Value) {
        *self.jwks.write().expect("gateway lock") = Some(jwks);
    }

    /// Starts serving `routes`; `health` produces the body of `GET /health`.
    pub fn open(&self, routes: Vec<Route>, health: HealthReport) {
        *self.state.write().expect("gateway lock") = Some(Open {
            routes: Arc::new(routes),
            health,
        });
    }

    /// Stops serving (503 again), e.g. while shutting down.
    pub fn close(&self) {
        *self.state.write().expect("gateway lock") = None;
    }

    fn snapshot(&self) -> Option<(Arc<Vec<Route>>, HealthReport)> {
        self.state
            .read()
            .expect("gateway lock")
            .as_ref()
            .map(|o| (o.routes.clone(), o.health.clone()))
    }
}

/// Accepts connections until the task is aborted.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&gateway, peer, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

type HttpResponse = Response<Full<Bytes>>;

fn message(status: StatusCode, text: &str) -> HttpResponse {
    json_response(status, &json!({ "message": text }))
}

fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

async fn handle(gateway: &Gateway, peer: SocketAddr, request: Request<Incoming>) -> HttpResponse {
    let call = Call {
        method: request.method().as_str().to_string(),
        path: request.uri().path().to_string(),
        started: Instant::now(),
    };
    if call.path == JWKS_PATH && call.method == "GET" {
        if let Some(jwks) = gateway.jwks.read().expect("gateway lock").clone() {
            return json_response(StatusCode::OK, &jwks);
        }
    }
    let Some((routes, health)) = gateway.snapshot() else {
        if call.path == "/health" {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "starting"}),
            );
        }
        return message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    if call.path == "/health" && call.method == "GET" {
        return json_response(StatusCode::OK, &health());
    }
    let Some((route, params)) = find(&routes, &call.method, &call.path) else {
        call.log(StatusCode::NOT_FOUND, None, None);
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let authorizer = match authorize(&call, route, &request) {
        Ok(authorizer) => authorizer,
        Err(response) => return *response,
    };
    let (parts, body) = request.into_parts();
    let body = match read_body(&call, route, body).await {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let request_id = request_id();
    let event = build_event(&EventInput {
        route_key: &route.key(),
        params: &params,
        parts: &parts,
        body: &body,
        peer,
        request_id: &request_id,
        account_id: &gateway.account_id,
        api_id: &gateway.api_id,
        now: time::OffsetDateTime::now_utc(),
        authorizer: authorizer.as_ref(),
    });
    let mut response = integrate(&call, route, event).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
}

/// One request, for the access log.
struct Call {
    method: String,
    path: String,
    started: Instant,
}

impl Call {
    fn log(&self, status: StatusCode, route: Option<&Route>, why: Option<&str>) {
        log(&self.method, &self.path, status, route, self.started, why);
    }
}

/// The route's JWT authorizer: the claims for `requestContext.authorizer`, or API Gateway's
/// 401/403 answer.
fn authorize(
    call: &Call,
    route: &Route,
    request: &Request<Incoming>,
) -> Result<Option<Value>, Box<HttpResponse>> {
    let Some(auth) = &route.auth else {
        return Ok(None);
    };
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match auth.verifier.authorize(header.as_deref(), &auth.scopes) {
        Ok(context) => Ok(Some(context)),
        Err(rejection) => {
            let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
            call.log(
                status,
                Some(route),
                Some(&format!("{}: {}", auth.name, rejection.reason)),
            );
            let mut response = message(status, rejection.message());
            if let Ok(value) = HeaderValue::from_str(&rejection.www_authenticate) {
                response.headers_mut().insert("www-authenticate", value);
            }
            if let Ok(value) = HeaderValue::from_str(&request_id()) {
                response.headers_mut().insert("apigw-requestid", value);
            }
            Err(Box::new(response))
        }
    }
}

/// The request body, up to [`MAX_PAYLOAD`] (413 beyond).
async fn read_body(call: &Call, route: &Route, body: Incoming) -> Result<Bytes, Box<HttpResponse>> {
    match Limited::new(body, MAX_PAYLOAD).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(error) => {
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            call.log(status, Some(route), None);
            Err(Box::new(message(
                status,
                if too_large {
                    "Request Entity Too Large"
                } else {
                    "Bad Request"
                },
            )))
        }
    }
}

/// Invokes the route's function with the event and turns its answer into the response
/// (500 when it fails, 503 after the integration timeout).
async fn integrate(call: &Call, route: &Route, event: Value) -> HttpResponse {
    let function = route.function.clone();
    let invocation =
        tokio::spawn(async move { function.invoke(Bytes::from(event.to_string())).await });
    // A task that panicked and an invocation that failed both end as API Gateway's 500.
    let outcome = tokio::time::timeout(INTEGRATION_TIMEOUT, invocation)
        .await
        .map(|joined| {
            joined
                .map_err(|e| e.to_string())
                .and_then(|invoked| invoked.map_err(|e| e.to_string()))
        });
    match outcome {
        Err(_) => {
            call.log(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(route),
                Some("integration timeout"),
            );
            message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        Ok(Err(reason)) => {
            call.log(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(route),
                Some(&reason),
            );
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Ok(Ok(invoked)) => match convert_response(&invoked.body) {
            Ok(response) => {
                call.log(response.status(), Some(route), None);
                response
            }
            Err(why) => {
                call.log(StatusCode::INTERNAL_SERVER_ERROR, Some(route), Some(&why));
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
    }
}

fn log(
    method: &str,
    path: &str,
    status: StatusCode,
    route: Option<&Route>,
    started: Instant,
    why: Option<&str>,
) {
    let target = route
        .map(|r| format!(" -> {}", r.function.name()))
        .unwrap_or_default();
    let why = why.map(|w| format!(": {w}")).unwrap_or_default();
    output::prefixed(
        "api",
        &format!(
            "{method} {path}{target} {} ({} ms){why}",
            status.as_u16(),
            started.elapsed().as_millis()
        ),
        status.is_server_error(),
    );
}

/// API Gateway request ids look like `Kq3pWj9hoAMEVNQ=`.
fn request_id() -> String {
    let raw = uuid::Uuid::new_v4();
    let mut id = base64::engine::general_purpose::STANDARD.encode(&raw.as_bytes()[..10]);
    id.retain(|c| c.is_ascii_alphanumeric() || c == '=');
    id
}

#[cfg(test)]
mod tests;
