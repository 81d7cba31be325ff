//! The runner: starts PostgreSQL and moto (or uses existing ones), applies the migrations,
//! creates the template's resources, starts every function that has a local trigger as a
//! process behind the Runtime API, re-projects the read model, then serves the HTTP API,
//! polls the queues and runs the schedules until SIGINT/SIGTERM/SIGHUP, when it stops every
//! child in order.

use crate::auth::{self, SigningKey, Verifier};
use crate::cli::Options;
use crate::http_api::{self, Gateway, Route, RouteAuthorizer};
use crate::moto::LocalMoto;
use crate::output::{say, warn};
use crate::postgres::{ClusterOptions, LocalPostgres};
use crate::provision::{self, Database, Provisioned};
use crate::reproject;
use crate::runtime_api::{Function, FunctionSpec};
use crate::schedule::{self, Schedule};
use crate::sqs_source::SqsSource;
use crate::template::{FunctionDef, Physical, Resolver, RouteAuth, Template};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use orders::config::{DbConfig, DbPassword, SslMode};
use serde_json::{json, Value};
use std::path::Path;
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

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The database the functions use.
struct Db {
    config: DbConfig,
    password: String,
    managed: bool,
}

/// Variables that describe the database connection: the runner sets them.
const DB_VARS: &[&str] = &[
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_AUTH",
    "DB_PASSWORD",
    "DB_SSLMODE",
    "DB_CA_FILE",
    "DB_SECRET_ARN",
];

/// Where the functions' AWS calls go.
#[derive(Debug, Clone)]
enum AwsTarget {
    /// moto (or another emulator).
    Endpoint(String),
    /// Real AWS, with the caller's credentials.
    Real,
}

/// What a function needs from the caller's environment to reach real AWS.
const AWS_PASS_THROUGH: &[&str] = &[
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "HOME",
];

/// A function's environment: the template's variables with local values (or the caller's,
/// when set), the database settings, and the AWS endpoint and credentials. Also returns the
/// names taken from the caller's environment.
fn function_env(
    def: &FunctionDef,
    resolver: &Resolver<'_>,
    db: &Db,
    aws: &AwsTarget,
    secrets: &std::collections::HashMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = Vec::new();
    let mut overridden = Vec::new();
    let uses_db = def.env.contains_key("DB_HOST");
    for (name, value) in &def.env {
        if DB_VARS.contains(&name.as_str()) {
            continue;
        }
        if let Some(v) = env_var(name) {
            env.push((name.clone(), v));
            overridden.push(name.clone());
            continue;
        }
        match resolver
            .string(value)
            .and_then(|v| provision::resolve_dynamic(&v, secrets))
        {
            Ok(v) => env.push((name.clone(), v)),
            Err(e) => warn(format!(
                "{}: {name} is not set locally ({e})",
                def.logical_id
            )),
        }
    }
    if uses_db {
        let sslmode = match db.config.sslmode {
            SslMode::Disable => "disable",
            SslMode::VerifyFull => "verify-full",
        };
        env.extend([
            ("DB_HOST".to_string(), db.config.host.clone()),
            ("DB_PORT".to_string(), db.config.port.to_string()),
            ("DB_NAME".to_string(), db.config.dbname.clone()),
            ("DB_USER".to_string(), db.config.user.clone()),
            ("DB_SSLMODE".to_string(), sslmode.to_string()),
        ]);
        if let Some(ca) = db.config.ca_file.clone() {
            env.push(("DB_CA_FILE".into(), ca));
        }
        // With moto, a secret the template points the function at holds the credentials, as
        // Secrets Manager does when deployed; otherwise the password is given directly. That
        // includes DB_AUTH=iam: a local PostgreSQL cannot check IAM tokens as RDS Proxy does.
        let secret = match aws {
            AwsTarget::Endpoint(_) => def
                .env
                .get("DB_SECRET_ARN")
                .and_then(|v| resolver.string(v).ok()),
            AwsTarget::Real => None,
        };
        match secret {
            Some(arn) => env.push(("DB_SECRET_ARN".into(), arn)),
            None => env.push(("DB_PASSWORD".into(), db.password.clone())),
        }
    }
    if let Some(format) = env_var("LOCAL_LOG_FORMAT").or_else(|| def.log_format.clone()) {
        env.push(("AWS_LAMBDA_LOG_FORMAT".into(), format));
    }
    if let Some(level) = &def.log_level {
        env.push(("AWS_LAMBDA_LOG_LEVEL".into(), level.clone()));
    }
    match aws {
        AwsTarget::Endpoint(endpoint) => {
            let (key, secret) = aws_credentials();
            env.extend([
                ("AWS_ENDPOINT_URL".to_string(), endpoint.clone()),
                ("AWS_ACCESS_KEY_ID".to_string(), key),
                ("AWS_SECRET_ACCESS_KEY".to_string(), secret),
                ("AWS_EC2_METADATA_DISABLED".to_string(), "true".to_string()),
            ]);
        }
        AwsTarget::Real => {
            for name in AWS_PASS_THROUGH {
                if let Some(v) = env_var(name) {
                    env.push((name.to_string(), v));
                }
            }
        }
    }
    (env, overridden)
}

fn aws_credentials() -> (String, String) {
    (
        env_var("AWS_ACCESS_KEY_ID").unwrap_or_else(|| "test".into()),
        env_var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|| "test".into()),
    )
}

async fn sdk_config(aws: &AwsTarget, region: &str) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_string()));
    match aws {
        AwsTarget::Endpoint(endpoint) => {
            let (key, secret) = aws_credentials();
            loader
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    key,
                    secret,
                    None,
                    None,
                    "orders-local",
                ))
                .load()
                .await
        }
        AwsTarget::Real => loader.load().await,
    }
}

/// The value one of the functions' template variables resolves to (before anything exists).
fn template_value(
    functions: &[FunctionDef],
    resolver: &Resolver<'_>,
    name: &str,
) -> Option<String> {
    functions
        .iter()
        .filter_map(|f| f.env.get(name))
        .find_map(|v| resolver.string(v).ok())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The env file for `cargo lambda watch --env-file`: every function's variables.
/// (The region too, which Lambda sets and cargo lambda does not.)
fn write_env_file(path: &Path, specs: &[FunctionSpec], region: &str) -> Result<(), String> {
    let mut seen = std::collections::BTreeMap::new();
    seen.insert("AWS_REGION".to_string(), region.to_string());
    seen.insert("AWS_DEFAULT_REGION".to_string(), region.to_string());
    for spec in specs {
        for (k, v) in &spec.env {
            seen.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let mut text = String::new();
    for (k, v) in seen {
        text.push_str(&format!("{k}={v}\n"));
    }
    write_private(path, &text)
}

async fn start(options: &Options, stack: &Stack) -> Result<Watch, String> {
    let root = &options.root;
    let template = Template::load(&options.template)?;
    let defs = template.functions()?;
    let region = env_var("AWS_REGION")
        .or_else(|| env_var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let mut resolver = Resolver::new(&template, &region, ACCOUNT_ID, &options.stack_name);

    let mut to_run = Vec::new();
    for def in &defs {
        if !def.has_triggers() {
            say(format!(
                "{} ({}) is not started: nothing invokes it locally{}",
                def.logical_id,
                def.binary,
                if def.binary == "migrate" {
                    " (the runner applies the migrations itself)"
                } else {
                    ""
                }
            ));
            continue;
        }
        for unsupported in &def.unsupported_events {
            warn(format!(
                "{}: event {unsupported} is not emulated",
                def.logical_id
            ));
        }
        let program = options.bin_dir.join(&def.binary);
        if !program.is_file() {
            return Err(format!(
                "{} not found: build the functions first (cargo build --workspace --bins; \
                 scripts/run-local does)",
                program.display()
            ));
        }
        to_run.push((def.clone(), program));
    }

    std::fs::create_dir_all(options.state_dir.join("logs"))
        .map_err(|e| format!("{}: {e}", options.state_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.api_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on 127.0.0.1:{}: {e}; choose another port with --port (or \
                 LOCAL_API_PORT)",
                options.api_port
            )
        })?;
    let gateway = Gateway::new(ACCOUNT_ID, "local");
    *stack.gateway.lock().expect("gateway") = Some(gateway.clone());
    stack.task(tokio::spawn(http_api::serve(listener, gateway.clone())));

    // The JWT authorizer: the template's issuer and audience exist only in AWS, so the same
    // checks are made against the local issuer and development key.
    let jwt_authorizers: std::collections::BTreeSet<&str> = to_run
        .iter()
        .flat_map(|(def, _)| &def.routes)
        .filter_map(|route| match &route.auth {
            RouteAuth::Jwt { authorizer, .. } => Some(authorizer.as_str()),
            _ => None,
        })
        .collect();
    let verifier =
        if jwt_authorizers.is_empty() {
            None
        } else {
            let key = SigningKey::load_or_create(&options.state_dir)
                .map_err(|e| format!("the local JWT signing key: {e}"))?;
            gateway.set_jwks(key.jwks());
            say(format!(
            "JWT authorizer {} emulated: issuer {}, audience {}, key {} (kid {}); public key at \
             http://127.0.0.1:{}{}",
            jwt_authorizers.iter().copied().collect::<Vec<_>>().join(", "),
            auth::LOCAL_ISSUER,
            auth::LOCAL_AUDIENCE,
            relative(&key.path, root),
            key.kid,
            options.api_port,
            http_api::JWKS_PATH
        ));
            Some(Arc::new(Verifier::local(&key)?))
        };

    // PostgreSQL and moto, side by side.
    let external_db = env_var("DB_HOST").is_some();
    let external_aws = env_var("AWS_ENDPOINT_URL");
    let db_user = template_value(&defs, &resolver, "DB_USER").unwrap_or_else(|| "orders".into());
    let db_name = template_value(&defs, &resolver, "DB_NAME").unwrap_or_else(|| "orders".into());
    let logs = options.state_dir.join("logs");
    let postgres_log = logs.join("postgres.log");
    let moto_log = logs.join("moto.log");
    let start_postgres = async {
        if external_db {
            return Ok(None);
        }
        LocalPostgres::start(ClusterOptions {
            state_dir: options.state_dir.clone(),
            port: options.pg_port,
            user: db_user.clone(),
            database: db_name.clone(),
            fresh: options.fresh,
            log: postgres_log.clone(),
        })
        .await
        .map(|pg| Some(Arc::new(pg)))
    };
    let start_moto = async {
        if external_aws.is_some() || options.real_aws {
            return Ok(None);
        }
        LocalMoto::start(root, options.moto_port, &moto_log)
            .await
            .map(|m| Some(Arc::new(m)))
    };
    let (postgres, moto) = tokio::join!(start_postgres, start_moto);
    // Register what did start before reporting what did not.
    if let Ok(Some(pg)) = &postgres {
        *stack.postgres.lock().expect("postgres") = Some(pg.clone());
    }
    if let Ok(Some(m)) = &moto {
        *stack.moto.lock().expect("moto") = Some(m.clone());
    }
    let postgres = postgres?;
    let moto = moto?;
    let watch = Watch::new();

    let db = match &postgres {
        Some(pg) => {
            let where_ = relative(&pg.root, root);
            say(format!(
                "PostgreSQL on 127.0.0.1:{} (database {}, user {}; {} cluster in {}; password in {}/password)",
                pg.port,
                pg.database,
                pg.user,
                if pg.created { "new" } else { "existing" },
                where_,
                where_
            ));
            watch.service(stack, "PostgreSQL", pg.exit_watch());
            Db {
                config: pg.db_config(),
                password: pg.password.clone(),
                managed: true,
            }
        }
        None => {
            let config = DbConfig::from_env().map_err(|e| format!("DB_HOST is set: {e}"))?;
            let password = match &config.password {
                DbPassword::Plain(p) => p.clone(),
                DbPassword::Secret(_) | DbPassword::Iam => {
                    return Err("with DB_HOST, give the password as DB_PASSWORD".into())
                }
            };
            say(format!(
                "PostgreSQL: using {}:{} (database {}, user {}) from DB_HOST",
                config.host, config.port, config.dbname, config.user
            ));
            Db {
                config,
                password,
                managed: false,
            }
        }
    };
    let aws_target = match (&moto, &external_aws) {
        _ if options.real_aws => {
            say(format!(
                "AWS services: real AWS in {region} with your credentials (--real-aws); resource \
                 variables come from the environment"
            ));
            AwsTarget::Real
        }
        (Some(m), _) => {
            say(format!(
                "moto on {} (DynamoDB, S3, SNS, SQS, Secrets Manager; in memory)",
                m.endpoint()
            ));
            watch.service(stack, "moto", m.exit_watch());
            AwsTarget::Endpoint(m.endpoint())
        }
        (None, Some(endpoint)) => {
            say(format!(
                "AWS services: using {endpoint} from AWS_ENDPOINT_URL"
            ));
            AwsTarget::Endpoint(endpoint.clone())
        }
        (None, None) => unreachable!("moto is started unless AWS_ENDPOINT_URL is set"),
    };
    let aws = sdk_config(&aws_target, &region).await;

    // Schema.
    let pool = orders::postgres::connect(&db.config, &aws)
        .await
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    let applied = orders::postgres::migrate(&pool)
        .await
        .map_err(|e| format!("migrations: {e}"))?;
    if applied.is_empty() {
        say("migrations: schema is current");
    } else {
        say(format!("migrations: applied {}", applied.join(", ")));
    }

    // Resources.
    let database = Database {
        host: &db.config.host,
        port: db.config.port,
        user: &db.config.user,
        password: &db.password,
    };
    provision::describe_database(&mut resolver, &database);
    for def in &defs {
        let name = format!("{}-{}", options.stack_name, def.binary);
        let arn = format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}");
        resolver
            .physical
            .insert(def.logical_id.clone(), Physical::new(name).with("Arn", arn));
    }
    for (id, _) in template.resources_of("AWS::Serverless::HttpApi") {
        resolver.physical.insert(
            id.to_string(),
            Physical::new("local").with(
                "ApiEndpoint",
                format!("http://127.0.0.1:{}", options.api_port),
            ),
        );
    }
    let provisioned = match aws_target {
        AwsTarget::Real => Provisioned::default(),
        AwsTarget::Endpoint(_) => {
            // The secrets that hold the database credentials: the proxy's, and any a function
            // reads its password from. Locally they hold the local database's.
            let proxy_secrets = template
                .resources_of("AWS::RDS::DBProxy")
                .into_iter()
                .flat_map(|(_, proxy)| {
                    proxy["Properties"]["Auth"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|auth| {
                    crate::template::referenced_id(&auth["SecretArn"]).map(str::to_string)
                });
            let database_secrets = defs
                .iter()
                .filter_map(|d| d.env.get("DB_SECRET_ARN"))
                .filter_map(|v| crate::template::referenced_id(v).map(str::to_string))
                .chain(proxy_secrets)
                .collect();
            // Other generated secrets keep their values from one run to the next.
            let saved = options.state_dir.join("secrets.json");
            let mut generated: std::collections::BTreeMap<String, String> =
                std::fs::read_to_string(&saved)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
            let provisioned = provision::provision(
                &aws,
                &mut resolver,
                &database,
                &database_secrets,
                &mut generated,
                options.visibility_timeout,
            )
            .await?;
            let text = serde_json::to_string_pretty(&generated).unwrap_or_default();
            write_private(&saved, &text)?;
            provisioned
        }
    };
    for line in &provisioned.lines {
        say(format!("created {line}"));
    }

    // Functions.
    let mut specs = Vec::new();
    let mut overridden = std::collections::BTreeSet::new();
    for (def, program) in &to_run {
        let (env, from_caller) =
            function_env(def, &resolver, &db, &aws_target, &provisioned.secret_values);
        overridden.extend(from_caller);
        specs.push(FunctionSpec {
            name: def.binary.clone(),
            function_name: format!("{}-{}", options.stack_name, def.binary),
            program: program.clone(),
            env,
            timeout: def.timeout,
            init_timeout: Duration::from_secs(30),
            memory_mb: def.memory_mb,
            region: region.clone(),
            account_id: ACCOUNT_ID.into(),
            show_output: true,
            report: false,
        });
    }
    if !overridden.is_empty() {
        say(format!(
            "from your environment: {}",
            overridden.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let env_file = options.state_dir.join("cargo-lambda.env");
    write_env_file(&env_file, &specs, &region)?;
    let mut functions = Vec::new();
    for spec in specs {
        let function = Function::with_concurrency(spec, options.concurrency);
        stack
            .functions
            .lock()
            .expect("functions")
            .push(function.clone());
        let init = function
            .start()
            .await
            .map_err(|e| format!("function {}: {e}", function.name()))?;
        say(format!(
            "function {} running ({}, pid {}, init {} ms)",
            function.name(),
            relative(&function.spec().program, root),
            function.pid().unwrap_or_default(),
            init.unwrap_or_default().as_millis()
        ));
        functions.push(function);
    }
    let function_of =
        |def: &FunctionDef| functions.iter().find(|f| f.name() == def.binary).cloned();

    // Event sources.
    let mut sources = Vec::new();
    for (def, _) in &to_run {
        let function = function_of(def).expect("started above");
        for mapping in &def.sqs {
            if options.real_aws {
                say(format!(
                    "{}: not polling {} with --real-aws (the deployed function consumes it)",
                    def.logical_id, mapping.queue
                ));
                continue;
            }
            let Some(queue) = provisioned.queues.get(&mapping.queue) else {
                warn(format!(
                    "{}: queue {} was not created; mapping skipped",
                    def.logical_id, mapping.queue
                ));
                continue;
            };
            sources.push((
                SqsSource {
                    name: queue.name.clone(),
                    function: function.clone(),
                    queue_url: queue.url.clone(),
                    queue_arn: queue.arn.clone(),
                    region: region.clone(),
                    batch_size: mapping.batch_size,
                    batching_window: mapping.batching_window,
                    report_batch_item_failures: mapping.report_batch_item_failures,
                },
                queue.clone(),
            ));
        }
    }

    // The read model, from the outbox.
    if let Some((source, _)) = sources.first() {
        let summary = reproject::reproject(
            &pool,
            &reproject::Target {
                function: &source.function,
                queue_arn: &source.queue_arn,
                region: &region,
                batch_size: source.batch_size.max(1) as usize,
            },
        )
        .await
        .map_err(|e| format!("re-projection: {e}"))?;
        if summary.orders > 0 {
            say(format!(
                "read model: re-projected {} order(s) from the outbox through {}{}",
                summary.orders,
                source.function.name(),
                if summary.failed > 0 {
                    format!(" ({} failed; see the log above)", summary.failed)
                } else {
                    String::new()
                }
            ));
        }
    }
    pool.close();

    // Routes.
    let mut routes = Vec::new();
    for (def, _) in &to_run {
        let function = function_of(def).expect("started above");
        for route in &def.routes {
            if route.payload_format != "2.0" {
                warn(format!(
                    "{}: event {} uses payload format {}; only 2.0 is emulated",
                    def.logical_id, route.event, route.payload_format
                ));
                continue;
            }
            let mut local = Route::new(&route.method, route.path.as_deref(), function.clone());
            match (&route.auth, &verifier) {
                (RouteAuth::Jwt { authorizer, scopes }, Some(verifier)) => {
                    local = local.with_auth(RouteAuthorizer {
                        name: authorizer.clone(),
                        verifier: verifier.clone(),
                        scopes: scopes.clone(),
                    });
                }
                (RouteAuth::Unsupported { authorizer, kind }, _) => warn(format!(
                    "{}: event {}: the {kind} authorizer {authorizer} is not emulated; the \
                     route is open locally",
                    def.logical_id, route.event
                )),
                _ => {}
            }
            routes.push(local);
        }
    }
    for route in &routes {
        let auth = match &route.auth {
            None => String::new(),
            Some(auth) if auth.scopes.is_empty() => format!(" (JWT {})", auth.name),
            Some(auth) => format!(" (JWT {}, scopes {})", auth.name, auth.scopes.join(" ")),
        };
        say(format!(
            "route {} -> {}{auth}",
            route.key(),
            route.function.name()
        ));
    }
    let sqs = aws_sdk_sqs::Client::new(&aws);
    for (source, queue) in &sources {
        say(format!(
            "SQS {} -> {} (batch size {}, batching window {} s{})",
            queue.name,
            source.function.name(),
            source.batch_size,
            source.batching_window.as_secs(),
            if source.report_batch_item_failures {
                ", ReportBatchItemFailures"
            } else {
                ""
            }
        ));
        stack.task(tokio::spawn(source.clone().run(sqs.clone())));
    }
    for (def, _) in &to_run {
        let function = function_of(def).expect("started above");
        for event in &def.schedules {
            let every = match schedule::parse_rate(&event.expression) {
                Ok(every) => every,
                Err(e) => {
                    warn(format!(
                        "{}: schedule {} is not run locally ({e}); invoke it by hand",
                        def.logical_id, event.event
                    ));
                    continue;
                }
            };
            say(format!(
                "schedule {} -> {} ({})",
                event.event,
                function.name(),
                event.expression
            ));
            let schedule = Schedule {
                name: format!("{}-{}", options.stack_name, event.event),
                function: function.clone(),
                every,
                input: event.input.clone(),
                v2: event.v2,
                region: region.clone(),
                account_id: ACCOUNT_ID.into(),
            };
            stack.task(tokio::spawn(schedule.run()));
        }
    }

    // Health, then open.
    let health = {
        let functions = functions.clone();
        let postgres = postgres.clone();
        let moto = moto.clone();
        let routes: Vec<String> = routes.iter().map(Route::key).collect();
        let queues: Vec<Value> = sources
            .iter()
            .map(|(source, q)| {
                json!({
                    "name": q.name,
                    "url": q.url,
                    "function": source.function.name(),
                    "deadLetterQueueUrl": q.dead_letter_queue_url,
                })
            })
            .collect();
        let db_address = format!("{}:{}", db.config.host, db.config.port);
        let managed = db.managed;
        let aws_endpoint = match &aws_target {
            AwsTarget::Endpoint(e) => e.clone(),
            AwsTarget::Real => format!("AWS {region}"),
        };
        Arc::new(move || {
            let functions: serde_json::Map<String, Value> = functions
                .iter()
                .map(|f| {
                    let state = match f.pid() {
                        Some(pid) => json!({
                            "state": "running",
                            "pid": pid,
                            "pids": f.pids(),
                            "concurrency": f.concurrency(),
                        }),
                        None => json!({"state": "stopped (next invocation cold-starts)"}),
                    };
                    (f.name().to_string(), state)
                })
                .collect();
            json!({
                "status": "ok",
                "components": {
                    "postgres": {
                        "address": db_address,
                        "managed": managed,
                        "pid": postgres.as_ref().map(|p| p.pid()),
                    },
                    "aws": {
                        "endpoint": aws_endpoint,
                        "managed": moto.is_some(),
                        "pid": moto.as_ref().map(|m| m.pid()),
                    },
                    "functions": functions,
                    "routes": routes,
                    "queues": queues,
                }
            })
        }) as Arc<dyn Fn() -> Value + Send + Sync>
    };
    gateway.open(routes, health);

    let base = format!("http://127.0.0.1:{}", options.api_port);
    say(format!(
        "logs: {}, {}; env file for cargo lambda watch: {}",
        relative(&postgres_log, root),
        relative(&moto_log, root),
        relative(&env_file, root)
    ));
    say(format!("ready on {base}"));
    if verifier.is_some() {
        let state_dir = if options.state_dir == root.join(".local") {
            String::new()
        } else {
            format!(" --state-dir {}", options.state_dir.display())
        };
        println!(
            "  Try:\n    TOKEN=$(scripts/mint-token --customer cust-1001{state_dir})\n    curl -s -X POST {base}/orders -H \"authorization: Bearer $TOKEN\" \\\n      -H 'content-type: application/json' -d '{}'\n    curl -s {base}/orders/<orderId from the answer> -H \"authorization: Bearer $TOKEN\"\n  Ctrl-C stops everything.",
            EXAMPLE_ORDER
        );
    } else {
        println!(
            "  Try:\n    curl -s -X POST {base}/orders -H 'content-type: application/json' \\\n      -d '{}'\n    curl -s {base}/orders/<orderId from the answer>\n  Ctrl-C stops everything.",
            EXAMPLE_ORDER
        );
    }
    Ok(watch)
}

/// The order the start-up message suggests posting.
pub const EXAMPLE_ORDER: &str = r#"{"customer":{"id":"cust-1001","name":"Ada Lovelace","email":"ada@example.com"},"currency":"EUR","lines":[{"sku":"BOOK-ENGINE-01","name":"Notes on the Analytical Engine","quantity":2,"unitPrice":1999}]}"#;
