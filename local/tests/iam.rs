//! IAM enforced from the template (the default): the runner says so at start, and a function
//! whose role lacks a grant it needs fails with an `AccessDenied` that names the action in the
//! logs, while the client gets the documented problem (`application/problem+json`, 5xx) rather
//! than a bare gateway error.

mod common;

use common::{agent, bearer, create_order, repository, Ports, Runner, StateDir};
use std::time::Duration;

/// The query function's `dynamodb:GetItem` grant in template.yaml.
const QUERY_GET_ITEM: &str = "            - Effect: Allow
              Action: dynamodb:GetItem
              Resource: !GetAtt OrdersTable.Arn
";

#[test]
fn a_grant_removed_from_a_role_is_an_access_denied_naming_the_action() {
    let state = StateDir::new("iam");
    let template = std::fs::read_to_string(repository().join("template.yaml")).expect("template");
    assert_eq!(
        template.matches(QUERY_GET_ITEM).count(),
        1,
        "template.yaml no longer grants the query function dynamodb:GetItem in this form"
    );
    let copy = state.0.join("template-without-get-item.yaml");
    std::fs::write(&copy, template.replace(QUERY_GET_ITEM, "")).expect("template copy");
    let copy = copy.display().to_string();
    let mut runner = Runner::start(&state.0, Ports::free(), &["--template", &copy]);
    let output = runner.output();
    assert!(output.contains("IAM: enforced"), "{output}");
    assert!(
        output.contains("IAM: moto's access control is on"),
        "{output}"
    );

    let agent = agent();
    let token = runner.customer_token("cust-iam");
    // The command function's role is intact: placing an order works.
    let id = create_order(&agent, &runner.base, &token, "cust-iam");
    let response = agent
        .get(&format!("{}/orders/{id}", runner.base))
        .header("authorization", bearer(&token))
        .call()
        .expect("GET /orders/{id}");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.into_body().read_to_string().unwrap_or_default();
    assert!(
        (500..600).contains(&status),
        "GET with the grant removed answered {status}: {text}"
    );
    assert!(
        content_type.starts_with("application/problem+json"),
        "{status} {content_type}: {text}"
    );
    let problem: serde_json::Value = serde_json::from_str(&text).expect("a problem document");
    assert_eq!(problem["status"], status, "{problem}");
    assert!(problem["title"].is_string(), "{problem}");

    assert!(
        runner.wait_for_output("dynamodb:GetItem", Duration::from_secs(30)),
        "the query function's log does not name the denied action:\n{}",
        runner.output()
    );
    let denied = runner
        .output()
        .lines()
        .filter(|l| l.contains("dynamodb:GetItem"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(denied.contains("AccessDenied"), "{denied}");
    assert!(denied.contains("[query]"), "{denied}");
    runner.stop(libc::SIGTERM);
}
