//! The payload format 2.0 event API Gateway sends for a request, and the HTTP response it
//! builds from the function's answer.

use super::{decode, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;

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

    let (mut headers, cookies) = headers_and_cookies(&parts.headers);
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

    let query = query_parameters(raw_query);

    let now = input.now;
    let time_text = request_time(now);
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

/// The request's headers as payload 2.0 carries them (repeated ones joined with commas), and
/// its cookies, which go apart.
fn headers_and_cookies(request_headers: &HeaderMap) -> (Map<String, Value>, Vec<Value>) {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in request_headers.keys() {
        let values: Vec<String> = request_headers
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
    (headers, cookies)
}

/// `queryStringParameters`: repeated names joined with commas.
fn query_parameters(raw_query: &str) -> Map<String, Value> {
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

    query
}

/// `requestContext.time`: `02/Dec/2026:01:14:05 +0000`.
fn request_time(now: time::OffsetDateTime) -> String {
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        now.day(),
        &format!("{:?}", now.month())[..3],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    )
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
