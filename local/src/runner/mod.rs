//! The runner: starts PostgreSQL and moto (or uses existing ones), applies the migrations,
//! creates the template's resources, starts every function that has a local trigger as a
//! process behind the Runtime API, re-projects the read model, then serves the HTTP API,
//! polls the queues and runs the schedules until SIGINT/SIGTERM/SIGHUP, when it stops every
//! child in order.

mod env;
mod phases;
mod roles;
mod triggers;

use crate::cli::Options;
use crate::http_api::Gateway;
use crate::moto::LocalMoto;
use crate::output::say;
use crate::postgres::LocalPostgres;
use crate::runtime_api::Function;
use crate::template::{Resolver, Template};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

/// moto's account.
pub const ACCOUNT_ID: &str = "123456789012";

/// Everything started so far, so that it can be stopped even when start-up is interrupted.
#[derive(Default)]
struct Stack {
    tasks: Mutex<Vec<JoinHandle<()>>>,
    functions: Mutex<Vec<Function>>,
    moto: Mutex<Option<Arc<LocalMoto>>>,
    postgres: Mutex<Option<Arc<LocalPostgres>>>,
    gateway: Mutex<Option<Arc<Gateway>>>,
}

impl Stack {
    fn task(&self, task: JoinHandle<()>) {
        self.tasks.lock().expect("tasks").push(task);
    }

    async fn shutdown(&self) {
        if let Some(gateway) = self.gateway.lock().expect("gateway").take() {
            gateway.close();
        }
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
        let functions: Vec<Function> = self
            .functions
            .lock()
            .expect("functions")
            .drain(..)
            .collect();
        let mut stopping = tokio::task::JoinSet::new();
        for function in functions {
            stopping.spawn(async move { function.stop(Duration::from_secs(2)).await });
        }
        while stopping.join_next().await.is_some() {}
        let moto = self.moto.lock().expect("moto").take();
        if let Some(moto) = moto {
            moto.stop().await;
        }
        let postgres = self.postgres.lock().expect("postgres").take();
        if let Some(postgres) = postgres {
            postgres.stop().await;
        }
    }
}

/// What stops the runner.
enum Stop {
    Signal(&'static str),
    Failed(String),
}

struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, String> {
        let make = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
        Ok(Self {
            interrupt: make(SignalKind::interrupt())?,
            terminate: make(SignalKind::terminate())?,
            hangup: make(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// A failure the runner has already reported on stderr.
#[derive(Debug)]
pub struct Failed;

/// Runs until a signal; `Err` when something failed (after saying what).
pub async fn run(options: Options) -> Result<(), Failed> {
    let mut signals = Signals::new().map_err(|e| {
        eprintln!("orders-local: error: {e}");
        Failed
    })?;
    let stack = Stack::default();
    let stop = tokio::select! {
        started = start(&options, &stack) => match started {
            Ok(mut watch) => tokio::select! {
                name = signals.recv() => Stop::Signal(name),
                failure = watch.failure() => Stop::Failed(failure),
            },
            Err(e) => Stop::Failed(e),
        },
        name = signals.recv() => Stop::Signal(name),
    };
    // A second signal while stopping ends the runner at once (the children then get their
    // parent-death signal).
    tokio::spawn(async move {
        let name = signals.recv().await;
        say(format!("{name} again: exiting without waiting"));
        std::process::exit(130);
    });
    match &stop {
        Stop::Signal(name) => say(format!("{name}: stopping functions, moto and PostgreSQL")),
        Stop::Failed(e) => eprintln!("orders-local: error: {e}\norders-local: stopping"),
    }
    stack.shutdown().await;
    say("stopped");
    match stop {
        Stop::Signal(_) => Ok(()),
        Stop::Failed(_) => Err(Failed),
    }
}

/// Reports the first unexpected exit of a service the system cannot run without.
struct Watch {
    tx: tokio::sync::mpsc::Sender<String>,
    rx: tokio::sync::mpsc::Receiver<String>,
}

impl Watch {
    fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        Self { tx, rx }
    }

    /// Watches one service (the task is stopped with the others before shutdown).
    fn service(
        &self,
        stack: &Stack,
        name: &str,
        mut exit: tokio::sync::watch::Receiver<Option<String>>,
    ) {
        let tx = self.tx.clone();
        let name = name.to_string();
        stack.task(tokio::spawn(async move {
            let status = exit
                .wait_for(Option::is_some)
                .await
                .map(|s| s.clone().unwrap_or_default())
                .unwrap_or_default();
            let _ = tx
                .send(format!("{name} exited unexpectedly ({status})"))
                .await;
        }));
    }

    async fn failure(&mut self) -> String {
        match self.rx.recv().await {
            Some(failure) => failure,
            None => std::future::pending().await,
        }
    }
}
/// Starts everything, phase by phase (see [`phases`]); returns what watches the services.
async fn start(options: &Options, stack: &Stack) -> Result<Watch, String> {
    let template = Template::load(&options.template)?;
    let defs = template.functions()?;
    let region = env::region();
    let mut resolver = Resolver::new(&template, &region, ACCOUNT_ID, &options.stack_name);
    let to_run = phases::functions_to_run(options, &defs)?;
    let gateway = phases::open_gateway(options, stack).await?;
    let verifier = phases::jwt_verifier(options, &to_run, &gateway)?;

    let services = phases::start_services(options, stack, &defs, &resolver).await?;
    let watch = Watch::new();
    let db = phases::database(&services, &options.root, stack, &watch)?;
    let aws_target = phases::aws_target(options, &services, &region, stack, &watch);
    let unchecked = env::sdk_config(&aws_target, &region).await;
    let iam_enforced = roles::enforced(options, &services);
    let admin = match iam_enforced {
        true => Some(roles::admin(&unchecked, options).await?),
        false => None,
    };
    let aws = match &admin {
        Some(admin) => admin.sdk_config(&unchecked),
        None => unchecked,
    };
    let pool = phases::migrate(&db, &aws).await?;
    let provisioned =
        phases::provision_resources(options, &defs, &mut resolver, &db, &aws_target, &aws).await?;
    let sessions = match (iam_enforced, &aws_target) {
        (true, env::AwsTarget::Endpoint(endpoint)) => {
            roles::function_sessions(options, &to_run, &resolver, &aws, endpoint).await?
        }
        _ => Default::default(),
    };

    let context = phases::FunctionContext {
        resolver: &resolver,
        db: &db,
        aws_target: &aws_target,
        provisioned: &provisioned,
        region: &region,
        sessions: &sessions,
        admin: admin.as_ref(),
    };
    let (functions, env_file) = phases::start_functions(options, stack, &to_run, &context).await?;
    let sources = triggers::event_sources(options, &to_run, &functions, &provisioned, &region);
    triggers::reproject_read_model(&pool, &sources, &region).await?;
    pool.close();
    let routes = triggers::routes(&to_run, &functions, &verifier);
    triggers::start_pollers(stack, &sources, &aws, &sessions);
    triggers::start_schedules(options, stack, &to_run, &functions, &region);

    let health = phases::health_report(
        &services,
        &db,
        &aws_target,
        &region,
        &functions,
        &routes,
        &sources,
    );
    gateway.open(routes, health);
    phases::banner(options, &services, &env_file, verifier.is_some());
    Ok(watch)
}

/// The order the start-up message suggests posting.
pub const EXAMPLE_ORDER: &str = r#"{"customer":{"id":"cust-1001","name":"Ada Lovelace","email":"ada@example.com"},"currency":"EUR","lines":[{"sku":"BOOK-ENGINE-01","name":"Notes on the Analytical Engine","quantity":2,"unitPrice":1999}]}"#;
