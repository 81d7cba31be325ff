//! The running API and `openapi.yaml` agree: every documented operation answers, every
//! response validates against its documented schema, and `template.yaml` routes exactly the
//! documented operations.

use e2e::system::{
    as_caller, change_address, change_status, get_order, list_orders, order_body, post_order,
    Caller, TestSystem,
};
use lambda_http::http::header;
use lambda_http::{Body, Response};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn openapi() -> Value {
    let text = std::fs::read_to_string(e2e::workspace_root().join("openapi.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Follows a `$ref` inside the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {r}")),
        None => value,
    }
}

struct Contract {
    doc: Value,
    exercised: BTreeSet<(String, String, String)>,
}

impl Contract {
    /// Checks one response of `method path` against the document.
    fn check(&mut self, method: &str, path: &str, response: &Response<Body>) {
        let status = response.status().as_u16().to_string();
        let operation = &self.doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let documented = operation["responses"].get(&status).unwrap_or_else(|| {
            panic!("{method} {path} answered {status}, which is not documented")
        });
        let documented = resolve(&self.doc, documented);
        for (name, _) in documented
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if name == "Idempotent-Replayed" || name == "Location" && status != "201" {
                continue;
            }
            assert!(
                response.headers().contains_key(name.as_str()),
                "{method} {path} {status}: header {name} missing"
            );
        }
        let body = orders::http::body_bytes(response.body());
        match documented.get("content").and_then(Value::as_object) {
            None => assert!(
                body.is_empty(),
                "{method} {path} {status}: undocumented body"
            ),
            Some(content) => {
                let got = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
                let (media_type, spec) = content
                    .iter()
                    .find(|(media_type, _)| *media_type == got)
                    .unwrap_or_else(|| panic!("{method} {path} {status}: {got} is not documented"));
                let schema_ref = match spec["schema"].get("$ref") {
                    Some(r) => r.as_str().unwrap().to_string(),
                    None => format!(
                        "#/paths/{}/{method}/responses/{status}/content/{}/schema",
                        pointer_escape(path),
                        pointer_escape(media_type)
                    ),
                };
                let mut root = self.doc.clone();
                root["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
                root["$ref"] = schema_ref.into();
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .expect("schema compiles");
                let instance: Value = serde_json::from_slice(body).expect("JSON body");
                let errors: Vec<String> = validator
                    .iter_errors(&instance)
                    .map(|e| format!("{} at {}", e, e.instance_path()))
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{method} {path} {status}: {errors:?}\n{instance}"
                );
            }
        }
        self.exercised
            .insert((path.to_string(), method.to_string(), status));
    }
}

/// The shipping address end to end: placed with the order, changed by its owner, projected
/// into the read model each time, and refused to another customer as a missing order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipping_address_travels_from_the_request_to_the_read_model() {
    let sys = TestSystem::start(false).await;
    let mut placed: Value = serde_json::from_str(&order_body("shipper")).unwrap();
    placed["shippingAddress"] = serde_json::json!({"recipient": "Grace", "line1": "1 Navy Yard", "city": "Arlington",
            "postalCode": "22202", "country": "US"});
    let created = sys.command.handle(post_order(&placed.to_string())).await;
    let body: Value = serde_json::from_slice(orders::http::body_bytes(created.body())).unwrap();
    assert_eq!(created.status(), 201, "{body}");
    assert_eq!(body["shippingAddress"], placed["shippingAddress"]);
    let id = body["orderId"].as_str().unwrap().to_string();

    let moved = r#"{"recipient":"Grace","line1":"2 Pier","line2":"Dock 4","city":"Norfolk","postalCode":"23511","country":"US"}"#;
    let as_owner = |request| as_caller(request, Caller::Customer("shipper"));
    let as_other = |request| as_caller(request, Caller::Customer("someone-else"));
    let response = sys
        .command
        .handle(as_other(change_address(&id, moved, &[])))
        .await;
    assert_eq!(response.status(), 404);
    let response = sys
        .command
        .handle(as_owner(change_address(
            &id,
            moved,
            &[("if-match", "\"1\"")],
        )))
        .await;
    let body: Value = serde_json::from_slice(orders::http::body_bytes(response.body())).unwrap();
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(
        (body["version"].as_i64(), body["status"].as_str()),
        (Some(2), Some("PENDING"))
    );

    assert_eq!(sys.drain(2, Duration::from_secs(20)).await, 2);
    let view = sys.query.handle(get_order(&id)).await;
    let view: Value = serde_json::from_slice(orders::http::body_bytes(view.body())).unwrap();
    assert_eq!(view["version"], 2);
    assert_eq!(
        view["shippingAddress"],
        serde_json::from_str::<Value>(moved).unwrap()
    );
    assert_eq!(sys.count("order_status_history"), 0);
    let drift = sys.verify().await;
    assert!(drift.is_clean(), "{:?}", drift.drift);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_answers_with_documented_responses() {
    let sys = TestSystem::start(false).await;
    let mut c = Contract {
        doc: openapi(),
        exercised: BTreeSet::new(),
    };
    let (orders, order, status, listing) = (
        "/orders",
        "/orders/{id}",
        "/orders/{id}/status",
        "/customers/{customerId}/orders",
    );
    let shipping = "/orders/{id}/shipping-address";

    let created = sys
        .command
        .handle(post_order(&order_body("contract")))
        .await;
    c.check("post", orders, &created);
    let id = serde_json::from_slice::<Value>(orders::http::body_bytes(created.body())).unwrap()
        ["orderId"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [
        "{",
        r#"{"customer":1}"#,
        &format!("{{\"x\":\"{}\"}}", "y".repeat(300_000)),
    ] {
        c.check("post", orders, &sys.command.handle(post_order(body)).await);
    }
    let mut invalid: Value = serde_json::from_str(&order_body("contract")).unwrap();
    invalid["currency"] = "ABC".into();
    c.check(
        "post",
        orders,
        &sys.command.handle(post_order(&invalid.to_string())).await,
    );
    let mut form = post_order(&order_body("contract"));
    form.headers_mut()
        .insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
    c.check("post", orders, &sys.command.handle(form).await);

    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(&id, r#"{"status":"CONFIRMED"}"#, &[]))
            .await,
    );
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(&id, r#"{"status":"PENDING"}"#, &[]))
            .await,
    );
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(
                &id,
                r#"{"status":"SHIPPED"}"#,
                &[("if-match", "\"1\"")],
            ))
            .await,
    );
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(&id, r#"{"status":"NOPE"}"#, &[]))
            .await,
    );
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status("bad-id", r#"{"status":"SHIPPED"}"#, &[]))
            .await,
    );
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(
                &id,
                r#"{"status":"SHIPPED"}"#,
                &[("content-type", "text/csv")],
            ))
            .await,
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(&unknown, r#"{"status":"SHIPPED"}"#, &[]))
            .await,
    );

    assert_eq!(sys.drain(2, Duration::from_secs(20)).await, 2);
    c.check("get", order, &sys.query.handle(get_order(&id)).await);
    let mut cached = get_order(&id);
    cached
        .headers_mut()
        .insert(header::IF_NONE_MATCH, "\"2\"".parse().unwrap());
    c.check("get", order, &sys.query.handle(cached).await);
    c.check("get", order, &sys.query.handle(get_order("nope")).await);
    c.check("get", order, &sys.query.handle(get_order(&unknown)).await);

    // The shipping address: changed at version 2, refused with a stale If-Match, a bad body,
    // a bad id, another media type, a missing order, and once the order has shipped.
    let address = r#"{"recipient":"Grace","line1":"1 Navy Yard","city":"Arlington","postalCode":"22202","country":"US"}"#;
    let changed = sys
        .command
        .handle(change_address(&id, address, &[("if-match", "\"2\"")]))
        .await;
    c.check("post", shipping, &changed);
    let body: Value = serde_json::from_slice(orders::http::body_bytes(changed.body())).unwrap();
    assert_eq!(
        (
            body["version"].as_i64(),
            body["shippingAddress"]["city"].as_str()
        ),
        (Some(3), Some("Arlington"))
    );
    for (target, body, headers) in [
        (id.as_str(), address, &[("if-match", "\"2\"")][..]),
        (&id, r#"{"recipient":"Grace"}"#, &[]),
        (&id, &address.replace("US", "usa"), &[]),
        ("bad-id", address, &[]),
        (&id, address, &[("content-type", "text/csv")]),
        (&unknown, address, &[]),
    ] {
        let response = sys
            .command
            .handle(change_address(target, body, headers))
            .await;
        c.check("post", shipping, &response);
    }
    c.check(
        "post",
        status,
        &sys.command
            .handle(change_status(&id, r#"{"status":"SHIPPED"}"#, &[]))
            .await,
    );
    c.check(
        "post",
        shipping,
        &sys.command.handle(change_address(&id, address, &[])).await,
    );

    c.check(
        "get",
        listing,
        &sys.query.handle(list_orders("contract", "limit=1")).await,
    );
    c.check(
        "get",
        listing,
        &sys.query
            .handle(list_orders("contract", "cursor=forged"))
            .await,
    );

    // Who may call: no token (401) on every operation; a customer acting for another (403).
    let anonymous = |request| as_caller(request, Caller::Anonymous);
    let other = |request| as_caller(request, Caller::Customer("someone-else"));
    let (by_anyone, by_other) = (
        sys.command
            .handle(anonymous(post_order(&order_body("contract"))))
            .await,
        sys.command
            .handle(other(post_order(&order_body("contract"))))
            .await,
    );
    c.check("post", orders, &by_anyone);
    c.check("post", orders, &by_other);
    let deliver = || change_status(&id, r#"{"status":"DELIVERED"}"#, &[]);
    c.check(
        "post",
        status,
        &sys.command.handle(anonymous(deliver())).await,
    );
    c.check("post", status, &sys.command.handle(other(deliver())).await);
    c.check(
        "get",
        order,
        &sys.query.handle(anonymous(get_order(&id))).await,
    );
    c.check(
        "post",
        shipping,
        &sys.command
            .handle(anonymous(change_address(&id, address, &[])))
            .await,
    );
    c.check(
        "get",
        listing,
        &sys.query
            .handle(anonymous(list_orders("contract", "")))
            .await,
    );
    c.check(
        "get",
        listing,
        &sys.query.handle(other(list_orders("contract", ""))).await,
    );

    // Every documented operation answered; every documented status except 503 (exercised by
    // the fault tests, which stop the database) was seen.
    let doc = openapi();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for code in operation["responses"].as_object().unwrap().keys() {
                if code == "503" {
                    continue;
                }
                let seen = c
                    .exercised
                    .contains(&(path.clone(), method.clone(), code.clone()));
                assert!(
                    seen,
                    "{method} {path} {code} is documented but was not exercised"
                );
            }
        }
    }
}

#[test]
fn the_template_routes_exactly_the_documented_operations() {
    let doc = openapi();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let text = std::fs::read_to_string(e2e::workspace_root().join("template.yaml")).unwrap();
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("template.yaml parses");
    let mut routed = BTreeSet::new();
    for (_, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        for (_, event) in resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
        {
            if event["Type"].as_str() == Some("HttpApi") {
                let p = &event["Properties"];
                routed.insert((
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    assert_eq!(
        routed, documented,
        "template.yaml routes vs openapi.yaml operations"
    );
}
