//! A burst through the whole local system, as clients would send it: 500 `POST /orders` from 16
//! concurrent clients, some repeating an idempotency key (later, or at the same moment as
//! another client). Exactly one order per distinct key must exist, every one of them readable
//! through the API, and `orders-admin verify` must find no drift. It runs twice: with each
//! function as on Lambda (one invocation per process), and with the command, query and updater
//! as on Lambda Managed Instances (`--managed-instances`: several invocations per process).

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const REQUESTS: usize = 500;

/// One request of the burst: its idempotency key decides its customer and its body, so every
/// request that repeats a key repeats the body too.
#[derive(Debug, Clone)]
struct Planned {
    key: String,
    customer: String,
    quantity: u32,
    /// Sent by both clients of a pair at the same moment.
    raced: bool,
}

/// Client `c` sends its `n`-th request: usually a new key; every 10th repeats its previous
/// key; every 8th (from the 4th on) is a key shared with its pair client (`c ^ 1`).
fn plan(run: &str, client: usize, n: usize) -> Planned {
    let pair = client / 2;
    if n % 8 == 3 {
        return Planned {
            key: format!("{run}-pair{pair}-{n}"),
            customer: format!("burst-{run}-pair{pair}"),
            quantity: (n % 5 + 1) as u32,
            raced: true,
        };
    }
    let own = if n % 10 == 9 { n - 1 } else { n };
    let own = if own % 8 == 3 { own - 1 } else { own };
    Planned {
        key: format!("{run}-c{client}-{own}"),
        customer: format!("burst-{run}-c{client}"),
        quantity: (own % 7 + 1) as u32,
        raced: false,
    }
}

fn body(planned: &Planned) -> String {
    serde_json::json!({
        "customer": {"id": planned.customer, "name": "Burst Client", "email": "burst@example.com"},
        "currency": "EUR",
        "lines": [{"sku": "BURST-1", "name": "Load", "quantity": planned.quantity, "unitPrice": 1250}]
    })
    .to_string()
}

/// What one POST answered.
#[derive(Debug)]
struct Answer {
    planned: Planned,
    status: u16,
    order_id: Option<String>,
    replayed: bool,
    body: Value,
}

/// Sends `planned` with `token`, its customer's.
fn post(agent: &ureq::Agent, base: &str, token: &str, planned: Planned) -> Answer {
    let response = agent
        .post(&format!("{base}/orders"))
        .header("content-type", "application/json")
        .header("authorization", bearer(token))
        .header("idempotency-key", &planned.key)
        .send(body(&planned))
        .expect("POST /orders reaches the runner");
    let replayed = response.headers().contains_key("idempotent-replayed");
    let (status, body) = json_of(response);
    Answer {
        order_id: body["orderId"].as_str().map(str::to_string),
        planned,
        status,
        replayed,
        body,
    }
}

/// The ids `GET /customers/{customer}/orders` lists (with the customer's `token`), every page
/// followed.
fn listed(agent: &ureq::Agent, base: &str, token: &str, customer: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut request = agent
            .get(&format!("{base}/customers/{customer}/orders"))
            .header("authorization", bearer(token))
            .query("limit", "100");
        if let Some(cursor) = &cursor {
            request = request.query("cursor", cursor);
        }
        let (status, page) = json_of(request.call().expect("GET listing"));
        assert_eq!(status, 200, "listing {customer}: {page}");
        for item in page["items"].as_array().expect("items") {
            ids.push(item["orderId"].as_str().expect("orderId").to_string());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
}

/// `orders-admin verify --json` against the runner's database and moto, configured from the
/// env file the runner writes.
fn verify(state: &std::path::Path) -> (bool, Value) {
    let env = std::fs::read_to_string(state.join("cargo-lambda.env")).expect("env file");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repository().join("target"));
    let mut command = Command::new(target.join("debug/orders-admin"));
    command.env_clear().args(["verify", "--json"]);
    for line in env.lines() {
        if let Some((name, value)) = line.split_once('=') {
            command.env(name, value);
        }
    }
    let output = command
        .output()
        .expect("run orders-admin (built by run-local)");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

#[test]
fn a_burst_of_500_orders_from_16_clients_converges_exactly() {
    let state = StateDir::new("burst");
    let runner = Runner::start(&state.0, Ports::free(), &[]);
    for function in ["command", "query"] {
        assert!(
            runner
                .output()
                .lines()
                .any(|l| l.contains(&format!("function {function} running"))
                    && l.ends_with(", Lambda)")),
            "{function} runs as on Lambda\n{}",
            runner.output()
        );
    }
    burst(&state, &runner);
}

#[test]
fn a_burst_converges_exactly_with_the_functions_on_managed_instances() {
    let state = StateDir::new("burst-managed");
    // Two processes per function at most: the 16 clients are served concurrently only because
    // each process takes several invocations at once.
    let extra = ["--managed-instances", "--concurrency", "2"];
    let runner = Runner::start(&state.0, Ports::free(), &extra);
    for function in ["command", "query"] {
        assert!(
            runner
                .output()
                .lines()
                .any(|l| l.contains(&format!("function {function} running"))
                    && l.contains("Managed Instances, ")
                    && l.ends_with(" invocations per process)")),
            "{function} runs as on Managed Instances\n{}",
            runner.output()
        );
    }
    burst(&state, &runner);
}

/// Sends the burst through `runner` and checks that it converges exactly.
fn burst(state: &StateDir, runner: &Runner) {
    let base = runner.base.clone();
    let run = format!("{:x}", std::process::id());
    let agent = agent();

    let pairs: Vec<Arc<Barrier>> = (0..CLIENTS / 2)
        .map(|_| Arc::new(Barrier::new(2)))
        .collect();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let agent = agent.clone();
            let base = base.clone();
            let run = run.clone();
            let pair = pairs[client / 2].clone();
            let state = state.0.clone();
            // Requests client, client + 16, ...: 500 in all.
            let count = (client..REQUESTS).step_by(CLIENTS).count();
            std::thread::spawn(move || {
                // Each customer's own token: the client's, and its pair's for the raced keys.
                let mut tokens: BTreeMap<String, String> = BTreeMap::new();
                (0..count)
                    .map(|n| {
                        let planned = plan(&run, client, n);
                        let token = tokens
                            .entry(planned.customer.clone())
                            .or_insert_with(|| customer_token(&state, &planned.customer))
                            .clone();
                        if planned.raced {
                            pair.wait();
                        }
                        post(&agent, &base, &token, planned)
                    })
                    .collect::<Vec<Answer>>()
            })
        })
        .collect();
    let answers: Vec<Answer> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    let elapsed = started.elapsed();
    assert_eq!(answers.len(), REQUESTS);

    // Every request was accepted; one key, one order.
    let mut by_key: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for answer in &answers {
        assert_eq!(
            answer.status,
            201,
            "{:?} answered {}: {}\n{}",
            answer.planned,
            answer.status,
            answer.body,
            runner.output()
        );
        let id = answer.order_id.as_deref().expect("orderId");
        by_key.entry(&answer.planned.key).or_default().insert(id);
    }
    for (key, ids) in &by_key {
        assert_eq!(ids.len(), 1, "key {key} made orders {ids:?}");
    }
    let expected: BTreeSet<&str> = by_key.values().flatten().copied().collect();
    assert_eq!(expected.len(), by_key.len(), "two keys share an order");
    let repeats = REQUESTS - by_key.len();
    let replayed = answers.iter().filter(|a| a.replayed).count();
    assert_eq!(
        replayed, repeats,
        "each repeated key is answered as a replay"
    );
    assert!(repeats >= 60, "the plan repeats keys ({repeats} repeats)");
    let raced = answers.iter().filter(|a| a.planned.raced).count();
    assert!(raced >= 2 * 24, "the plan races keys ({raced} raced)");
    eprintln!(
        "burst: {REQUESTS} requests, {} orders, {repeats} replays, in {:.1} s",
        expected.len(),
        elapsed.as_secs_f64()
    );

    // The read model converges: each customer's listing holds exactly its orders.
    let mut by_customer: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for answer in &answers {
        by_customer
            .entry(&answer.planned.customer)
            .or_default()
            .insert(answer.order_id.as_deref().expect("orderId"));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    for (customer, ids) in &by_customer {
        let token = runner.customer_token(customer);
        loop {
            let listing = listed(&agent, &base, &token, customer);
            let unique: BTreeSet<&str> = listing.iter().map(String::as_str).collect();
            assert_eq!(unique.len(), listing.len(), "{customer} listed twice");
            assert!(unique.is_subset(ids), "{customer} lists a stranger's order");
            if unique == *ids {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{customer}: {} of {} orders readable\n{}",
                unique.len(),
                ids.len(),
                runner.output()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // And each order answers GET with what was ordered.
    let mut tokens: BTreeMap<&str, String> = BTreeMap::new();
    for answer in answers.iter().filter(|a| !a.replayed) {
        let id = answer.order_id.as_deref().expect("orderId");
        let customer = answer.planned.customer.as_str();
        let token = tokens
            .entry(customer)
            .or_insert_with(|| runner.customer_token(customer));
        let view = await_order(&agent, &base, token, id, Duration::from_secs(30));
        assert_eq!(view["customer"]["id"], answer.planned.customer.as_str());
        assert_eq!(
            view["lines"][0]["quantity"], answer.planned.quantity,
            "{view}"
        );
    }

    eprintln!(
        "burst: converged {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    let (clean, report) = verify(&state.0);
    assert!(clean, "verify found drift: {report}");
    assert_eq!(report["orders_checked"], expected.len(), "{report}");
    assert_eq!(report["views_checked"], expected.len(), "{report}");
    assert_eq!(report["drift"], serde_json::json!([]));
}
