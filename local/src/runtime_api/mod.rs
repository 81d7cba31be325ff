//! A Lambda function run as a real process against an emulation of the documented AWS Lambda
//! Runtime API (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//!
//! * `GET  /2018-06-01/runtime/invocation/next` hands out the next event, with the
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`
//!   headers;
//! * `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` complete it;
//! * `POST /2018-06-01/runtime/init/error` reports a failed initialisation.
//!
//! Each execution environment is one process plus its own Runtime API listener on a free
//! loopback port (`AWS_LAMBDA_RUNTIME_API`). Like Lambda, an environment handles one invocation
//! at a time; it is created on the first invocation (a cold start, whose init duration is
//! measured from spawn to the first `next` request) and replaced after a timeout or a crash:
//! the invocation in flight fails and the next one cold-starts a new process.
//!
//! On Lambda Managed Instances ([`Function::managed`]) an environment gets
//! `AWS_LAMBDA_MAX_CONCURRENCY=N` and up to N invocations at once: its runtime keeps several
//! `next` requests outstanding, each is handed its own event, and responses are matched by
//! request id. As there, a timed-out invocation fails alone (the environment and the other
//! invocations in it keep running); a crash fails every invocation in flight.
//!
//! Nothing here knows about the rest of the runner, so benchmarks can use [`Function`] alone.

mod env;
mod server;

use crate::output;
use crate::process::{self, Supervised};
use bytes::Bytes;
use env::{lambda_env, trace_id};
use server::{serve, Api, Next};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// Lambda's limit on a synchronous invocation's request payload and on any response
/// (<https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>).
pub const SYNC_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// Lambda's limit on an asynchronous invocation's payload (an EventBridge schedule's event).
pub const ASYNC_PAYLOAD_LIMIT: usize = 1024 * 1024;
/// The error type Lambda reports when a function's response exceeds [`SYNC_PAYLOAD_LIMIT`].
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// How to run one function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Short name: the prefix of its output lines (`[command] ...`).
    pub name: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// The built binary (what `bootstrap` is on Lambda).
    pub program: PathBuf,
    /// The function's configuration: its environment variables, as Lambda would set them.
    pub env: Vec<(String, String)>,
    /// Invocation timeout (the function's `Timeout`).
    pub timeout: Duration,
    /// How long a new process may take to ask for its first event.
    pub init_timeout: Duration,
    pub memory_mb: u32,
    pub region: String,
    pub account_id: String,
    /// Forward the process's stdout/stderr, prefixed with `name`; otherwise discard it.
    pub show_output: bool,
    /// Print a Lambda-style `REPORT` line after each invocation.
    pub report: bool,
}

impl FunctionSpec {
    pub fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.function_name
        )
    }
}

/// Why an invocation did not produce a response.
#[derive(Debug)]
pub enum InvokeError {
    /// The function reported an error (`.../error`).
    Function { error_type: String, body: Bytes },
    /// No response within the timeout; the environment was stopped.
    Timeout(Duration),
    /// The process exited before it answered.
    Crashed(String),
    /// A new process could not start or initialise.
    InitFailed(String),
    /// The function has been stopped.
    Stopped,
    /// The event exceeds Lambda's payload limit; the function was not invoked.
    PayloadTooLarge { size: usize, limit: usize },
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Function { error_type, body } => {
                write!(
                    f,
                    "function error {error_type}: {}",
                    String::from_utf8_lossy(body)
                )
            }
            Self::Timeout(t) => write!(f, "task timed out after {:.2} seconds", t.as_secs_f64()),
            Self::Crashed(why) => write!(f, "the function process {why}"),
            Self::InitFailed(why) => write!(f, "init failed: {why}"),
            Self::Stopped => f.write_str("the function is stopped"),
            Self::PayloadTooLarge { size, limit } => write!(
                f,
                "RequestTooLargeException: the {size}-byte payload exceeds Lambda's {limit}-byte limit"
            ),
        }
    }
}

impl std::error::Error for InvokeError {}

/// A completed invocation.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub request_id: String,
    pub body: Bytes,
    /// Set when this invocation started a new process: spawn to first `next` request.
    pub init: Option<Duration>,
    /// From handing out the event to the response.
    pub duration: Duration,
}

/// One function: up to `concurrency` execution environments (processes), each handling one
/// invocation at a time, like Lambda scaling a function out. Warm environments are reused first;
/// a new one is started (a cold start) only when every running one is busy.
#[derive(Clone)]
pub struct Function {
    inner: Arc<Inner>,
}

struct Inner {
    spec: FunctionSpec,
    /// Invocations one environment runs at once (1 on Lambda, N on Managed Instances).
    per_environment: usize,
    slots: Vec<Slot>,
    /// One permit per slot: invocations beyond the concurrency wait here.
    capacity: tokio::sync::Semaphore,
    stopped: AtomicBool,
}

/// The place of one execution environment.
struct Slot {
    /// One permit per invocation the environment may run at once, held for the whole
    /// invocation; all of them to stop it.
    turn: tokio::sync::Semaphore,
    /// Held while a process starts, so that invocations sharing the slot wait for its init.
    starting: tokio::sync::Mutex<()>,
    current: Mutex<Option<Arc<Environment>>>,
}

impl Slot {
    fn new(per_environment: usize) -> Self {
        Self {
            turn: tokio::sync::Semaphore::new(per_environment),
            starting: tokio::sync::Mutex::new(()),
            current: Mutex::new(None),
        }
    }

    fn live(&self) -> Option<Arc<Environment>> {
        self.current
            .lock()
            .expect("current lock")
            .clone()
            .filter(|e| e.process.exit_status().is_none())
    }

    async fn stop(&self, grace: Duration) {
        let env = self.current.lock().expect("current lock").take();
        if let Some(env) = env {
            env.process.stop(libc::SIGTERM, grace).await;
            env.server.abort();
        }
    }
}

impl Function {
    /// A function with one execution environment at a time.
    pub fn new(spec: FunctionSpec) -> Self {
        Self::with_concurrency(spec, 1)
    }

    /// A function with up to `concurrency` (at least 1) execution environments at once.
    pub fn with_concurrency(spec: FunctionSpec, concurrency: usize) -> Self {
        Self::managed(spec, concurrency, 1)
    }

    /// A function on Lambda Managed Instances: up to `environments` processes, each given
    /// `AWS_LAMBDA_MAX_CONCURRENCY=per_environment` and that many invocations at once
    /// (`per_environment` 1 is plain Lambda). Invocations fill a warm environment first.
    pub fn managed(spec: FunctionSpec, environments: usize, per_environment: usize) -> Self {
        let (environments, per_environment) = (environments.max(1), per_environment.max(1));
        Self {
            inner: Arc::new(Inner {
                spec,
                per_environment,
                slots: (0..environments)
                    .map(|_| Slot::new(per_environment))
                    .collect(),
                capacity: tokio::sync::Semaphore::new(environments * per_environment),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Invocations one environment runs at once (`AWS_LAMBDA_MAX_CONCURRENCY`; 1 on Lambda).
    pub fn per_environment(&self) -> usize {
        self.inner.per_environment
    }

    pub fn spec(&self) -> &FunctionSpec {
        &self.inner.spec
    }

    pub fn name(&self) -> &str {
        &self.inner.spec.name
    }

    /// The most execution environments (processes) it runs at once.
    pub fn concurrency(&self) -> usize {
        self.inner.slots.len()
    }

    /// The pid of a running process (the first environment's), if one is up.
    pub fn pid(&self) -> Option<u32> {
        self.pids().first().copied()
    }

    /// The pids of every running process.
    pub fn pids(&self) -> Vec<u32> {
        self.inner
            .slots
            .iter()
            .filter_map(|slot| slot.live().map(|e| e.process.pid))
            .collect()
    }

    /// Starts a process in the first environment now, unless one is up there; returns its init
    /// duration when it started one.
    pub async fn start(&self) -> Result<Option<Duration>, InvokeError> {
        let slot = &self.inner.slots[0];
        let Ok(_turn) = slot.turn.acquire().await else {
            return Err(InvokeError::Stopped);
        };
        self.ready_environment(slot).await.map(|(_, init)| init)
    }

    /// The slot's running environment, started now (with its init duration) if there is none.
    async fn ready_environment(
        &self,
        slot: &Slot,
    ) -> Result<(Arc<Environment>, Option<Duration>), InvokeError> {
        let _starting = slot.starting.lock().await;
        if self.inner.stopped.load(Ordering::SeqCst) {
            return Err(InvokeError::Stopped);
        }
        match slot.live() {
            Some(env) => Ok((env, None)),
            None => {
                let (env, init) = self.cold_start(slot).await?;
                Ok((env, Some(init)))
            }
        }
    }

    async fn cold_start(&self, slot: &Slot) -> Result<(Arc<Environment>, Duration), InvokeError> {
        let spec = &self.inner.spec;
        let env = Arc::new(Environment::spawn(spec, self.inner.per_environment).await?);
        *slot.current.lock().expect("current lock") = Some(env.clone());
        match env.wait_ready(spec.init_timeout).await {
            Ok(init) => Ok((env, init)),
            Err(e) => {
                discard(slot, &env).await;
                Err(e)
            }
        }
    }

    /// Takes a turn in a free slot: one with a warm environment if there is one.
    async fn free_slot(&self) -> Result<(&Slot, tokio::sync::SemaphorePermit<'_>), InvokeError> {
        let slots = &self.inner.slots;
        let warm = slots.iter().filter(|s| s.live().is_some());
        let cold = slots.iter().filter(|s| s.live().is_none());
        for slot in warm.chain(cold) {
            if let Ok(turn) = slot.turn.try_acquire() {
                return Ok((slot, turn));
            }
        }
        // Every slot is held although a permit was free: a start or reset holds one briefly.
        let slot = &slots[0];
        let turn = slot
            .turn
            .acquire()
            .await
            .map_err(|_| InvokeError::Stopped)?;
        Ok((slot, turn))
    }

    /// Invokes the function with `payload` (the event JSON) and waits for its answer.
    pub async fn invoke(&self, payload: Bytes) -> Result<Invoked, InvokeError> {
        if payload.len() > SYNC_PAYLOAD_LIMIT {
            return Err(InvokeError::PayloadTooLarge {
                size: payload.len(),
                limit: SYNC_PAYLOAD_LIMIT,
            });
        }
        let Ok(_permit) = self.inner.capacity.acquire().await else {
            return Err(InvokeError::Stopped);
        };
        let (slot, _turn) = self.free_slot().await?;
        let spec = &self.inner.spec;
        let (env, init) = self.ready_environment(slot).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let deadline = SystemTime::now() + spec.timeout;
        let deadline_ms = deadline
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        env.api
            .pending
            .lock()
            .expect("pending lock")
            .insert(request_id.clone(), tx);
        let started = Instant::now();
        let handed = env.api.next_tx.send(Next {
            request_id: request_id.clone(),
            payload,
            deadline_ms,
            trace_id: trace_id(),
        });
        let mut exit = env.process.exit_watch();
        let result = tokio::select! {
            result = async {
                handed.await.map_err(|_| InvokeError::Crashed("is gone".into()))?;
                rx.await.unwrap_or_else(|_| Err(InvokeError::Crashed("dropped the invocation".into())))
            } => result,
            _ = tokio::time::sleep(spec.timeout) => Err(InvokeError::Timeout(spec.timeout)),
            status = wait_exit(&mut exit) => Err(InvokeError::Crashed(format!("exited during the invocation ({status})"))),
        };
        env.api
            .pending
            .lock()
            .expect("pending lock")
            .remove(&request_id);
        let duration = started.elapsed();

        if spec.report {
            let init_text = init
                .map(|d| format!("\tInit Duration: {:.2} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_default();
            let status = match &result {
                Ok(_) => String::new(),
                Err(e) => format!("\tStatus: {}", short_status(e)),
            };
            output::prefixed(
                &spec.name,
                &format!(
                    "REPORT RequestId: {request_id}\tDuration: {:.2} ms\tMemory Size: {} MB{init_text}{status}",
                    duration.as_secs_f64() * 1000.0,
                    spec.memory_mb
                ),
                false,
            );
        }
        match result {
            Ok(body) => Ok(Invoked {
                request_id,
                body,
                init,
                duration,
            }),
            Err(error) => {
                // Like Lambda, a timed-out or crashed environment is not reused; on Managed
                // Instances a timeout fails that invocation alone.
                let fatal = match error {
                    InvokeError::Crashed(_) => true,
                    InvokeError::Timeout(_) => self.inner.per_environment == 1,
                    _ => false,
                };
                if fatal {
                    discard(slot, &env).await;
                    if spec.show_output && !self.inner.stopped.load(Ordering::SeqCst) {
                        output::prefixed(
                            &spec.name,
                            &format!(
                                "{error}; the next invocation starts a new process (cold start)"
                            ),
                            true,
                        );
                    }
                }
                Err(error)
            }
        }
    }

    /// Invokes the function as an asynchronous invocation would (a schedule), with that
    /// smaller payload limit, and waits for it to finish.
    pub async fn invoke_async(&self, payload: Bytes) -> Result<Invoked, InvokeError> {
        if payload.len() > ASYNC_PAYLOAD_LIMIT {
            return Err(InvokeError::PayloadTooLarge {
                size: payload.len(),
                limit: ASYNC_PAYLOAD_LIMIT,
            });
        }
        self.invoke(payload).await
    }

    /// Stops every running process (the next invocation cold-starts).
    pub async fn reset(&self) {
        let all = u32::try_from(self.inner.per_environment).unwrap_or(u32::MAX);
        for slot in &self.inner.slots {
            let _turn = slot.turn.acquire_many(all).await;
            slot.stop(Duration::from_secs(2)).await;
        }
    }

    /// Stops the processes for good: SIGTERM, then SIGKILL after `grace`. Invocations in
    /// flight fail.
    pub async fn stop(&self, grace: Duration) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        self.inner.capacity.close();
        for slot in &self.inner.slots {
            slot.turn.close();
        }
        futures::future::join_all(self.inner.slots.iter().map(|slot| slot.stop(grace))).await;
    }
}

/// Kills `env` at once and forgets it (if it is still the slot's environment).
async fn discard(slot: &Slot, env: &Arc<Environment>) {
    {
        let mut current = slot.current.lock().expect("current lock");
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, env)) {
            *current = None;
        }
    }
    env.process.stop(libc::SIGKILL, Duration::ZERO).await;
    env.server.abort();
}

fn short_status(error: &InvokeError) -> &'static str {
    match error {
        InvokeError::Function { .. } => "error",
        InvokeError::Timeout(_) => "timeout",
        InvokeError::Crashed(_) => "crashed",
        InvokeError::InitFailed(_) => "init failed",
        InvokeError::Stopped => "stopped",
        InvokeError::PayloadTooLarge { .. } => "payload too large",
    }
}

async fn wait_exit(exit: &mut watch::Receiver<Option<String>>) -> String {
    match exit.wait_for(Option::is_some).await {
        Ok(status) => status.clone().unwrap_or_default(),
        Err(_) => "exited".into(),
    }
}

/// One execution environment: a process and the Runtime API it talks to.
struct Environment {
    process: Supervised,
    api: Arc<Api>,
    server: tokio::task::JoinHandle<()>,
    spawned: Instant,
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Environment {
    async fn spawn(spec: &FunctionSpec, per_environment: usize) -> Result<Self, InvokeError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| {
                InvokeError::InitFailed(format!("cannot listen for the Runtime API: {e}"))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| InvokeError::InitFailed(e.to_string()))?;
        let (next_tx, next_rx) = mpsc::channel(1);
        let api = Arc::new(Api {
            function_arn: spec.function_arn(),
            name: spec.name.clone(),
            show_output: spec.show_output,
            next_tx,
            next_rx: tokio::sync::Mutex::new(next_rx),
            pending: Mutex::new(HashMap::new()),
            ready: watch::channel(None).0,
            init_error: Mutex::new(None),
        });
        let server = tokio::spawn(serve(listener, api.clone()));

        let mut command = tokio::process::Command::new(&spec.program);
        command
            .env_clear()
            .envs(lambda_env(spec, addr, per_environment))
            .stdin(Stdio::null())
            .stdout(if spec.show_output {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if spec.show_output {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        if let Some(dir) = spec.program.parent().filter(|d| d.is_dir()) {
            command.current_dir(dir);
        }
        process::own(&mut command, libc::SIGKILL);
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            server.abort();
            InvokeError::InitFailed(format!("cannot start {}: {e}", spec.program.display()))
        })?;
        if let Some(stdout) = child.stdout.take() {
            output::forward(stdout, spec.name.clone(), false);
        }
        if let Some(stderr) = child.stderr.take() {
            output::forward(stderr, spec.name.clone(), true);
        }
        Ok(Self {
            process: Supervised::new(child),
            api,
            server,
            spawned,
        })
    }

    /// Waits for the first `next` request; returns the init duration.
    async fn wait_ready(&self, limit: Duration) -> Result<Duration, InvokeError> {
        let mut ready = self.api.ready.subscribe();
        let mut exit = self.process.exit_watch();
        let init_error = || {
            self.api
                .init_error
                .lock()
                .expect("init error lock")
                .clone()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        };
        tokio::select! {
            at = ready.wait_for(Option::is_some) => match at {
                Ok(at) => Ok(at.map(|t| t.duration_since(self.spawned)).unwrap_or_default()),
                Err(_) => Err(InvokeError::InitFailed("runtime API closed".into())),
            },
            status = wait_exit(&mut exit) => Err(InvokeError::InitFailed(format!(
                "the process exited during init ({status}){}", init_error()
            ))),
            _ = tokio::time::sleep(limit) => Err(InvokeError::InitFailed(format!(
                "the process did not ask for an event within {}s{}", limit.as_secs(), init_error()
            ))),
        }
    }
}
