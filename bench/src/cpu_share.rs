//! Cold starts at a 128 MB function's CPU share. Lambda gives a function CPU in proportion to
//! its memory (a full vCPU at 1,769 MB), so a 128 MB function gets about 7 % of one. Here the
//! function process runs under a cgroup v1 CPU quota of 7 ms per 100 ms period, in two
//! regimes: the whole cold start throttled (init and first invocation), and init at full CPU
//! with only the invocation throttled (what Lambda has been observed, not documented, to do
//! for init). Where no writable cgroup v1 `cpu` controller is mounted, the section is skipped
//! with a note saying why.

use crate::error::{BenchError, Result};
use crate::functions::Case;
use crate::stats::Summary;
use orders_local::runtime_api::Function;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The quota: 7,000 µs of CPU per 100,000 µs period, 7 % of one core (128 / 1,769).
pub const QUOTA_US: u64 = 7_000;
pub const PERIOD_US: u64 = 100_000;

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";

/// A cgroup v1 `cpu` group with the quota, removed when dropped.
#[derive(Debug)]
pub struct CpuGroup {
    dir: PathBuf,
}

impl CpuGroup {
    /// Creates the group, or says why it cannot (no cgroup v1 `cpu` controller, read-only).
    pub fn create() -> std::result::Result<Self, String> {
        let root = Path::new(CPU_ROOT);
        if !root.join("cgroup.procs").exists() {
            return Err(format!("no cgroup v1 cpu controller at {CPU_ROOT}"));
        }
        let dir = root.join(format!("orders-bench-{}", std::process::id()));
        let set = |file: &str, value: u64| {
            std::fs::write(dir.join(file), value.to_string())
                .map_err(|e| format!("{}: {e}", dir.join(file).display()))
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let group = Self { dir: dir.clone() };
        set("cpu.cfs_period_us", PERIOD_US)?;
        set("cpu.cfs_quota_us", QUOTA_US)?;
        Ok(group)
    }

    /// Moves a running process into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .map_err(|e| BenchError::msg(format!("moving {pid} into the CPU group: {e}")))
    }

    /// `case` started through a script that joins the group, then executes the function in
    /// its own directory (the same process: the pid stays the function's).
    pub fn throttled(&self, case: &Case, scripts: &Path) -> Result<Case> {
        std::fs::create_dir_all(scripts)?;
        let script = scripts.join(format!("{}-throttled", case.name.replace([' ', ','], "-")));
        let program = case.program.display().to_string();
        let dir = case
            .program
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "/".into());
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho $$ > '{}' || exit 70\ncd '{dir}' && exec '{program}'\n",
                self.dir.join("cgroup.procs").display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        Ok(Case {
            program: script,
            ..case.clone()
        })
    }
}

impl Drop for CpuGroup {
    fn drop(&mut self) {
        // Fails while a process is still inside; every function is stopped by now.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// How the CPU quota applies to a cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// Init and the first invocation under the quota.
    Throttled,
    /// Init at full CPU, the first invocation under the quota.
    FullCpuInit,
}

/// Cold starts of one function, wiring and regime, under the quota.
#[derive(Debug, Clone)]
pub struct Throttled {
    pub name: String,
    /// `TLS` (as deployed) or `plain` (the runner's wiring).
    pub wiring: &'static str,
    pub regime: Regime,
    pub init: Summary,
    pub first_invoke: Summary,
    pub total: Summary,
}

/// The section's outcome: figures, or why they could not be taken.
pub type Outcome = std::result::Result<Vec<Throttled>, String>;

async fn one(
    case: &Case,
    regime: Regime,
    group: &CpuGroup,
    region: &str,
    n: u64,
) -> Result<(Duration, Duration, Duration)> {
    let function = Function::new(case.spec(region));
    let started = Instant::now();
    let result = async {
        let init = function
            .start()
            .await
            .map_err(|e| BenchError::msg(format!("{}: {e}", case.name)))?
            .unwrap_or_default();
        if regime == Regime::FullCpuInit {
            let pid = function
                .pid()
                .ok_or_else(|| BenchError::msg(format!("{}: no process", case.name)))?;
            group.add(pid)?;
        }
        let invoked = case.invoke(&function, n).await?;
        Ok((init, invoked.duration, started.elapsed()))
    }
    .await;
    function.stop(Duration::from_millis(500)).await;
    result
}

/// Measures `runs` cold starts of each case (with its wiring label) in both regimes,
/// interleaved. `Throttled` cases start through [`CpuGroup::throttled`] scripts in `scripts`.
pub async fn measure(
    group: &CpuGroup,
    cases: &[(Case, &'static str)],
    region: &str,
    runs: usize,
    scripts: &Path,
    progress: impl Fn(&str),
) -> Result<Vec<Throttled>> {
    let regimes = [Regime::Throttled, Regime::FullCpuInit];
    let mut plan = Vec::new();
    for (case, wiring) in cases {
        for regime in regimes {
            let case = match regime {
                Regime::Throttled => group.throttled(case, scripts)?,
                Regime::FullCpuInit => case.clone(),
            };
            plan.push((case, *wiring, regime, Vec::new()));
        }
    }
    let mut n = 5_000_000u64;
    for run in 0..runs {
        progress(&format!(
            "cold starts at a {} % CPU share: round {}/{runs}",
            100 * QUOTA_US / PERIOD_US,
            run + 1
        ));
        for (case, _, regime, samples) in plan.iter_mut() {
            samples.push(one(case, *regime, group, region, n).await?);
            n += 1;
        }
    }
    let ms = |v: Vec<Duration>| Summary::of_durations(&v).unwrap_or_else(Summary::empty);
    Ok(plan
        .into_iter()
        .map(|(case, wiring, regime, samples)| Throttled {
            name: case.name,
            wiring,
            regime,
            init: ms(samples.iter().map(|s| s.0).collect()),
            first_invoke: ms(samples.iter().map(|s| s.1).collect()),
            total: ms(samples.iter().map(|s| s.2).collect()),
        })
        .collect())
}

fn find<'a>(
    rows: &'a [Throttled],
    name: &str,
    wiring: &str,
    regime: Regime,
) -> Option<&'a Throttled> {
    rows.iter()
        .find(|t| t.name == name && t.wiring == wiring && t.regime == regime)
}

/// The section of BENCHMARKS.md, with the warm-up decision drawn from its figures.
pub fn render(out: &mut String, outcome: &Outcome, runs: usize) {
    let _ = writeln!(out, "### At a 128 MB function's CPU share\n");
    let rows = match outcome {
        Ok(rows) => rows,
        Err(why) => {
            let _ = writeln!(out, "Not measured in this run: {why}.\n");
            return;
        }
    };
    let _ = writeln!(
        out,
        "{runs} cold starts per row, interleaved, with the function process under a cgroup v1 \
         CPU quota of {} µs per {} µs period (7 % of one core, as 128 MB gets of Lambda's \
         1,769 MB-per-vCPU). *Throttled*: the process joins the group before it executes the \
         function (init and first invocation throttled; measured from the spawn of the small \
         script that joins). *Full-CPU init*: the process starts unthrottled and joins after \
         init, before its first event. Same first events as above; TLS rows wired as deployed, \
         plain rows as the runner wires its functions.\n",
        QUOTA_US, PERIOD_US
    );
    let _ = writeln!(
        out,
        "| Function | Wiring | Init, throttled (ms) | vs hello | First invocation, throttled (ms) | Total, throttled (ms) | Init, full CPU (ms) | First invocation after a full-CPU init (ms) |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let hello = find(rows, "hello", "plain", Regime::Throttled)
        .or_else(|| find(rows, "hello", "TLS", Regime::Throttled));
    for t in rows.iter().filter(|t| t.regime == Regime::Throttled) {
        let full = find(rows, &t.name, t.wiring, Regime::FullCpuInit);
        let vs = hello
            .map(|h| format!("{:.2}x", t.init.median / h.init.median))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            t.name,
            t.wiring,
            spread(&t.init),
            vs,
            spread(&t.first_invoke),
            spread(&t.total),
            full.map(|f| spread(&f.init)).unwrap_or_else(|| "-".into()),
            full.map(|f| spread(&f.first_invoke))
                .unwrap_or_else(|| "-".into()),
        );
    }
    let _ = writeln!(out);
    decision(out, rows);
}

fn spread(s: &Summary) -> String {
    format!("{:.1} ({:.1}-{:.1})", s.median, s.p25, s.p75)
}

/// Whether opening the first connection during init would pay off, from this run's figures.
fn decision(out: &mut String, rows: &[Throttled]) {
    let first = |name: &str, wiring: &str, regime: Regime| {
        find(rows, name, wiring, regime).map(|t| t.first_invoke.median)
    };
    let mut parts = Vec::new();
    for name in ["query", "command"] {
        let (Some(tls), Some(plain), Some(tls_full)) = (
            first(name, "TLS", Regime::Throttled),
            first(name, "plain", Regime::Throttled),
            first(name, "TLS", Regime::FullCpuInit),
        ) else {
            continue;
        };
        parts.push(format!(
            "{name}: first invocation {tls:.0} ms with TLS against {plain:.0} ms plain \
             (TLS {:.0} ms, {:.0} %), {tls_full:.0} ms after a full-CPU init",
            tls - plain,
            100.0 * (tls - plain) / tls
        ));
    }
    if parts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "**Warm-up connection during init: not done.** Throttled, {}. The connection set-up \
         (TCP, TLS handshake, certificate check, and for the command the database's token and \
         start-up) is CPU work at this share, and a warm-up during init would do the same work \
         at the same share: it moves milliseconds from the first invocation into init without \
         shortening the cold start a caller waits for (init plus first invocation), and it \
         bills them as init, which Lambda bills for OS-only runtimes (and, since August 2025, \
         for every on-demand function). It would pay only if init ran with more CPU than the \
         invocation, which Lambda does not document (it has been observed for on-demand init; \
         it does not hold for provisioned concurrency or Managed Instances, where init is \
         billed and happens before any request, and a connection opened then may be stale \
         when the first event comes). Each function would also open connections its first \
         event may not use (the query's S3 client; a command that fails validation).\n",
        parts.join("; ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(median: f64) -> Summary {
        Summary::of(&[median]).unwrap_or_else(Summary::empty)
    }

    fn row(name: &str, wiring: &'static str, regime: Regime, init: f64, first: f64) -> Throttled {
        Throttled {
            name: name.into(),
            wiring,
            regime,
            init: summary(init),
            first_invoke: summary(first),
            total: summary(init + first),
        }
    }

    #[test]
    fn a_skipped_section_says_why() {
        let mut out = String::new();
        render(&mut out, &Err("no cgroup v1 cpu controller".into()), 5);
        assert!(out.contains("Not measured in this run: no cgroup v1 cpu controller."));
    }

    #[test]
    fn the_decision_quotes_the_tls_part_of_the_first_invocation() {
        let rows = vec![
            row("hello", "plain", Regime::Throttled, 40.0, 2.0),
            row("query", "TLS", Regime::Throttled, 90.0, 200.0),
            row("query", "TLS", Regime::FullCpuInit, 8.0, 190.0),
            row("query", "plain", Regime::Throttled, 85.0, 50.0),
        ];
        let mut out = String::new();
        render(&mut out, &Ok(rows), 5);
        assert!(
            out.contains("| query | TLS | 90.0 (90.0-90.0) | 2.25x |"),
            "{out}"
        );
        assert!(
            out.contains("query: first invocation 200 ms with TLS against 50 ms plain (TLS 150 ms, 75 %), 190 ms after a full-CPU init"),
            "{out}"
        );
    }
}
