//! Cold starts and memory: each function (and the hello-world baseline) started as a fresh
//! process behind the Lambda Runtime API emulator, timed from spawn to its first response
//! (init plus the first invocation's real work), many times, interleaved across functions so
//! that a drift of the machine affects all alike. Then one process per function serves many
//! warm invocations, and its peak RSS is read again.

use crate::error::Result;
use crate::functions::Case;
use crate::stats::Summary;
use orders_local::runtime_api::Function;
use std::time::{Duration, Instant};

/// The pause before each timed start.
pub const SETTLE: Duration = Duration::from_millis(150);

/// Figures of one function.
#[derive(Debug, Clone)]
pub struct ColdStart {
    pub name: String,
    /// Spawn to the first response (ms).
    pub total: Summary,
    /// Spawn to the first `next` request: Lambda's "Init Duration" (ms).
    pub init: Summary,
    /// The first invocation alone (ms).
    pub first_invoke: Summary,
    /// Peak RSS after the first invocation (KiB).
    pub rss_first: Summary,
    /// Warm invocation durations, through the Runtime API (ms).
    pub warm: Option<Summary>,
    /// How many warm invocations were made before `rss_after`.
    pub warm_count: usize,
    /// Peak RSS after `warm_count` more invocations (KiB).
    pub rss_after: Option<u64>,
}

/// A process's peak RSS (`VmHWM`) and current RSS (`VmRSS`) in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

struct Sample {
    total: Duration,
    init: Duration,
    first: Duration,
    rss: Option<u64>,
}

async fn one_cold_start(case: &Case, region: &str, n: u64) -> Result<Sample> {
    let function = Function::new(case.spec(region));
    let started = Instant::now();
    let invoked = case.invoke(&function, n).await;
    let total = started.elapsed();
    let rss = function.pid().and_then(rss_kib).map(|(hwm, _)| hwm);
    function.stop(Duration::from_millis(500)).await;
    let invoked = invoked?;
    Ok(Sample {
        total,
        init: invoked.init.unwrap_or_default(),
        first: invoked.duration,
        rss,
    })
}

/// Measures `runs` cold starts of each case, then `warm` invocations of one process each.
pub async fn measure(
    cases: &[Case],
    region: &str,
    runs: usize,
    warm: usize,
    progress: impl Fn(&str),
) -> Result<Vec<ColdStart>> {
    let mut samples: Vec<Vec<Sample>> = cases.iter().map(|_| Vec::new()).collect();
    let mut n = 0u64;
    // One untimed start each first: the binaries into the page cache, as on a warm worker.
    for case in cases {
        one_cold_start(case, region, n).await?;
        n += 1;
    }
    for run in 0..runs {
        progress(&format!("cold starts: round {}/{runs}", run + 1));
        // Each round starts one case later, so that no function always follows the same one.
        for i in (0..cases.len()).map(|k| (k + run) % cases.len()) {
            // Quiet first: the previous start's first event leaves work behind (moto delivering
            // a published event, connections closing, the stopped process exiting) that would
            // otherwise share the two cores with this start's init.
            tokio::time::sleep(SETTLE).await;
            samples[i].push(one_cold_start(&cases[i], region, n).await?);
            n += 1;
        }
    }
    let mut results = Vec::new();
    for (case, samples) in cases.iter().zip(samples) {
        let mut durations = Vec::with_capacity(warm);
        let mut rss_after = None;
        if warm > 0 {
            progress(&format!("{}: {warm} warm invocations", case.name));
            let function = Function::new(case.spec(region));
            case.invoke(&function, n).await?;
            n += 1;
            for _ in 0..warm {
                durations.push(case.invoke(&function, n).await?.duration);
                n += 1;
            }
            rss_after = function.pid().and_then(rss_kib).map(|(hwm, _)| hwm);
            function.stop(Duration::from_millis(500)).await;
        }
        let ms = |f: fn(&Sample) -> Duration| {
            Summary::of_durations(&samples.iter().map(f).collect::<Vec<_>>())
        };
        let rss: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.rss)
            .map(|k| k as f64)
            .collect();
        results.push(ColdStart {
            name: case.name.clone(),
            total: ms(|s| s.total).unwrap_or_else(Summary::empty),
            init: ms(|s| s.init).unwrap_or_else(Summary::empty),
            first_invoke: ms(|s| s.first).unwrap_or_else(Summary::empty),
            rss_first: Summary::of(&rss).unwrap_or_else(Summary::empty),
            warm: Summary::of_durations(&durations),
            warm_count: warm,
            rss_after,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_peak_and_current_rss() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    4242 kB\nVmRSS:\t    4000 kB\n";
        assert_eq!(super::parse_status(status), Some((4242, 4000)));
        assert_eq!(super::parse_status("Name: x\n"), None);
    }
}
