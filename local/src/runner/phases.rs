//! The runner's start-up, phase by phase: what to run, the HTTP listener and JWT authorizer,
//! PostgreSQL and moto, the schema, the template's resources, the function processes, their
//! event sources and routes, then the health report and the banner.

use super::env::{
    function_env, relative, template_value, write_env_file, write_private, AwsTarget, Db,
};
use super::{Stack, Watch, ACCOUNT_ID, EXAMPLE_ORDER};
use crate::auth::{self, SigningKey, Verifier};
use crate::cli::Options;
use crate::http_api::{self, Gateway, Route};
use crate::iam::Principal;
use crate::moto::LocalMoto;
use crate::output::{say, warn};
use crate::postgres::{ClusterOptions, LocalPostgres};
use crate::provision::{self, Database, Provisioned, Queue};
use crate::runtime_api::{Function, FunctionSpec};
use crate::sqs_source::SqsSource;
use crate::template::{FunctionDef, Physical, Resolver, RouteAuth};
use aws_config::SdkConfig;
use orders::config::{vars, DbConfig, DbPassword};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A function the runner starts, with its binary.
pub(super) type ToRun = (FunctionDef, PathBuf);

/// The functions that something invokes locally (the others are named and skipped).
pub(super) fn functions_to_run(
    options: &Options,
    defs: &[FunctionDef],
) -> Result<Vec<ToRun>, String> {
    let mut to_run = Vec::new();
    for def in defs {
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
    Ok(to_run)
}

/// Binds the HTTP API's port (first, so that a busy port fails fast) and serves it; routes
/// are added once everything runs.
pub(super) async fn open_gateway(options: &Options, stack: &Stack) -> Result<Arc<Gateway>, String> {
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
    Ok(gateway)
}

/// The JWT authorizer: the template's issuer and audience exist only in AWS, so the same
/// checks are made against the local issuer and development key.
pub(super) fn jwt_verifier(
    options: &Options,
    to_run: &[ToRun],
    gateway: &Gateway,
) -> Result<Option<Arc<Verifier>>, String> {
    let jwt_authorizers: std::collections::BTreeSet<&str> = to_run
        .iter()
        .flat_map(|(def, _)| &def.routes)
        .filter_map(|route| match &route.auth {
            RouteAuth::Jwt { authorizer, .. } => Some(authorizer.as_str()),
            _ => None,
        })
        .collect();
    if jwt_authorizers.is_empty() {
        return Ok(None);
    }
    let key = SigningKey::load_or_create(&options.state_dir)
        .map_err(|e| format!("the local JWT signing key: {e}"))?;
    gateway.set_jwks(key.jwks());
    say(format!(
        "JWT authorizer {} emulated: issuer {}, audience {}, key {} (kid {}); public key at \
         http://127.0.0.1:{}{}",
        jwt_authorizers
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        auth::LOCAL_ISSUER,
        auth::LOCAL_AUDIENCE,
        relative(&key.path, &options.root),
        key.kid,
        options.api_port,
        http_api::JWKS_PATH
    ));
    Ok(Some(Arc::new(Verifier::local(&key)?)))
}

/// The local services the runner started (`None`: an existing one is used instead).
pub(super) struct Services {
    pub postgres: Option<Arc<LocalPostgres>>,
    pub moto: Option<Arc<LocalMoto>>,
    pub postgres_log: PathBuf,
    pub moto_log: PathBuf,
}

/// Starts moto, unless `AWS_ENDPOINT_URL` names an emulator to use or real AWS is asked for.
async fn start_moto(options: &Options, log: &Path) -> Result<Option<Arc<LocalMoto>>, String> {
    if super::env::env_var("AWS_ENDPOINT_URL").is_some() || options.real_aws {
        return Ok(None);
    }
    LocalMoto::start(&options.root, options.moto_port, log)
        .await
        .map(|m| Some(Arc::new(m)))
}

/// PostgreSQL and moto, side by side.
pub(super) async fn start_services(
    options: &Options,
    stack: &Stack,
    defs: &[FunctionDef],
    resolver: &Resolver<'_>,
) -> Result<Services, String> {
    let external_db = super::env::env_var(orders::config::vars::DB_HOST).is_some();
    let db_user = template_value(defs, resolver, orders::config::vars::DB_USER)
        .unwrap_or_else(|| "orders".into());
    let db_name = template_value(defs, resolver, orders::config::vars::DB_NAME)
        .unwrap_or_else(|| "orders".into());
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
    let (postgres, moto) = tokio::join!(start_postgres, start_moto(options, &moto_log));
    // Register what did start before reporting what did not.
    if let Ok(Some(pg)) = &postgres {
        *stack.postgres.lock().expect("postgres") = Some(pg.clone());
    }
    if let Ok(Some(m)) = &moto {
        *stack.moto.lock().expect("moto") = Some(m.clone());
    }
    Ok(Services {
        postgres: postgres?,
        moto: moto?,
        postgres_log,
        moto_log,
    })
}

/// The database the functions use: the local cluster, or the one `DB_HOST` names.
pub(super) fn database(
    services: &Services,
    root: &Path,
    stack: &Stack,
    watch: &Watch,
) -> Result<Db, String> {
    if let Some(pg) = &services.postgres {
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
        return Ok(Db {
            config: pg.db_config(),
            password: pg.password.clone(),
            managed: true,
        });
    }
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
    Ok(Db {
        config,
        password,
        managed: false,
    })
}

/// Where the AWS calls go: real AWS, the moto the runner started, or `AWS_ENDPOINT_URL`.
pub(super) fn aws_target(
    options: &Options,
    services: &Services,
    region: &str,
    stack: &Stack,
    watch: &Watch,
) -> AwsTarget {
    if options.real_aws {
        say(format!(
            "AWS services: real AWS in {region} with your credentials (--real-aws); resource \
             variables come from the environment"
        ));
        return AwsTarget::Real;
    }
    if let Some(m) = &services.moto {
        say(format!(
            "moto on {} (DynamoDB, S3, SNS, SQS, Secrets Manager; in memory)",
            m.endpoint()
        ));
        watch.service(stack, "moto", m.exit_watch());
        return AwsTarget::Endpoint(m.endpoint());
    }
    let endpoint = super::env::env_var("AWS_ENDPOINT_URL")
        .expect("moto is started unless AWS_ENDPOINT_URL is set");
    say(format!(
        "AWS services: using {endpoint} from AWS_ENDPOINT_URL"
    ));
    AwsTarget::Endpoint(endpoint)
}

/// Applies the migrations; the pool is kept for the re-projection.
pub(super) async fn migrate(db: &Db, aws: &SdkConfig) -> Result<deadpool_postgres::Pool, String> {
    let pool = orders::postgres::connect(&db.config, aws)
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
    Ok(pool)
}

/// Gives the things that are not created (database endpoints, functions, the HTTP API) their
/// local names, then creates the template's resources in moto.
pub(super) async fn provision_resources(
    options: &Options,
    defs: &[FunctionDef],
    resolver: &mut Resolver<'_>,
    db: &Db,
    aws_target: &AwsTarget,
    aws: &SdkConfig,
) -> Result<Provisioned, String> {
    let database = Database {
        host: &db.config.host,
        port: db.config.port,
        user: &db.config.user,
        password: &db.password,
    };
    provision::describe_database(resolver, &database);
    provision::describe_functions(resolver, defs);
    let template = resolver.template;
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
            let database_secrets = provision::database_secrets(template, defs);
            // Other generated secrets keep their values from one run to the next.
            let saved = options.state_dir.join("secrets.json");
            let mut generated: std::collections::BTreeMap<String, String> =
                std::fs::read_to_string(&saved)
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
            let provisioned = provision::provision(
                aws,
                resolver,
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
    Ok(provisioned)
}

/// What the function processes need besides their definitions.
pub(super) struct FunctionContext<'a> {
    pub resolver: &'a Resolver<'a>,
    pub db: &'a Db,
    pub aws_target: &'a AwsTarget,
    pub provisioned: &'a Provisioned,
    pub region: &'a str,
    /// Each function's role session (by binary), under IAM enforcement.
    pub sessions: &'a BTreeMap<String, Principal>,
    /// The runner's own principal, under IAM enforcement.
    pub admin: Option<&'a Principal>,
}

/// Starts every function's first execution environment; writes the env file for
/// `cargo lambda watch`.
pub(super) async fn start_functions(
    options: &Options,
    stack: &Stack,
    to_run: &[ToRun],
    context: &FunctionContext<'_>,
) -> Result<(Vec<Function>, PathBuf), String> {
    let mut specs = Vec::new();
    let mut environments = Vec::new();
    let mut overridden = std::collections::BTreeSet::new();
    let caller_credentials = match context.aws_target {
        AwsTarget::Real => Some(super::env::caller_credentials(context.region).await?),
        _ => None,
    };
    for (def, program) in to_run {
        environments.push(super::triggers::environments(options, def));
        let (mut env, from_caller) = function_env(
            def,
            context.resolver,
            context.db,
            context.aws_target,
            &context.provisioned.secret_values,
            context.sessions.get(&def.binary),
        );
        if let Some(credentials) = &caller_credentials {
            // Replaces whatever the caller's variables held (a session token included).
            env.retain(|(name, _)| !super::env::CREDENTIAL_VARIABLES.contains(&name.as_str()));
            env.extend(credentials.iter().cloned());
        }
        let per_environment = per_environment(options, def);
        if per_environment > 1 && !from_caller.iter().any(|v| v == vars::DB_POOL_SIZE) {
            // As scripts/managed-template: the pool defaults to the concurrency.
            env.retain(|(name, _)| name != vars::DB_POOL_SIZE);
        }
        overridden.extend(from_caller);
        specs.push((
            per_environment,
            FunctionSpec {
                name: def.binary.clone(),
                function_name: format!("{}-{}", options.stack_name, def.binary),
                program: program.clone(),
                env,
                timeout: def.timeout,
                init_timeout: Duration::from_secs(30),
                memory_mb: def.memory_mb,
                region: context.region.to_string(),
                account_id: ACCOUNT_ID.into(),
                show_output: true,
                report: false,
            },
        ));
    }
    if !overridden.is_empty() {
        say(format!(
            "from your environment: {}",
            overridden.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let env_file = options.state_dir.join("cargo-lambda.env");
    let (per_environment, specs): (Vec<usize>, Vec<FunctionSpec>) = specs.into_iter().unzip();
    write_env_file(&env_file, &specs, context.region, context.admin)?;
    let mut functions = Vec::new();
    for ((spec, per_environment), environments) in
        specs.into_iter().zip(per_environment).zip(environments)
    {
        let function = Function::managed(spec, environments, per_environment);
        stack
            .functions
            .lock()
            .expect("functions")
            .push(function.clone());
        let init = function
            .start()
            .await
            .map_err(|e| format!("function {}: {e}", function.name()))?;
        let mode = match function.per_environment() {
            1 => "Lambda".to_string(),
            n => format!("Managed Instances, {n} invocations per process"),
        };
        say(format!(
            "function {} running ({}, pid {}, init {} ms, {mode})",
            function.name(),
            relative(&function.spec().program, &options.root),
            function.pid().unwrap_or_default(),
            init.unwrap_or_default().as_millis()
        ));
        functions.push(function);
    }
    Ok((functions, env_file))
}

/// The started function for a definition.
pub(super) fn function_of(functions: &[Function], def: &FunctionDef) -> Function {
    functions
        .iter()
        .find(|f| f.name() == def.binary)
        .cloned()
        .expect("every function to run was started")
}

/// `GET /health`: the state of every component.
pub(super) fn health_report(
    services: &Services,
    db: &Db,
    aws_target: &AwsTarget,
    region: &str,
    functions: &[Function],
    routes: &[Route],
    sources: &[(SqsSource, Queue)],
) -> http_api::HealthReport {
    let functions = functions.to_vec();
    let postgres = services.postgres.clone();
    let moto = services.moto.clone();
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
    let aws_endpoint = match aws_target {
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
                        "perEnvironment": f.per_environment(),
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
    })
}

/// Invocations one process of `def` runs at once: its Managed Instances concurrency under
/// `--managed-instances`, else 1 (Lambda).
fn per_environment(options: &Options, def: &FunctionDef) -> usize {
    match (options.managed_instances, def.managed_concurrency) {
        (true, Some(n)) => n.max(1),
        _ => 1,
    }
}

/// The lines that say where the logs are and how to try the API.
pub(super) fn banner(options: &Options, services: &Services, env_file: &Path, jwt: bool) {
    let root = &options.root;
    let base = format!("http://127.0.0.1:{}", options.api_port);
    say(format!(
        "logs: {}, {}; env file for cargo lambda watch: {}",
        relative(&services.postgres_log, root),
        relative(&services.moto_log, root),
        relative(env_file, root)
    ));
    say(format!("ready on {base}"));
    if jwt {
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
}
