//! Unit tests of the HTTP API emulation.

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
