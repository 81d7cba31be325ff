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

use crate::auth::Verifier;
use crate::output;
use crate::runtime_api::Function;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};
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
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    if path == JWKS_PATH && method == "GET" {
        if let Some(jwks) = gateway.jwks.read().expect("gateway lock").clone() {
            return json_response(StatusCode::OK, &jwks);
        }
    }
    let Some((routes, health)) = gateway.snapshot() else {
        if path == "/health" {
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "starting"}),
            );
        }
        return message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    };
    if path == "/health" && method == "GET" {
        return json_response(StatusCode::OK, &health());
    }
    let Some((route, params)) = find(&routes, &method, &path) else {
        log(&method, &path, StatusCode::NOT_FOUND, None, started, None);
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let authorizer = match &route.auth {
        None => None,
        Some(auth) => {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            match auth.verifier.authorize(header.as_deref(), &auth.scopes) {
                Ok(context) => Some(context),
                Err(rejection) => {
                    let status =
                        StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
                    log(
                        &method,
                        &path,
                        status,
                        Some(route),
                        started,
                        Some(&format!("{}: {}", auth.name, rejection.reason)),
                    );
                    let mut response = message(status, rejection.message());
                    if let Ok(value) = HeaderValue::from_str(&rejection.www_authenticate) {
                        response.headers_mut().insert("www-authenticate", value);
                    }
                    if let Ok(value) = HeaderValue::from_str(&request_id()) {
                        response.headers_mut().insert("apigw-requestid", value);
                    }
                    return response;
                }
            }
        }
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_PAYLOAD).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let status = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            log(&method, &path, status, Some(route), started, None);
            return message(
                status,
                if too_large {
                    "Request Entity Too Large"
                } else {
                    "Bad Request"
                },
            );
        }
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
    let mut response = match outcome {
        Err(_) => {
            log(
                &method,
                &path,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(route),
                started,
                Some("integration timeout"),
            );
            message(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        }
        Ok(Err(reason)) => {
            log(
                &method,
                &path,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(route),
                started,
                Some(&reason),
            );
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Ok(Ok(invoked)) => match convert_response(&invoked.body) {
            Ok(response) => {
                log(
                    &method,
                    &path,
                    response.status(),
                    Some(route),
                    started,
                    None,
                );
                response
            }
            Err(why) => {
                log(
                    &method,
                    &path,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Some(route),
                    started,
                    Some(&why),
                );
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        },
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("apigw-requestid", value);
    }
    response
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

/// What goes into one event.
pub struct EventInput<'a> {
    pub route_key: &'a str,
    pub params: &'a [(String, String)],
    pub parts: &'a http::request::Parts,
    pub body: &'a Bytes,
    pub peer: SocketAddr,
    pub request_id: &'a str,
    pub account_id: &'a str,
    pub api_id: &'a str,
    pub now: time::OffsetDateTime,
    /// `requestContext.authorizer` (the JWT authorizer's claims and scopes), if any.
    pub authorizer: Option<&'a Value>,
}

/// True for bodies API Gateway passes as text (the rest is base64-encoded).
fn is_text(headers: &HeaderMap, body: &[u8]) -> bool {
    if std::str::from_utf8(body).is_err() {
        return false;
    }
    let Some(content_type) = headers.get("content-type").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let t = content_type.to_ascii_lowercase();
    t.starts_with("text/")
        || [
            "json",
            "xml",
            "javascript",
            "x-www-form-urlencoded",
            "yaml",
            "graphql",
        ]
        .iter()
        .any(|k| t.contains(k))
}

/// The payload format 2.0 event for one request.
pub fn build_event(input: &EventInput<'_>) -> Value {
    let parts = input.parts;
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or_default();

    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name.as_str() == "cookie" {
            for value in &values {
                cookies.extend(
                    value
                        .split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.into())),
                );
            }
            continue;
        }
        headers.insert(name.as_str().to_string(), Value::String(values.join(",")));
    }
    let source_ip = input.peer.ip().to_string();
    let host = headers
        .get("host")
        .and_then(Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_string();
    let trace = format!(
        "Root=1-{:08x}-{}",
        input.now.unix_timestamp(),
        &uuid::Uuid::new_v4().simple().to_string()[..24]
    );
    for (name, value) in [
        ("x-forwarded-for", source_ip.clone()),
        ("x-forwarded-port", input.peer.port().to_string()),
        ("x-forwarded-proto", "http".to_string()),
        ("x-amzn-trace-id", trace),
    ] {
        headers.entry(name).or_insert(Value::String(value));
    }
    let user_agent = headers
        .get("user-agent")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let mut query = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k), decode(v));
        match query.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                query.insert(k, Value::String(v));
            }
        }
    }

    let now = input.now;
    let time_text = format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        now.day(),
        &format!("{:?}", now.month())[..3],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let protocol = match parts.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    };
    let mut event = json!({
        "version": "2.0",
        "routeKey": input.route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": input.account_id,
            "apiId": input.api_id,
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or_default(),
            "http": {
                "method": parts.method.as_str(),
                "path": raw_path,
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": input.request_id,
            "routeKey": input.route_key,
            "stage": "$default",
            "time": time_text,
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        },
        "isBase64Encoded": false,
    });
    if let Some(authorizer) = input.authorizer {
        event["requestContext"]["authorizer"] = authorizer.clone();
    }
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(query);
    }
    if !input.params.is_empty() {
        event["pathParameters"] = Value::Object(
            input
                .params
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
    }
    if !input.body.is_empty() {
        if is_text(&parts.headers, input.body) {
            event["body"] = Value::String(String::from_utf8_lossy(input.body).into_owned());
        } else {
            event["body"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(input.body));
            event["isBase64Encoded"] = Value::Bool(true);
        }
    }
    event
}

fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(header_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// The HTTP response for a function's answer, as API Gateway builds it for payload 2.0.
pub fn convert_response(body: &[u8]) -> Result<HttpResponse, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the function's response is not JSON: {e}"))?;
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        // Without a statusCode the whole answer is the JSON body of a 200.
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("valid response"));
    };
    let status = match &object["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .and_then(|s| StatusCode::from_u16(s).ok())
    .ok_or_else(|| format!("invalid statusCode {}", object["statusCode"]))?;
    let mut builder = Response::builder().status(status);
    let mut seen = std::collections::HashSet::new();
    if let Some(headers) = object.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let Some(text) = header_text(value) {
                builder = builder.header(name.as_str(), text);
                seen.insert(name.to_ascii_lowercase());
            }
        }
    }
    if let Some(headers) = object.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in headers {
            if seen.contains(&name.to_ascii_lowercase()) {
                continue;
            }
            for value in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(header_text)
            {
                builder = builder.header(name.as_str(), value);
            }
        }
    }
    for cookie in object
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        builder = builder.header("set-cookie", cookie);
    }
    let text = match object.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let bytes = if object.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| format!("body is not valid base64: {e}"))?
    } else {
        text.into_bytes()
    };
    builder
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| format!("invalid response header: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::FunctionSpec;

    fn function(name: &str) -> Function {
        Function::new(FunctionSpec {
            name: name.into(),
            function_name: name.into(),
            program: "/bin/false".into(),
            env: Vec::new(),
            timeout: Duration::from_secs(1),
            init_timeout: Duration::from_secs(1),
            memory_mb: 128,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            show_output: false,
            report: false,
        })
    }

    fn routes() -> Vec<Route> {
        vec![
            Route::new("POST", Some("/orders"), function("command")),
            Route::new("GET", Some("/orders/{id}"), function("query")),
            Route::new("GET", Some("/orders/special"), function("special")),
            Route::new("ANY", Some("/files/{path+}"), function("files")),
        ]
    }

    fn target(method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        let routes = routes();
        find(&routes, method, path).map(|(r, p)| (r.function.name().to_string(), p))
    }

    #[test]
    fn routes_match_like_api_gateway() {
        assert_eq!(target("POST", "/orders"), Some(("command".into(), vec![])));
        assert_eq!(
            target("GET", "/orders/abc%20d"),
            Some(("query".into(), vec![("id".into(), "abc d".into())]))
        );
        assert_eq!(target("GET", "/orders/special").unwrap().0, "special");
        assert_eq!(
            target("DELETE", "/files/a/b.txt"),
            Some(("files".into(), vec![("path".into(), "a/b.txt".into())]))
        );
        assert_eq!(target("GET", "/orders"), None, "wrong method");
        assert_eq!(target("GET", "/orders/"), None, "empty parameter");
        assert_eq!(target("GET", "/orders/a/b"), None, "too many segments");
        assert_eq!(target("POST", "/orders/"), None, "trailing slash");
        assert_eq!(target("GET", "/nothing"), None);
        let mut with_default = routes();
        with_default.push(Route::new("ANY", None, function("fallback")));
        let (route, _) = find(&with_default, "GET", "/nothing").unwrap();
        assert_eq!(route.key(), "$default");
    }

    #[test]
    fn events_have_the_payload_2_0_shape() {
        let request = Request::builder()
            .method("POST")
            .uri("/orders/42?a=1&b=x%20y&a=2")
            .header("Host", "127.0.0.1:3000")
            .header("User-Agent", "curl/8.5.0")
            .header("Content-Type", "application/json")
            .header("X-Multi", "one")
            .header("X-Multi", "two")
            .header("Cookie", "s=1; t=2")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let body = Bytes::from_static(br#"{"k":"v"}"#);
        let now = time::macros::datetime!(2026-11-22 10:15:30.123 UTC);
        let event = build_event(&EventInput {
            route_key: "POST /orders/{id}",
            params: &[("id".into(), "42".into())],
            parts: &parts,
            body: &body,
            peer: "127.0.0.1:5555".parse().unwrap(),
            request_id: "abc=",
            account_id: "123456789012",
            api_id: "local",
            now,
            authorizer: Some(&json!({"jwt": {"claims": {"sub": "c-1"}, "scopes": null}})),
        });
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["rawPath"], "/orders/42");
        assert_eq!(event["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "1,2", "b": "x y"})
        );
        assert_eq!(event["pathParameters"], json!({"id": "42"}));
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert_eq!(event["headers"]["content-type"], "application/json");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(event["body"], r#"{"k":"v"}"#);
        assert_eq!(event["isBase64Encoded"], false);
        let context = &event["requestContext"];
        assert_eq!(context["http"]["method"], "POST");
        assert_eq!(context["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(context["http"]["userAgent"], "curl/8.5.0");
        assert_eq!(context["stage"], "$default");
        assert_eq!(context["time"], "22/Nov/2026:10:15:30 +0000");
        assert_eq!(context["timeEpoch"], 1795342530123i64);
        assert_eq!(context["authorizer"]["jwt"]["claims"]["sub"], "c-1");
        // The official event type accepts it.
        let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
            serde_json::from_value(event).unwrap();
        assert_eq!(typed.route_key.as_deref(), Some("POST /orders/{id}"));
        assert_eq!(
            typed.path_parameters.get("id").map(String::as_str),
            Some("42")
        );
        let jwt = typed.request_context.authorizer.unwrap().jwt.unwrap();
        assert_eq!(jwt.claims.get("sub").map(String::as_str), Some("c-1"));
    }

    #[test]
    fn binary_bodies_are_base64_encoded() {
        let (parts, ()) = Request::builder()
            .method("POST")
            .uri("/upload")
            .header("content-type", "application/octet-stream")
            .body(())
            .unwrap()
            .into_parts();
        let body = Bytes::from_static(&[0, 159, 146, 150]);
        let event = build_event(&EventInput {
            route_key: "POST /upload",
            params: &[],
            parts: &parts,
            body: &body,
            peer: "127.0.0.1:1".parse().unwrap(),
            request_id: "r",
            account_id: "1",
            api_id: "local",
            now: time::OffsetDateTime::now_utc(),
            authorizer: None,
        });
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AJ+Slg==");
        assert!(event["requestContext"].get("authorizer").is_none());
        assert!(event.get("queryStringParameters").is_none());
    }

    async fn body_of(response: HttpResponse) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn responses_convert_back() {
        let response = convert_response(
            br#"{"statusCode":201,"headers":{"content-type":"application/json","location":"/orders/1"},
                "multiValueHeaders":{"x-extra":["a","b"],"location":["ignored"]},
                "cookies":["a=1","b=2"],"body":"{\"id\":1}","isBase64Encoded":false}"#,
        )
        .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/orders/1");
        assert_eq!(response.headers().get_all("x-extra").iter().count(), 2);
        assert_eq!(response.headers().get_all("set-cookie").iter().count(), 2);
        assert_eq!(body_of(response).await, r#"{"id":1}"#);

        let binary =
            convert_response(br#"{"statusCode":"200","body":"AJ+Slg==","isBase64Encoded":true}"#)
                .unwrap();
        let bytes = binary.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes.as_ref(), &[0, 159, 146, 150]);

        let inferred = convert_response(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(inferred.status(), 200);
        assert_eq!(inferred.headers()["content-type"], "application/json");
        assert_eq!(body_of(inferred).await, r#"{"hello":"world"}"#);

        assert!(convert_response(b"not json").is_err());
        assert!(convert_response(br#"{"statusCode":99}"#).is_err());
    }
}
