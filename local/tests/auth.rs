//! The JWT authorizer through `scripts/run-local`, as a client meets it: no token, a garbage,
//! expired, foreign-key, wrong-audience or wrong-issuer token get API Gateway's 401; a
//! customer's token places and reads the customer's own orders, staff reads any, another
//! customer learns nothing; `scripts/mint-token` prints a token the runner accepts; `/health`
//! and the JWKS need no token.

mod common;

use common::*;
use orders_local::auth::{self, SigningKey, Subject};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

fn post_order(agent: &ureq::Agent, base: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut request = agent
        .post(&format!("{base}/orders"))
        .header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    json_of(
        request
            .send(order_body("cust-auth-a"))
            .expect("POST /orders"),
    )
}

fn get(agent: &ureq::Agent, url: &str, token: &str) -> (u16, Value) {
    json_of(
        agent
            .get(url)
            .header("authorization", bearer(token))
            .call()
            .expect("GET"),
    )
}

#[test]
fn the_runner_requires_tokens_as_api_gateway_does() {
    let state = StateDir::new("auth");
    let runner = Runner::start(&state.0, Ports::free(), &[]);
    let base = runner.base.clone();
    let agent = agent();
    let output = runner.output();
    assert!(
        output.contains("JWT authorizer OrdersJwt emulated: issuer https://orders-local.invalid"),
        "{output}"
    );
    assert!(output.contains("(JWT OrdersJwt)"), "{output}");

    // The runner's own endpoints need no token.
    let (status, health) = json_of(agent.get(&format!("{base}/health")).call().expect("health"));
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "{health}");
    let (status, jwks) = json_of(
        agent
            .get(&format!("{base}/.well-known/jwks.json"))
            .call()
            .expect("jwks"),
    );
    let key = SigningKey::load(&auth::key_path(&state.0)).expect("the runner's key");
    assert_eq!(status, 200);
    assert_eq!(jwks["keys"][0]["kid"], key.kid.as_str(), "{jwks}");

    // Every kind of bad token: 401 {"message":"Unauthorized"}, before the function runs.
    let now = auth::now();
    let valid = auth::claims(&Subject::Customer("cust-auth-a".into()), 600, now);
    let with = |changes: Value| {
        let mut claims = valid.clone();
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        bearer(&key.sign(&claims).unwrap())
    };
    let other_state = StateDir::new("auth-other-key");
    let other = SigningKey::load_or_create(&other_state.0).unwrap();
    let cases = [
        ("no token", None),
        ("empty bearer", Some("Bearer ".to_string())),
        ("garbage", Some("Bearer not-a-token".to_string())),
        (
            "expired",
            Some(with(json!({"iat": now - 7200, "exp": now - 3600}))),
        ),
        ("another key", Some(bearer(&other.sign(&valid).unwrap()))),
        (
            "another key, the runner's kid",
            Some(bearer(&other.sign_as(&valid, &key.kid).unwrap())),
        ),
        (
            "wrong audience",
            Some(with(json!({"client_id": "someone-elses-client"}))),
        ),
        ("wrong aud", Some(with(json!({"aud": "someone-else"})))),
        (
            "wrong issuer",
            Some(with(
                json!({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/x"}),
            )),
        ),
        ("not yet valid", Some(with(json!({"nbf": now + 3600})))),
    ];
    for (case, authorization) in &cases {
        let (status, body) = post_order(&agent, &base, authorization.as_deref());
        assert_eq!(
            (status, body),
            (401, json!({"message": "Unauthorized"})),
            "{case}"
        );
    }
    let response = agent
        .get(&format!(
            "{base}/orders/00000000-0000-7000-8000-000000000000"
        ))
        .call()
        .expect("GET");
    assert_eq!(response.status().as_u16(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    // Each refusal is logged with its reason, and no token text.
    assert!(
        runner.wait_for_output("POST /orders -> command 401", Duration::from_secs(10)),
        "{}",
        runner.output()
    );
    let output = runner.output();
    assert!(output.contains("the token has expired"), "{output}");
    assert!(
        output.contains("the token does not have a valid audience"),
        "{output}"
    );
    assert!(
        output.contains("the token does not have a valid issuer"),
        "{output}"
    );
    for (_, authorization) in &cases {
        if let Some(token) = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            if token.len() > 20 {
                assert!(!output.contains(token), "a token was logged");
            }
        }
    }

    // A customer's token: the customer's own order.
    let customer_a = runner.customer_token("cust-auth-a");
    let (status, created) = post_order(&agent, &base, Some(&bearer(&customer_a)));
    assert_eq!(status, 201, "{created}\n{}", runner.output());
    let id = created["orderId"].as_str().expect("orderId").to_string();
    let view = await_order(&agent, &base, &customer_a, &id, Duration::from_secs(120));
    assert_eq!(view["customer"]["id"], "cust-auth-a");

    // Staff reads it (a token from scripts/mint-token, as the README does it).
    let minted = Command::new(repository().join("scripts/mint-token"))
        .args(["--staff", "--ttl", "300", "--state-dir"])
        .arg(&state.0)
        .output()
        .expect("run scripts/mint-token");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let stdout = String::from_utf8(minted.stdout).expect("utf-8");
    let staff = stdout.trim_end_matches('\n');
    assert!(
        !staff.contains(char::is_whitespace) && staff.split('.').count() == 3,
        "only the token on stdout: {stdout:?}"
    );
    let (status, view) = get(&agent, &format!("{base}/orders/{id}"), staff);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["orderId"], id.as_str());
    let (status, listing) = get(
        &agent,
        &format!("{base}/customers/cust-auth-a/orders"),
        staff,
    );
    assert_eq!(status, 200, "{listing}");
    assert!(listing.to_string().contains(&id), "{listing}");

    // Another customer learns nothing about it.
    let customer_b = runner.customer_token("cust-auth-b");
    let (status, body) = get(&agent, &format!("{base}/orders/{id}"), &customer_b);
    assert_eq!(status, 404, "{body}");
    assert!(!body.to_string().contains("cust-auth-a"), "{body}");
    let (status, body) = get(
        &agent,
        &format!("{base}/customers/cust-auth-a/orders"),
        &customer_b,
    );
    assert!(
        status == 403 || status == 404,
        "another customer's listing answered {status}: {body}"
    );
    assert!(!body.to_string().contains(&id), "{body}");
    let (status, listing) = get(
        &agent,
        &format!("{base}/customers/cust-auth-b/orders"),
        &customer_b,
    );
    assert_eq!(status, 200, "{listing}");
    assert!(!listing.to_string().contains(&id), "{listing}");
}
