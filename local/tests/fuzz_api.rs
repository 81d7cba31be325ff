//! The HTTP contract fuzzed from outside: schemathesis (pinned in requirements.txt, configured
//! by schemathesis.toml) against `scripts/run-local`, every check (positive and negative data
//! acceptance, response schemas, status codes, headers, auth), the stateful phase following
//! `openapi.yaml`'s links from `POST /orders` to the reads and changes of real orders. Once with
//! a staff token, once with a customer token (which meets staff-only changes and other
//! customers' listings and orders: their 403s and 404s must be the documented ones). A fixed
//! seed and a bounded example count keep the run's length predictable; run it by hand with
//! other seeds and more examples (schemathesis.toml says how).

mod common;

use common::*;
use std::process::Command;

/// Examples per operation and phase: enough to reach every documented answer, bounded for CI.
const EXAMPLES: &str = "25";
const SEED: &str = "1";

/// Runs schemathesis with `token`; `customer` is the token's customer, if it is one's
/// (scripts/fuzz_hooks.py places the fuzzer's valid orders for it).
fn fuzz(base: &str, token: &str, customer: Option<&str>) -> (bool, String) {
    let mut command = Command::new(repository().join(".venv/bin/schemathesis"));
    if let Some(customer) = customer {
        command.env("ORDERS_FUZZ_CUSTOMER", customer);
    }
    outcome_of(
        command
            .current_dir(repository())
            .args(["run", "openapi.yaml", "--url", base])
            .args([
                "--checks",
                "all",
                "--seed",
                SEED,
                "--max-examples",
                EXAMPLES,
            ])
            // API Gateway answers a method no route has with 404, not 405 (schemathesis.toml).
            .args(["--exclude-checks", "unsupported_method"])
            .args(["--workers", "1", "--generation-database", "none"])
            .args(["--no-color"])
            .env("ORDERS_FUZZ_TOKEN", token)
            .env("SCHEMATHESIS_TELEMETRY", "false"),
    )
}

/// The customer the customer token is minted for.
const CUSTOMER: &str = "cust-fuzz";

#[test]
fn the_api_answers_as_openapi_yaml_says_to_staff_and_to_customers() {
    let state = StateDir::new("fuzz");
    let mut runner = Runner::start(&state.0, Ports::free(), &[]);
    let tokens = [
        ("staff", runner.staff_token(), None),
        ("customer", runner.customer_token(CUSTOMER), Some(CUSTOMER)),
    ];
    for (who, token, customer) in tokens {
        let (passed, output) = fuzz(&runner.base, &token, customer);
        assert!(
            passed,
            "schemathesis found failures with the {who} token:\n{output}\nrunner:\n{}",
            runner.output()
        );
        // A run that generated nothing would also exit 0.
        assert!(
            output.contains("passed") && !output.contains("No operations"),
            "schemathesis ran no tests with the {who} token:\n{output}"
        );
        assert!(
            !runner.output().contains("-> query 5") && !runner.output().contains("-> command 5"),
            "a 5xx answer during the {who} run:\n{}",
            runner.output()
        );
    }
    runner.stop(libc::SIGTERM);
}
