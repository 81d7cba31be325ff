//! Lambda Managed Instances against Lambda (issue #19): `N` concurrent invocations served by
//! one process that runs them at once (`AWS_LAMBDA_MAX_CONCURRENCY=N`) against `N` processes
//! of one invocation each, the same function, events and machine: latency of each invocation
//! and the resident memory of all the processes together.
//!
//! Both modes run in alternating blocks after a warm-up that starts every environment, so
//! neither pays a cold start and machine noise falls on both.

use crate::error::Result;
use crate::functions::Case;
use crate::stats::{ratio, Summary};
use orders_local::runtime_api::Function;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One way of running the function.
#[derive(Debug, Clone)]
pub struct Mode {
    /// `one process, N at once` or `N processes`.
    pub label: String,
    pub processes: usize,
    /// Latency of each invocation (ms), from the caller's side.
    pub latency: Summary,
    /// The processes' resident memory together (`VmRSS`, KiB) after the last block.
    pub rss_kib: u64,
}

/// The two modes side by side.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub function: String,
    pub concurrency: usize,
    pub managed: Mode,
    pub lambda: Mode,
}

/// Runs `rounds` rounds of `concurrency` invocations at once in each mode, alternating.
pub async fn measure(
    case: &Case,
    region: &str,
    concurrency: usize,
    rounds: usize,
) -> Result<Comparison> {
    let managed = Function::managed(case.spec(region), 1, concurrency);
    let lambda = Function::with_concurrency(case.spec(region), concurrency);
    let result = alternate(case, &managed, &lambda, concurrency, rounds).await;
    managed.stop(Duration::from_millis(500)).await;
    lambda.stop(Duration::from_millis(500)).await;
    let ((managed_ms, managed_rss, managed_pids), (lambda_ms, lambda_rss, lambda_pids)) = result?;
    let mode = |label: String, ms: &[f64], rss, processes| Mode {
        label,
        processes,
        latency: Summary::of(ms).unwrap_or_else(Summary::empty),
        rss_kib: rss,
    };
    Ok(Comparison {
        function: case.name.clone(),
        concurrency,
        managed: mode(
            format!("one process, {concurrency} at once (Managed Instances)"),
            &managed_ms,
            managed_rss,
            managed_pids,
        ),
        lambda: mode(
            format!("{concurrency} processes, one each (Lambda)"),
            &lambda_ms,
            lambda_rss,
            lambda_pids,
        ),
    })
}

type Samples = (Vec<f64>, u64, usize);

async fn alternate(
    case: &Case,
    managed: &Function,
    lambda: &Function,
    concurrency: usize,
    rounds: usize,
) -> Result<(Samples, Samples)> {
    // Warm-up: every environment started, its clients connected.
    for function in [managed, lambda] {
        for _ in 0..2 {
            round(case, function, concurrency, 0).await?;
        }
    }
    let (mut managed_ms, mut lambda_ms) = (Vec::new(), Vec::new());
    let block = 5;
    let mut done = 0;
    let mut n = 1_000;
    while done < rounds {
        let this = block.min(rounds - done);
        for _ in 0..this {
            managed_ms.extend(round(case, managed, concurrency, n).await?);
            n += concurrency as u64;
        }
        for _ in 0..this {
            lambda_ms.extend(round(case, lambda, concurrency, n).await?);
            n += concurrency as u64;
        }
        done += this;
    }
    Ok((
        (managed_ms, rss_of(managed), managed.pids().len()),
        (lambda_ms, rss_of(lambda), lambda.pids().len()),
    ))
}

/// `concurrency` invocations at once; the latency of each in milliseconds.
async fn round(case: &Case, function: &Function, concurrency: usize, n: u64) -> Result<Vec<f64>> {
    let calls = (0..concurrency as u64).map(|i| async move {
        let started = Instant::now();
        case.invoke(function, n + i).await?;
        Ok(started.elapsed().as_secs_f64() * 1000.0)
    });
    futures::future::join_all(calls).await.into_iter().collect()
}

/// The current resident memory of every process of `function` together, in KiB.
fn rss_of(function: &Function) -> u64 {
    function.pids().into_iter().filter_map(vm_rss_kib).sum()
}

/// A process's current resident memory (`VmRSS` of /proc/<pid>/status), in KiB.
fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn f1(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.1}")
    }
}

/// The BENCHMARKS.md section.
pub fn render(c: &Comparison) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Lambda Managed Instances: one process, N at once\n");
    let _ = writeln!(
        out,
        "The {} function (runner wiring: plain TCP and HTTP to the local services), {} invocations \
         at a time, in alternating blocks: one process with `AWS_LAMBDA_MAX_CONCURRENCY={}` \
         (`lambda_runtime::run_concurrent`, as on Managed Instances) against {} processes of one \
         invocation each (as on Lambda). Latency is per invocation from the caller's side \
         (median, p25-p75, p99); memory is the resident set of all the processes together after \
         the run.\n",
        c.function, c.concurrency, c.concurrency, c.concurrency
    );
    let _ = writeln!(
        out,
        "| Mode | Processes | Latency ms median (p25-p75) | p99 ms | RSS together MiB |\n\
         | --- | --- | --- | --- | --- |"
    );
    for m in [&c.lambda, &c.managed] {
        let _ = writeln!(
            out,
            "| {} | {} | {} ({}-{}) | {} | {} |",
            m.label,
            m.processes,
            f1(m.latency.median),
            f1(m.latency.p25),
            f1(m.latency.p75),
            f1(m.latency.p99),
            f1(m.rss_kib as f64 / 1024.0)
        );
    }
    let _ = writeln!(
        out,
        "\nManaged Instances against Lambda: median latency {:.2}x, p99 {:.2}x, memory {:.2}x.\n",
        ratio(c.managed.latency.median, c.lambda.latency.median),
        ratio(c.managed.latency.p99, c.lambda.latency.p99),
        ratio(c.managed.rss_kib as f64, c.lambda.rss_kib as f64)
    );
    out
}
