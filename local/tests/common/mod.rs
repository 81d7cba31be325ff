//! Runs `scripts/run-local` as a real process, exactly as the README does, isolated from a
//! developer's own instance (free ports, a temporary state directory), and inspects what it
//! leaves behind through /proc.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the first start builds the function binaries (cargo build) on a busy machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1800);

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A state directory removed at the end (as root its PostgreSQL cluster belongs to nobody;
/// root can delete it anyway).
pub struct StateDir(pub PathBuf);

impl StateDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "orders-local-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("create state dir");
        Self(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The ports one runner uses.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub api: u16,
    pub postgres: u16,
    pub moto: u16,
}

impl Ports {
    pub fn free() -> Self {
        Self {
            api: free_port(),
            postgres: free_port(),
            moto: free_port(),
        }
    }
}

/// A token the runner accepts for `customer` (signed by the key in the runner's state
/// directory; created there if the runner has not started yet).
pub fn customer_token(state: &Path, customer: &str) -> String {
    orders_local::auth::mint(
        state,
        &orders_local::auth::Subject::Customer(customer.into()),
        3600,
    )
    .expect("mint a customer token")
}

/// A staff token (scope orders/admin) the runner accepts.
pub fn staff_token(state: &Path) -> String {
    orders_local::auth::mint(state, &orders_local::auth::Subject::Staff, 3600)
        .expect("mint a staff token")
}

/// The `Authorization` header value for `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Runs `command` to its end: whether it succeeded, and its stdout then stderr.
pub fn outcome_of(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", command.get_program()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A running `scripts/run-local`.
pub struct Runner {
    pub child: Child,
    pub ports: Ports,
    pub base: String,
    /// Its state directory (where the signing key is).
    pub state: PathBuf,
    lines: Arc<Mutex<Vec<String>>>,
    stopped: bool,
}

impl Runner {
    /// Starts `scripts/run-local --port .. --pg-port .. --moto-port .. --state-dir .. <extra>`
    /// and waits for its readiness line.
    pub fn start(state: &Path, ports: Ports, extra: &[&str]) -> Self {
        let mut command = Command::new(repository().join("scripts/run-local"));
        command
            .current_dir(repository())
            .args(["--port", &ports.api.to_string()])
            .args(["--pg-port", &ports.postgres.to_string()])
            .args(["--moto-port", &ports.moto.to_string()])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The runner must not inherit settings that point it elsewhere.
        for name in [
            "DB_HOST",
            "AWS_ENDPOINT_URL",
            "LOCAL_REAL_AWS",
            "LOCAL_STATE_DIR",
            "LOCAL_NO_IAM",
            "LOCAL_MANAGED_INSTANCES",
            "LOCAL_CONCURRENCY",
        ] {
            command.env_remove(name);
        }
        let mut child = command.spawn().expect("start scripts/run-local");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let ready_line = format!("orders-local: ready on http://127.0.0.1:{}", ports.api);
        for (stream, is_stdout) in [
            (
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
                true,
            ),
            (Box::new(child.stderr.take().expect("stderr")), false),
        ] {
            let lines = lines.clone();
            let ready_tx = ready_tx.clone();
            let ready_line = ready_line.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if is_stdout && line == ready_line {
                        let _ = ready_tx.send(());
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        let mut runner = Self {
            child,
            ports,
            base: format!("http://127.0.0.1:{}", ports.api),
            state: state.to_path_buf(),
            lines,
            stopped: false,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(200)).is_ok() {
                return runner;
            }
            if let Ok(Some(status)) = runner.child.try_wait() {
                runner.stopped = true;
                panic!(
                    "scripts/run-local exited ({status}) before it was ready:\n{}",
                    runner.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "scripts/run-local was not ready in time:\n{}",
                    runner.output()
                );
            }
        }
    }

    pub fn output(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Waits until the output has a line containing `text`.
    pub fn wait_for_output(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains(text))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A token this runner accepts for `customer`.
    pub fn customer_token(&self, customer: &str) -> String {
        customer_token(&self.state, customer)
    }

    /// A staff token this runner accepts.
    pub fn staff_token(&self) -> String {
        staff_token(&self.state)
    }

    /// Sends `signal` and waits for the runner to exit.
    pub fn stop(&mut self, signal: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                self.stopped = true;
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(300));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the runner did not stop:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.stop(libc::SIGTERM);
        }
    }
}

/// A process as /proc shows it: pid, parent, start time (to tell a reused pid apart), state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub start: u64,
    pub state: char,
    pub name: String,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ... starttime(22nd)"; comm may contain spaces or parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    Some(Proc {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        state: fields.first()?.chars().next()?,
        name,
    })
}

fn all_procs() -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(read_proc)
                .collect()
        })
        .unwrap_or_default()
}

/// `root` and every process below it.
pub fn process_tree(root: u32) -> Vec<Proc> {
    let procs = all_procs();
    let mut tree: Vec<Proc> = procs.iter().filter(|p| p.pid == root).cloned().collect();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            if !tree.iter().any(|t| t.pid == p.pid) {
                tree.push(p.clone());
                frontier.push(p.pid);
            }
        }
    }
    tree.sort();
    tree
}

/// The processes of `tree` still running (same pid and start time, not a zombie).
pub fn survivors(tree: &[Proc]) -> Vec<Proc> {
    tree.iter()
        .filter_map(|p| read_proc(p.pid).filter(|now| now.start == p.start && now.state != 'Z'))
        .collect()
}

/// Listening TCP sockets: port -> socket inode.
fn listening() -> HashMap<u64, u16> {
    let mut sockets = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some(port) = f[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if let Ok(inode) = f[9].parse() {
                sockets.insert(inode, port);
            }
        }
    }
    sockets
}

/// The ports the given processes listen on.
pub fn listening_ports(pids: &[u32]) -> BTreeSet<u16> {
    let sockets = listening();
    let mut ports = BTreeSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.filter_map(|e| e.ok()) {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                if let Some(port) = sockets.get(&inode) {
                    ports.insert(*port);
                }
            }
        }
    }
    ports
}

/// Which of `ports` something still listens on.
pub fn still_listening(ports: &BTreeSet<u16>) -> BTreeSet<u16> {
    listening()
        .values()
        .filter(|p| ports.contains(p))
        .copied()
        .collect()
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// Status and JSON body (Null when empty or not JSON).
pub fn json_of(response: ureq::http::Response<ureq::Body>) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

pub fn order_body(customer: &str) -> String {
    serde_json::json!({
        "customer": {"id": customer, "name": "Grace Hopper", "email": "grace@example.com"},
        "currency": "USD",
        "lines": [{"sku": "COBOL-BOOK", "name": "COBOL manual", "quantity": 3, "unitPrice": 2500}]
    })
    .to_string()
}

/// POSTs an order for `customer` with `token` (the customer's own, or staff); returns its id.
pub fn create_order(agent: &ureq::Agent, base: &str, token: &str, customer: &str) -> String {
    let response = agent
        .post(&format!("{base}/orders"))
        .header("content-type", "application/json")
        .header("authorization", bearer(token))
        .send(order_body(customer))
        .expect("POST /orders");
    let (status, body) = json_of(response);
    assert_eq!(status, 201, "POST /orders answered {status}: {body}");
    body["orderId"].as_str().expect("orderId").to_string()
}

/// GETs an order with `token` (its customer's, or staff) until it is there (the read model
/// lags by design); returns the view.
pub fn await_order(
    agent: &ureq::Agent,
    base: &str,
    token: &str,
    id: &str,
    timeout: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = json_of(
            agent
                .get(&format!("{base}/orders/{id}"))
                .header("authorization", bearer(token))
                .call()
                .expect("GET"),
        );
        if status == 200 {
            return body;
        }
        assert_eq!(status, 404, "GET /orders/{id} answered {status}: {body}");
        assert!(
            Instant::now() < deadline,
            "order {id} never became readable"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The AWS credentials the runner's env file holds (the runner's admin under IAM
/// enforcement), for a test that calls moto itself.
pub fn runner_credentials(state: &Path) -> (String, String) {
    let env = std::fs::read_to_string(state.join("cargo-lambda.env")).expect("env file");
    let value = |name: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} is not in the env file"))
            .to_string()
    };
    (value("AWS_ACCESS_KEY_ID"), value("AWS_SECRET_ACCESS_KEY"))
}
