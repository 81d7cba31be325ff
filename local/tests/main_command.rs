//! The README's first command, `scripts/run-local`, run as a real process: it builds, starts
//! everything, serves the HTTP API (an order posted is readable through GET shortly after),
//! answers unknown routes as API Gateway does, and on SIGTERM stops every child process and
//! leaves nothing listening.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn run_local_serves_the_api_and_stops_cleanly() {
    let state = StateDir::new("main");
    let ports = Ports::free();
    let mut runner = Runner::start(&state.0, ports, &[]);
    let agent = agent();
    let base = runner.base.clone();
    let token = runner.customer_token("cust-main");

    // Write, then read through the event path (SNS -> SQS -> updater -> DynamoDB).
    let response = agent
        .post(&format!("{base}/orders"))
        .header("content-type", "application/json")
        .header("authorization", bearer(&token))
        .send(order_body("cust-main"))
        .expect("POST /orders");
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    assert!(response.headers().contains_key("apigw-requestid"));
    let (status, created) = json_of(response);
    assert_eq!(status, 201, "{created}");
    let id = created["orderId"].as_str().expect("orderId").to_string();
    assert_eq!(location.as_deref(), Some(format!("/orders/{id}").as_str()));
    let view = await_order(&agent, &base, &token, &id, Duration::from_secs(120));
    assert_eq!(view["orderId"], id.as_str());
    assert_eq!(view["customer"]["id"], "cust-main");
    assert_eq!(view["total"], 7500);

    // What API Gateway answers by itself.
    for (method, path) in [
        ("GET", "/nothing/here"),
        ("DELETE", "/orders"),
        ("PUT", &*format!("/orders/{id}")),
    ] {
        let response = agent
            .run(
                ureq::http::Request::builder()
                    .method(method)
                    .uri(format!("{base}{path}"))
                    .body(())
                    .expect("request"),
            )
            .expect("request sent");
        assert_eq!(
            json_of(response),
            (404, serde_json::json!({"message": "Not Found"})),
            "{method} {path}"
        );
    }
    // The function's own answers come through unchanged.
    let (status, problem) = json_of(
        agent
            .get(&format!("{base}/orders/not-a-uuid"))
            .header("authorization", bearer(&token))
            .call()
            .expect("GET"),
    );
    assert_eq!(status, 400, "{problem}");

    let (status, health) = json_of(agent.get(&format!("{base}/health")).call().expect("health"));
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    for function in ["command", "query", "updater"] {
        assert_eq!(
            health["components"]["functions"][function]["state"], "running",
            "{health}"
        );
    }

    // A function process that dies is replaced by a new one on the next invocation.
    let query_pid =
        |health: &serde_json::Value| health["components"]["functions"]["query"]["pid"].as_u64();
    let killed = query_pid(&health).expect("query pid");
    // SAFETY: kill(2) on a process of the runner's tree.
    unsafe {
        libc::kill(killed as i32, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health) = json_of(agent.get(&format!("{base}/health")).call().expect("health"));
        if query_pid(&health).is_none() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runner did not notice: {health}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        await_order(&agent, &base, &token, &id, Duration::from_secs(60))["orderId"],
        id.as_str()
    );
    let (_, health) = json_of(agent.get(&format!("{base}/health")).call().expect("health"));
    let restarted = query_pid(&health).expect("a new query process");
    assert_ne!(restarted, killed);

    // Every process it started and every port they listen on.
    let tree = process_tree(runner.pid());
    let pids: Vec<u32> = tree.iter().map(|p| p.pid).collect();
    let ports_used = listening_ports(&pids);
    for port in [ports.api, ports.postgres, ports.moto] {
        assert!(
            ports_used.contains(&port),
            "{port} not among {ports_used:?}"
        );
    }
    assert!(
        ports_used.len() >= 6,
        "the API, PostgreSQL, moto and one Runtime API per function: {ports_used:?}"
    );
    for name in ["command", "query", "updater", "postgres"] {
        assert!(
            tree.iter().any(|p| p.name == name),
            "no {name} process in {tree:?}"
        );
    }

    let status = runner.stop(libc::SIGTERM);
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        runner.output()
    );
    let output = runner.output();
    assert!(output.contains("orders-local: stopped"), "{output}");
    // Function output reaches the terminal, prefixed.
    assert!(
        output.lines().any(|l| l.starts_with("[command] ")),
        "{output}"
    );
    assert!(
        output.lines().any(|l| l.starts_with("[updater] ")),
        "{output}"
    );
    assert_eq!(
        survivors(&tree),
        Vec::new(),
        "processes outlived the runner"
    );
    assert_eq!(
        still_listening(&ports_used),
        Default::default(),
        "ports still listening"
    );
}
