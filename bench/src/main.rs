//! `orders-bench`: runs the benchmark suite and writes BENCHMARKS.md. Started by
//! `scripts/bench`, which builds the release binaries first (see BENCHMARKS.md for the method).
//!
//! Usage: orders-bench [--quick] [--only cold-start|managed] [--out FILE] [--bin-dir DIR] [--root DIR]
//!
//! `--only cold-start` measures the cold starts alone (with TLS, without, and at a 128 MB CPU
//! share), `--only managed` the Lambda Managed Instances comparison alone; either prints its
//! section (or writes it to `--out`) and leaves BENCHMARKS.md as it is.

use orders_bench::error::{BenchError, Result};
use orders_bench::functions::{self, Wiring};
use orders_bench::http::Api;
use orders_bench::report::{Machine, Results, Settings};
use orders_bench::system::System;
use orders_bench::{
    cold_start, cpu_share, events, lag, lag_baseline, latency, managed, size, throughput,
};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Options {
    quick: bool,
    only_managed: bool,
    cold_only: bool,
    /// Where the report goes; a partial run (`--only`) prints it unless `--out` is given.
    out: Option<PathBuf>,
    bin_dir: PathBuf,
    root: PathBuf,
}

fn parse_args() -> Result<Options> {
    let root = std::env::current_dir()?;
    let mut options = Options {
        quick: false,
        only_managed: false,
        cold_only: false,
        out: None,
        bin_dir: std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("release"),
        root,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| BenchError::msg(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--only" => match value()?.to_str() {
                Some("cold-start") => options.cold_only = true,
                Some("managed") => options.only_managed = true,
                other => {
                    return Err(BenchError::msg(format!(
                        "--only {other:?}: cold-start or managed"
                    )))
                }
            },
            "--out" => options.out = Some(value()?),
            "--bin-dir" => options.bin_dir = value()?,
            "--root" => options.root = value()?,
            "-h" | "--help" => {
                println!(
                    "orders-bench [--quick] [--only cold-start] [--out FILE] [--bin-dir DIR] [--root DIR]"
                );
                std::process::exit(0);
            }
            other => return Err(BenchError::msg(format!("unknown option {other}"))),
        }
    }
    // Function processes run in their binary's directory: paths must not be relative.
    for path in [&mut options.bin_dir, &mut options.root] {
        *path = path
            .canonicalize()
            .map_err(|e| BenchError::msg(format!("{}: {e}", path.display())))?;
    }
    Ok(options)
}

fn say(text: &str) {
    eprintln!("orders-bench: {text}");
}

fn main() -> std::process::ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            say(&e.to_string());
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            say(&format!("cannot start the async runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("failed: {e}"));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<()> {
    let settings = if options.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let started = Instant::now();
    if options.only_managed {
        return only_managed(&options, &settings).await;
    }
    let machine = Machine::describe(&options.root);
    if options.cold_only {
        say("starting the local runner (PostgreSQL, moto, functions)");
        let mut system = System::start(&options.root, &options.bin_dir).await?;
        let result = measure_cold(&system, &settings).await;
        system.stop().await;
        let (cold, cold_plain, throttled, _) = result?;
        let text = orders_bench::report::render_cold_start(
            &settings,
            &machine,
            &cold,
            &cold_plain,
            &throttled,
            started.elapsed(),
        );
        match &options.out {
            Some(out) => {
                std::fs::write(out, text)?;
                say(&format!("wrote {}", out.display()));
            }
            None => print!("{text}"),
        }
        return Ok(());
    }

    say("binary sizes");
    let sizes = size::measure(
        &options.root,
        &options.bin_dir,
        &std::env::temp_dir(),
        &[
            ("hello", "bench-hello"),
            ("command", "command"),
            ("query", "query"),
            ("updater", "updater"),
            ("relay", "relay"),
            ("migrate", "migrate"),
        ],
    )?;

    say("starting the local runner (PostgreSQL, moto, functions)");
    let mut system = System::start(&options.root, &options.bin_dir).await?;
    let result = measure(&system, &settings).await;
    system.stop().await;
    let (cold, cold_plain, throttled, get, post, updater, mut lags, lag_baselines, managed) =
        result?;

    // The other batching window, on a runner started from a copy of the template.
    let text = std::fs::read_to_string(options.root.join("template.yaml"))?;
    let window = lag_baseline::window_of(&text).unwrap_or(0);
    let other = if window == 0 { 1 } else { 0 };
    if let Some(changed) = lag_baseline::with_window(&text, other) {
        say(&format!(
            "projection lag with MaximumBatchingWindowInSeconds {other}"
        ));
        let copy = options.root.join(".bench-template-window.yaml");
        std::fs::write(&copy, changed)?;
        let started = System::start_with(&options.root, &options.bin_dir, Some(&copy)).await;
        let _ = std::fs::remove_file(&copy);
        let mut other_system = started?;
        let result = steady_lag(&other_system, &settings, other).await;
        other_system.stop().await;
        lags.push(result?);
    }

    let results = Results {
        settings,
        machine,
        sizes,
        cold,
        cold_plain,
        throttled,
        get,
        post,
        updater,
        lags,
        lag_baselines,
        managed: Some(managed),
        elapsed: started.elapsed(),
    };
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| options.root.join("BENCHMARKS.md"));
    std::fs::write(&out, orders_bench::report::render(&results))?;
    say(&format!(
        "wrote {} in {:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The Managed Instances comparison alone, printed (the query function, runner wiring).
async fn only_managed(options: &Options, settings: &Settings) -> Result<()> {
    let mut system = System::start(&options.root, &options.bin_dir).await?;
    let result = async {
        let api = api_of(&system)?;
        let order_id = api.create_order(events::order_body(u64::MAX)).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while api.get(&format!("/orders/{order_id}")).await?.status != 200 {
            if Instant::now() > deadline {
                return Err(BenchError::msg("the order never became readable"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sink = orders_bench::sink::Sink::start().await?;
        let counter = Arc::new(AtomicU64::new(0));
        let local = functions::suite(&system, Wiring::Local, &order_id, &sink.url(), counter)?;
        let query = local
            .functions
            .iter()
            .find(|c| c.name == "query")
            .ok_or_else(|| BenchError::msg("no query case"))?;
        let rounds = (settings.get_count / 10).max(5);
        managed::measure(query, &system.region(), 8, rounds).await
    }
    .await;
    system.stop().await;
    print!("{}", managed::render(&result?));
    Ok(())
}

type Measured = (
    Vec<cold_start::ColdStart>,
    Vec<cold_start::ColdStart>,
    cpu_share::Outcome,
    latency::Comparison,
    latency::Comparison,
    throughput::Throughput,
    Vec<lag::Lag>,
    Vec<lag_baseline::Baseline>,
    managed::Comparison,
);

/// What the cold-start sections measure, and what the later sections reuse.
struct ColdContext {
    api: Api,
    counter: Arc<AtomicU64>,
    order_id: String,
    local: functions::Suite,
    _sink: orders_bench::sink::Sink,
}

type ColdMeasured = (
    Vec<cold_start::ColdStart>,
    Vec<cold_start::ColdStart>,
    cpu_share::Outcome,
    ColdContext,
);

async fn measure_cold(system: &System, settings: &Settings) -> Result<ColdMeasured> {
    let api = api_of(system)?;
    let counter = Arc::new(AtomicU64::new(0));

    // One order in the read model for the reads.
    let order_id = api.create_order(events::order_body(u64::MAX)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get(&format!("/orders/{order_id}")).await?.status != 200 {
        if Instant::now() > deadline {
            return Err(BenchError::msg("the first order never became readable"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    say("cold starts (TLS to PostgreSQL and to AWS, as deployed)");
    let sink = orders_bench::sink::Sink::start().await?;
    let suite = functions::suite(
        system,
        Wiring::Deployed,
        &order_id,
        &sink.url(),
        counter.clone(),
    )?;
    let mut cases = vec![suite.hello.clone()];
    cases.extend(suite.functions.iter().cloned());
    if let Some(query) = suite.functions.iter().find(|c| c.name == "query") {
        cases.push(functions::with_one_root(query, system)?);
    }
    let cold = cold_start::measure(
        &cases,
        &system.region(),
        settings.cold_runs,
        settings.warm_invocations,
        say,
    )
    .await?;

    // The runner's wiring (plain TCP and HTTP): cold starts without any TLS, to show what the
    // handshakes and crypto initialisation cost; then the direct invocations and the updater.
    let local = functions::suite(
        system,
        Wiring::Local,
        &order_id,
        &sink.url(),
        counter.clone(),
    )?;
    say("cold starts without TLS (the runner's wiring)");
    let plain = cold_start::measure(
        &local.functions,
        &system.region(),
        settings.cold_runs,
        0,
        say,
    )
    .await?;

    let throttled = match cpu_share::CpuGroup::create() {
        Err(why) => {
            say(&format!("cold starts at a 128 MB CPU share skipped: {why}"));
            Err(why)
        }
        Ok(group) => {
            let pick = |suite: &functions::Suite, wiring: &'static str| {
                suite
                    .functions
                    .iter()
                    .filter(|c| c.name == "query" || c.name == "command")
                    .map(|c| (c.clone(), wiring))
                    .collect::<Vec<_>>()
            };
            let mut cases = vec![(suite.hello.clone(), "plain")];
            cases.extend(pick(&suite, "TLS"));
            cases.extend(pick(&local, "plain"));
            let scripts = system.tls.bundle_dir.with_file_name("cpu-share");
            Ok(cpu_share::measure(
                &group,
                &cases,
                &system.region(),
                settings.throttled_runs,
                &scripts,
                say,
            )
            .await?)
        }
    };
    Ok((
        cold,
        plain,
        throttled,
        ColdContext {
            api,
            counter,
            order_id,
            local,
            _sink: sink,
        },
    ))
}

async fn measure(system: &System, settings: &Settings) -> Result<Measured> {
    let (cold, plain, throttled, context) = measure_cold(system, settings).await?;
    let ColdContext {
        api,
        counter,
        order_id,
        local,
        _sink,
    } = context;
    let aws = system.sdk_config().await;
    let table = system.required("ORDERS_TABLE")?;
    let bucket = system.required("RECEIPTS_BUCKET")?;
    let case = |name: &str| {
        local
            .functions
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| BenchError::msg(format!("no {name} case")))
    };
    let region = system.region();

    say("warm latency: GET /orders/{id} vs GetItem");
    let dynamo = aws_sdk_dynamodb::Client::new(&aws);
    let query = case("query")?;
    let query_fn = orders_local::runtime_api::Function::new(query.spec(&region));
    let get = latency::get_order(
        &api,
        (query, &query_fn),
        &dynamo,
        &table,
        &order_id,
        settings.get_count,
    )
    .await;
    query_fn.stop(Duration::from_millis(500)).await;
    let get = get?;

    say("Managed Instances: one query process, 8 at once, vs 8 processes");
    let managed = managed::measure(query, &region, 8, (settings.get_count / 10).max(5)).await?;

    say("warm latency: POST /orders vs transaction + publish");
    let raw = latency::RawCommand {
        pg: tokio::sync::Mutex::new(system.pg_client().await?),
        sns: aws_sdk_sns::Client::new(&aws),
        topic_arn: system.required("ORDER_EVENTS_TOPIC_ARN")?,
    };
    let command = case("command")?;
    let command_fn = orders_local::runtime_api::Function::new(command.spec(&region));
    let post = latency::post_order(
        &api,
        (command, &command_fn),
        &raw,
        counter.clone(),
        settings.post_count,
    )
    .await;
    command_fn.stop(Duration::from_millis(500)).await;
    let post = post?;

    say("updater throughput vs PutItem + PutObject");
    let updater_case = case("updater")?;
    let raw_writes = throughput::RawWrites {
        dynamo: dynamo.clone(),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(true)
                .build(),
        ),
        table: table.clone(),
        bucket,
    };
    let updater = throughput::measure(
        updater_case,
        &region,
        &raw_writes,
        "arn:aws:sqs:us-east-1:123456789012:orders-bench",
        settings.updater_batches,
        counter.fetch_add(1_000_000, std::sync::atomic::Ordering::Relaxed),
    )
    .await?;

    let (lags, baselines) = lag_phases(system, &api, settings, &aws, counter).await?;
    Ok((
        cold, plain, throttled, get, post, updater, lags, baselines, managed,
    ))
}

/// The API client of a runner (a staff token may place and read any order).
fn api_of(system: &System) -> Result<Api> {
    Ok(Api::new(system.api_port).with_header(
        "authorization",
        &format!("Bearer {}", system.staff_token()?),
    ))
}

/// One load through our path, with what the event source mapping did for it.
async fn one_lag(
    system: &System,
    api: &Api,
    load: lag::Load,
    duration: Duration,
    window: u64,
    counter: Arc<AtomicU64>,
) -> Result<lag::Lag> {
    say(&format!(
        "projection lag: {load:?} for {}s (batching window {window} s)",
        duration.as_secs()
    ));
    // Let the previous phase drain first.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = system.log_path();
    let mark = lag_baseline::log_mark(&log);
    let mut lag = lag::measure(api, load, duration, 10, counter).await?;
    // The last batch lines follow the deletes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lag.cost = Some(lag_baseline::mapping_cost(&log, mark));
    lag.window_s = window;
    Ok(lag)
}

/// Steady lag on a runner of its own (another batching window).
async fn steady_lag(system: &System, settings: &Settings, window: u64) -> Result<lag::Lag> {
    let api = api_of(system)?;
    let counter = Arc::new(AtomicU64::new(10_000_000));
    let load = lag::Load::Rate(settings.lag_rate);
    one_lag(system, &api, load, settings.lag_duration, window, counter).await
}

/// Steady lag and the drain after a saturating burst, each beside the raw SNS -> SQS ->
/// receive baseline measured right after it.
async fn lag_phases(
    system: &System,
    api: &Api,
    settings: &Settings,
    aws: &aws_config::SdkConfig,
    counter: Arc<AtomicU64>,
) -> Result<(Vec<lag::Lag>, Vec<lag_baseline::Baseline>)> {
    let text = std::fs::read_to_string(system.root.join("template.yaml"))?;
    let window = lag_baseline::window_of(&text).unwrap_or(0);
    let raw = lag_baseline::RawPath::create(aws).await?;
    let steady = one_lag(
        system,
        api,
        lag::Load::Rate(settings.lag_rate),
        settings.lag_duration,
        window,
        counter.clone(),
    )
    .await?;
    say("baseline: SNS -> SQS -> ReceiveMessage at the same rate");
    let steady_raw = raw
        .measure(settings.lag_rate, settings.lag_duration, 20_000_000)
        .await?;
    let burst = one_lag(
        system,
        api,
        lag::Load::Saturation {
            clients: settings.saturation_clients,
        },
        settings.saturation_duration,
        window,
        counter,
    )
    .await?;
    say("baseline: SNS -> SQS -> ReceiveMessage at the burst's rate");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let burst_raw = raw
        .measure(burst.achieved, settings.saturation_duration, 30_000_000)
        .await?;
    Ok((vec![steady, burst], vec![steady_raw, burst_raw]))
}
