//! `scripts/smoke --local` against `scripts/run-local`: the walk a deployed stack gets after
//! `sam deploy` (docs/DEPLOY.md), known to pass here first. Every step must print `ok`, and a
//! broken step must fail the script (checked by pointing it at a runner that is not there).

mod common;

use common::*;
use std::process::Command;

const STEPS: &[&str] = &[
    "stack outputs and endpoints",
    "staff token",
    "customer token",
    "place an order",
    "order readable",
    "list the customer's orders",
    "confirm (staff)",
    "cancel (customer)",
    "cancellation readable",
    "read the receipt links",
    "dead-letter queue empty",
    "orders-admin verify",
];

fn smoke(base: &str, state: &std::path::Path) -> (bool, String) {
    outcome_of(
        Command::new(repository().join("scripts/smoke"))
            .args([
                "--local",
                "--base-url",
                base,
                "--timeout",
                "120",
                "--state-dir",
            ])
            .arg(state),
    )
}

#[test]
fn the_smoke_test_passes_against_the_local_runner() {
    let state = StateDir::new("smoke");
    let ports = Ports::free();
    let mut runner = Runner::start(&state.0, ports, &[]);

    let (passed, output) = smoke(&runner.base, &runner.state);
    assert!(
        passed,
        "scripts/smoke failed:\n{output}\nrunner:\n{}",
        runner.output()
    );
    for step in STEPS {
        assert!(
            output
                .lines()
                .any(|l| l.starts_with("ok   ") && l.contains(step)),
            "no ok line for {step:?}:\n{output}"
        );
    }
    assert!(output.contains("smoke: OK"), "{output}");

    // With the API gone, the first step fails and the script says so.
    runner.stop(libc::SIGTERM);
    let (passed, output) = smoke(&runner.base, &runner.state);
    assert!(!passed, "{output}");
    assert!(
        output.contains("FAIL stack outputs and endpoints"),
        "{output}"
    );
    assert!(output.contains("smoke: FAILED"), "{output}");
}
