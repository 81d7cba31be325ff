//! State across runs: PostgreSQL keeps the orders (moto starts empty, and the runner
//! re-projects the read model from the outbox through the updater before it is ready);
//! `--fresh` starts over.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn orders_survive_a_restart_and_fresh_forgets_them() {
    let state = StateDir::new("restart");
    let ports = Ports::free();
    let agent = agent();

    let mut runner = Runner::start(&state.0, ports, &[]);
    let token = runner.customer_token("cust-restart");
    let id = create_order(&agent, &runner.base, &token, "cust-restart");
    await_order(&agent, &runner.base, &token, &id, Duration::from_secs(120));
    assert!(runner.stop(libc::SIGTERM).success());

    // Readable as soon as the runner says it is ready: the view was rebuilt during start-up.
    // The signing key is kept too, so the token minted before the restart still works.
    let mut runner = Runner::start(&state.0, ports, &[]);
    let (status, view) = json_of(
        agent
            .get(&format!("{}/orders/{id}", runner.base))
            .header("authorization", bearer(&token))
            .call()
            .expect("GET"),
    );
    assert_eq!(status, 200, "{view}\n{}", runner.output());
    assert_eq!(view["customer"]["id"], "cust-restart");
    assert!(
        runner
            .output()
            .contains("re-projected 1 order(s) from the outbox"),
        "{}",
        runner.output()
    );
    assert!(runner.stop(libc::SIGTERM).success());

    let mut runner = Runner::start(&state.0, ports, &["--fresh"]);
    let (status, _) = json_of(
        agent
            .get(&format!("{}/orders/{id}", runner.base))
            .header("authorization", bearer(&token))
            .call()
            .expect("GET"),
    );
    assert_eq!(status, 404, "--fresh keeps no orders");
    assert!(runner.stop(libc::SIGTERM).success());
}
