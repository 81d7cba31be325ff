//! The Docker-free counterpart of `sam local invoke`, as docs/LOCAL.md describes it: with
//! `scripts/run-local` providing PostgreSQL and moto, `cargo lambda watch --env-file
//! .local/cargo-lambda.env` runs each function and `cargo lambda invoke <function> --data-file
//! events/<sample>.json` invokes it with a sample event.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `cargo` with the venv's cargo-lambda on PATH.
fn cargo() -> Command {
    let venv = repository().join(".venv/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![venv];
    paths.extend(std::env::split_paths(&path));
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(repository())
        .env("PATH", std::env::join_paths(paths).expect("PATH"));
    // As typed in a terminal: without the CARGO_MANIFEST_*/CARGO_PKG_* variables `cargo test`
    // sets for this crate, which make cargo-lambda wait for a function it never starts.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR" {
            command.env_remove(&*name);
        }
    }
    command
}

/// A running `cargo lambda watch`, stopped with its whole process group.
struct Watch {
    child: std::process::Child,
    output: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = -(self.child.id() as i32);
        // SAFETY: kill(2) on the process group we created.
        unsafe {
            libc::kill(group, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn invoke(port: u16, function: &str, event: &str, watch: &Watch) -> Value {
    // cargo lambda watch builds the function on its first invocation (cargo run), and never
    // answers when the function fails to start: bound the wait.
    let mut child = cargo()
        .args(["lambda", "invoke", function])
        .args(["--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .args(["--data-file", &format!("events/{event}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cargo lambda invoke");
    let deadline = Instant::now() + Duration::from_secs(900);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "cargo lambda invoke {function} got no answer:\n{}",
                watch.output()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child
        .wait_with_output()
        .expect("cargo lambda invoke output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo lambda invoke {function} {event}: {}\n{stdout}\n{}\nwatch:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        watch.output()
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{function} answered {stdout:?}: {e}"))
}

fn body(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

#[test]
fn cargo_lambda_invokes_every_function_with_the_sample_events() {
    assert!(
        repository().join(".venv/bin/cargo-lambda").exists(),
        "cargo-lambda comes from requirements.txt (scripts/bootstrap)"
    );
    let state = StateDir::new("cargo-lambda");
    let runner = Runner::start(&state.0, Ports::free(), &[]);
    let env_file = state.0.join("cargo-lambda.env");
    let env = std::fs::read_to_string(&env_file).expect("the runner writes the env file");
    for name in [
        "DB_HOST=",
        "ORDERS_TABLE=",
        "AWS_ENDPOINT_URL=",
        "ORDER_EVENTS_TOPIC_ARN=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{env}"
        );
    }

    let port = free_port();
    let mut command = cargo();
    command
        .args(["lambda", "watch", "--ignore-changes"])
        .args([
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port.to_string(),
        ])
        .arg("--env-file")
        .arg(&env_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = command.spawn().expect("start cargo lambda watch");
    let output = Arc::new(Mutex::new(Vec::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output.lock().unwrap().push(line);
            }
        });
    }
    let watch = Watch { child, output };
    let deadline = Instant::now() + Duration::from_secs(600);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not start:\n{}",
            watch.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // command: a valid order is stored (201), an invalid one is refused.
    let created = invoke(port, "command", "post-order.json", &watch);
    assert_eq!(created["statusCode"], 201, "{created}");
    assert!(body(&created)["orderId"].is_string(), "{created}");
    let invalid = invoke(port, "command", "post-order-invalid.json", &watch);
    let status = invalid["statusCode"].as_u64().unwrap_or_default();
    assert!((400..500).contains(&status), "{invalid}");

    // updater: the sample event projects the sample order; the poison sample is reported.
    let projected = invoke(port, "updater", "sqs-order-created.json", &watch);
    assert_eq!(
        projected["batchItemFailures"],
        serde_json::json!([]),
        "{projected}"
    );
    let poison_event: Value = serde_json::from_str(
        &std::fs::read_to_string(repository().join("events/sqs-poison-message.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = poison_event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["messageId"].as_str())
        .collect();
    let poisoned = invoke(port, "updater", "sqs-poison-message.json", &watch);
    let failures = poisoned["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures");
    assert!(!failures.is_empty(), "{poisoned}");
    for failure in failures {
        assert!(
            ids.contains(&failure["itemIdentifier"].as_str().unwrap_or_default()),
            "{poisoned}"
        );
    }

    // query: reads what the updater projected (the sample order id).
    let read = invoke(port, "query", "get-order.json", &watch);
    assert_eq!(read["statusCode"], 200, "{read}");
    assert_eq!(
        body(&read)["orderId"],
        "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d"
    );
    let bad_id = invoke(port, "query", "get-order-invalid-id.json", &watch);
    assert_eq!(bad_id["statusCode"], 400, "{bad_id}");

    // relay: a scheduled run over the (fully published) outbox.
    let relayed = invoke(port, "relay", "relay-scheduled.json", &watch);
    assert_eq!(relayed["failed"], 0, "{relayed}");
    assert!(relayed["published"].is_u64(), "{relayed}");

    drop(watch);
    drop(runner);
}
