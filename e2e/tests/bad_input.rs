//! Bad input gets a clear problem+json error and writes nothing.

use e2e::system::{get_order, order_body, post_order, read_json, request_from_event, TestSystem};
use lambda_http::http::header;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_orders_get_problem_details_naming_the_field_and_write_nothing() {
    let sys = TestSystem::start(false).await;
    let valid: serde_json::Value = serde_json::from_str(&order_body("cust-x")).unwrap();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut body = valid.clone();
        edit(&mut body);
        body.to_string()
    };
    let huge = format!(r#"{{"pad": "{}"}}"#, "x".repeat(300 * 1024));
    let cases: Vec<(String, String, u16, &str)> = vec![
        ("not JSON".into(), "{\"customer\": ".into(), 400, ""),
        ("empty".into(), "".into(), 400, ""),
        ("array".into(), "[]".into(), 400, ""),
        ("too large".into(), huge, 413, ""),
        (
            "missing email".into(),
            with(&|b| {
                b["customer"].as_object_mut().unwrap().remove("email");
            }),
            400,
            "customer",
        ),
        (
            "float price".into(),
            with(&|b| b["lines"][0]["unitPrice"] = 19.99.into()),
            400,
            "lines[0].unitPrice",
        ),
        (
            "string quantity".into(),
            with(&|b| b["lines"][1]["quantity"] = "2".into()),
            400,
            "lines[1].quantity",
        ),
        (
            "unknown field".into(),
            with(&|b| b["discount"] = 5.into()),
            400,
            "discount",
        ),
        (
            "zero quantity".into(),
            with(&|b| b["lines"][0]["quantity"] = 0.into()),
            422,
            "lines[0].quantity",
        ),
        (
            "negative quantity".into(),
            with(&|b| b["lines"][1]["quantity"] = (-1).into()),
            422,
            "lines[1].quantity",
        ),
        (
            "unknown currency".into(),
            with(&|b| b["currency"] = "ABC".into()),
            422,
            "currency",
        ),
        (
            "long name".into(),
            with(&|b| b["customer"]["name"] = "n".repeat(201).into()),
            422,
            "customer.name",
        ),
        (
            "no lines".into(),
            with(&|b| b["lines"] = serde_json::json!([])),
            422,
            "lines",
        ),
        (
            "too many lines".into(),
            with(&|b| b["lines"] = serde_json::json!(vec![b["lines"][0].clone(); 101])),
            422,
            "lines",
        ),
        (
            "bad email".into(),
            with(&|b| b["customer"]["email"] = "grace at example".into()),
            422,
            "customer.email",
        ),
    ];
    for (name, body, want_status, want_field) in cases {
        let response = sys.command.handle(post_order(&body)).await;
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{name}"
        );
        let (status, problem) = read_json(&response);
        assert_eq!(status, want_status, "{name}: {problem}");
        assert_eq!(problem["status"], want_status, "{name}");
        assert!(
            problem["type"].as_str().unwrap().starts_with("/problems/"),
            "{name}"
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{name}");
        if !want_field.is_empty() {
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            assert!(
                fields.iter().any(|f| f.starts_with(want_field)),
                "{name}: {problem}"
            );
        }
    }

    // A body the client declared as something other than JSON.
    let form = request_from_event("post-order.json", |v| {
        v["headers"]["content-type"] = "application/x-www-form-urlencoded".into()
    });
    let (status, problem) = read_json(&sys.command.handle(form).await);
    assert_eq!(status, 415, "{problem}");

    // A base64-encoded body (as API Gateway sends binary media) is decoded, not rejected.
    let encoded = request_from_event("post-order.json", |v| {
        use base64::Engine;
        let body = v["body"].as_str().unwrap().to_string();
        v["body"] = base64::engine::general_purpose::STANDARD
            .encode(body)
            .into();
        v["isBase64Encoded"] = true.into();
    });
    let (status, problem) = read_json(&sys.command.handle(encoded).await);
    assert_eq!(status, 201, "{problem}");

    assert_eq!(sys.count("orders"), 1, "only the valid order was written");
    assert_eq!(sys.count("order_lines"), 2);
    assert_eq!(sys.count("outbox"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_unknown_or_malformed_ids_are_404_and_400() {
    let sys = TestSystem::start(false).await;
    let response = sys
        .query
        .handle(get_order(&uuid::Uuid::now_v7().to_string()))
        .await;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(read_json(&response).0, 404);
    for bad in [
        "not-a-uuid",
        "123",
        "0193a5f27c1e7d3a9b8c2f4e6a8b0c1d",
        "'; DROP TABLE orders; --",
    ] {
        let (status, problem) = read_json(&sys.query.handle(get_order(bad)).await);
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["type"], "/problems/invalid-order-id");
    }
    let post = request_from_event("get-order.json", |v| {
        v["requestContext"]["http"]["method"] = "DELETE".into()
    });
    assert_eq!(read_json(&sys.query.handle(post).await).0, 405);
}
