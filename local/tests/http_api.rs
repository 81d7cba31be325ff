//! The API Gateway emulation in front of a function process (the Runtime API fake): routing,
//! the payload 2.0 event the function receives, the response it sends back, and the answers
//! API Gateway gives by itself (404, 413, 500, 503 while closed), and its JWT authorizer.

mod fake;

use fake::Fake;
use orders_local::auth::{self, SigningKey, Subject, Verifier};
use orders_local::http_api::{self, Gateway, Route, RouteAuthorizer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Status, headers and body of one request, made off the async runtime.
async fn request(
    method: &'static str,
    url: String,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, ureq::http::HeaderMap, Vec<u8>) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        let response = agent().run(builder.body(body).unwrap()).expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().read_to_vec().unwrap_or_default();
        (status, headers, body)
    })
    .await
    .unwrap()
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

#[tokio::test]
async fn the_gateway_behaves_like_api_gateway() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(3), "normal");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gateway = Gateway::new("123456789012", "local");
    let server = tokio::spawn(http_api::serve(listener, gateway.clone()));

    // Closed until the routes are installed.
    let (status, _, body) = request("GET", format!("{base}/items/1"), vec![], &[]).await;
    assert_eq!(
        (status, json(&body)),
        (503, json!({"message": "Service Unavailable"}))
    );
    let (status, _, _) = request("GET", format!("{base}/health"), vec![], &[]).await;
    assert_eq!(status, 503);

    let routes = [
        "GET /items/{id}",
        "POST /upload",
        "ANY /error",
        "ANY /crash",
        "ANY /slow",
        "ANY /garbage",
    ]
    .iter()
    .map(|r| {
        let (method, path) = r.split_once(' ').unwrap();
        Route::new(method, Some(path), function.clone())
    })
    .collect();
    gateway.open(routes, Arc::new(|| json!({"status": "ok"})));

    let (status, _, body) = request("GET", format!("{base}/health"), vec![], &[]).await;
    assert_eq!((status, json(&body)), (200, json!({"status": "ok"})));

    // A routed request: the event in, the response out.
    let (status, headers, body) = request(
        "GET",
        format!("{base}/items/abc%20d?x=1&x=2&y=z"),
        vec![],
        &[
            ("cookie", "s=1; t=2"),
            ("user-agent", "test-agent"),
            ("X-Custom", "v"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-fake"], "yes");
    assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    assert!(headers.contains_key("apigw-requestid"));
    let event = json(&body);
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "GET /items/{id}");
    assert_eq!(event["rawPath"], "/items/abc%20d");
    assert_eq!(event["rawQueryString"], "x=1&x=2&y=z");
    assert_eq!(event["pathParameters"], json!({"id": "abc d"}));
    assert_eq!(
        event["queryStringParameters"],
        json!({"x": "1,2", "y": "z"})
    );
    assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
    assert_eq!(event["headers"]["x-custom"], "v");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["requestContext"]["http"]["userAgent"], "test-agent");
    assert_eq!(event["requestContext"]["stage"], "$default");
    assert!(event.get("body").is_none());
    let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(event).unwrap();
    assert_eq!(typed.request_context.http.method, http::Method::GET);

    // Binary bodies arrive base64-encoded.
    let (status, _, body) = request(
        "POST",
        format!("{base}/upload"),
        vec![0, 159, 146, 150],
        &[("content-type", "application/octet-stream")],
    )
    .await;
    assert_eq!(status, 200);
    let event = json(&body);
    assert_eq!(
        (event["isBase64Encoded"].clone(), event["body"].clone()),
        (json!(true), json!("AJ+Slg=="))
    );

    // API Gateway's own answers.
    let not_found = json!({"message": "Not Found"});
    let (status, _, body) = request("GET", format!("{base}/nowhere"), vec![], &[]).await;
    assert_eq!((status, json(&body)), (404, not_found.clone()));
    let (status, _, body) = request("DELETE", format!("{base}/items/1"), vec![], &[]).await;
    assert_eq!((status, json(&body)), (404, not_found));
    let (status, _, body) = request(
        "POST",
        format!("{base}/upload"),
        vec![b'x'; http_api::MAX_PAYLOAD + 1],
        &[],
    )
    .await;
    assert_eq!(
        (status, json(&body)),
        (413, json!({"message": "Request Entity Too Large"}))
    );
    let internal = json!({"message": "Internal Server Error"});
    for path in ["/error", "/garbage", "/crash", "/slow"] {
        let (status, _, body) = request("POST", format!("{base}{path}"), vec![], &[]).await;
        assert_eq!((status, json(&body)), (500, internal.clone()), "{path}");
    }
    // After the crash and the timeout, a new process serves the next request.
    let (status, _, _) = request("GET", format!("{base}/items/2"), vec![], &[]).await;
    assert_eq!(status, 200);

    server.abort();
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_jwt_authorizer_behaves_like_api_gateway() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(3), "normal");
    let state = std::env::temp_dir().join(format!(
        "orders-local-http-auth-{}-{}",
        std::process::id(),
        auth::now()
    ));
    let key = SigningKey::load_or_create(&state).unwrap();
    let verifier = Arc::new(Verifier::local(&key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gateway = Gateway::new("123456789012", "local");
    let server = tokio::spawn(http_api::serve(listener, gateway.clone()));
    let authorizer = |scopes: &[&str]| RouteAuthorizer {
        name: "OrdersJwt".into(),
        verifier: verifier.clone(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    };
    gateway.set_jwks(key.jwks());
    gateway.open(
        vec![
            Route::new("GET", Some("/items/{id}"), function.clone()).with_auth(authorizer(&[])),
            Route::new("POST", Some("/admin"), function.clone())
                .with_auth(authorizer(&["orders/admin"])),
            Route::new("GET", Some("/open"), function.clone()),
        ],
        Arc::new(|| json!({"status": "ok"})),
    );
    let now = auth::now();
    let customer = key
        .sign(&auth::claims(&Subject::Customer("cust-1".into()), 600, now))
        .unwrap();
    let staff = key.sign(&auth::claims(&Subject::Staff, 600, now)).unwrap();
    let mut expired = auth::claims(&Subject::Customer("cust-1".into()), 600, now);
    expired["exp"] = json!(now - 600);
    let expired = key.sign(&expired).unwrap();
    let bearer = |token: &str| format!("Bearer {token}");

    let unauthorized = json!({"message": "Unauthorized"});
    let (status, headers, body) = request("GET", format!("{base}/items/1"), vec![], &[]).await;
    assert_eq!((status, json(&body)), (401, unauthorized.clone()));
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(headers.contains_key("apigw-requestid"));
    let (status, headers, body) = request(
        "GET",
        format!("{base}/items/1"),
        vec![],
        &[("authorization", &bearer(&expired))],
    )
    .await;
    assert_eq!((status, json(&body)), (401, unauthorized.clone()));
    assert_eq!(
        headers["www-authenticate"],
        "Bearer scope=\"\" error=\"invalid_token\" error_description=\"the token has expired\""
    );
    // An unknown route is still 404, token or not.
    let (status, _, _) = request("GET", format!("{base}/nowhere"), vec![], &[]).await;
    assert_eq!(status, 404);

    // A valid token: the claims reach the function, every value a string.
    let (status, _, body) = request(
        "GET",
        format!("{base}/items/1"),
        vec![],
        &[("authorization", &bearer(&customer))],
    )
    .await;
    assert_eq!(status, 200);
    let event = json(&body);
    let jwt = &event["requestContext"]["authorizer"]["jwt"];
    assert_eq!(jwt["claims"]["sub"], "cust-1");
    assert_eq!(jwt["claims"]["iss"], auth::LOCAL_ISSUER);
    assert_eq!(jwt["claims"]["exp"], (now + 600).to_string());
    assert_eq!(jwt["scopes"], Value::Null);
    let typed: aws_lambda_events::apigw::ApiGatewayV2httpRequest =
        serde_json::from_value(event.clone()).unwrap();
    let claims = typed
        .request_context
        .authorizer
        .unwrap()
        .jwt
        .unwrap()
        .claims;
    assert_eq!(
        claims.get("scope").map(String::as_str),
        Some(auth::CUSTOMER_SCOPE)
    );
    // Without `Bearer ` too.
    let (status, _, _) = request(
        "GET",
        format!("{base}/items/1"),
        vec![],
        &[("authorization", &customer)],
    )
    .await;
    assert_eq!(status, 200);

    // Route scopes: a customer token lacks orders/admin (403); staff has it.
    let (status, headers, body) = request(
        "POST",
        format!("{base}/admin"),
        vec![],
        &[("authorization", &bearer(&customer))],
    )
    .await;
    assert_eq!(
        (status, json(&body)),
        (403, json!({"message": "Forbidden"}))
    );
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    let (status, _, body) = request(
        "POST",
        format!("{base}/admin"),
        vec![],
        &[("authorization", &bearer(&staff))],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["requestContext"]["authorizer"]["jwt"]["scopes"],
        json!(["orders/admin"])
    );

    // A route without an authorizer takes anyone, and passes no authorizer context.
    let (status, _, body) = request("GET", format!("{base}/open"), vec![], &[]).await;
    assert_eq!(status, 200);
    assert!(json(&body)["requestContext"].get("authorizer").is_none());

    // The issuer's public key.
    let (status, _, body) =
        request("GET", format!("{base}{}", http_api::JWKS_PATH), vec![], &[]).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["keys"][0]["kid"], key.kid.as_str());

    server.abort();
    function.stop(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&state);
}
