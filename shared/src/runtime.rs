//! The tokio runtime a function runs on, chosen by how many requests it serves at once.
//!
//! An environment that serves one request at a time (Lambda's default) gets a runtime on the
//! main thread alone: the tasks of one request (the updater's records in flight, the database
//! connection's driver) interleave on it, and no worker threads are started at init (a 128 MB
//! function has a fraction of one vCPU to run them on anyway; measured in BENCHMARKS.md, Cold
//! start). An environment that serves several at once (`AWS_LAMBDA_MAX_CONCURRENCY` > 1, Lambda
//! Managed Instances) gets tokio's multi-threaded runtime, one worker per CPU.

use std::future::Future;

/// Which runtime serves `max_concurrency` requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// The calling thread only.
    CurrentThread,
    /// A worker thread per CPU.
    MultiThread,
}

impl Flavor {
    /// The flavor for an environment serving `max_concurrency` requests at once.
    pub fn for_concurrency(max_concurrency: usize) -> Self {
        if max_concurrency > 1 {
            Self::MultiThread
        } else {
            Self::CurrentThread
        }
    }
}

/// Runs a function's `main` to completion on the runtime its environment calls for
/// ([`crate::config::max_concurrency`]).
pub fn run<F: Future>(main: F) -> std::io::Result<F::Output> {
    let runtime = match Flavor::for_concurrency(crate::config::max_concurrency()) {
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    Ok(runtime.block_on(main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_unless_several_requests_at_once() {
        assert_eq!(Flavor::for_concurrency(1), Flavor::CurrentThread);
        assert_eq!(Flavor::for_concurrency(0), Flavor::CurrentThread);
        assert_eq!(Flavor::for_concurrency(8), Flavor::MultiThread);
    }

    #[test]
    fn runs_the_future_with_timers_and_spawned_tasks() {
        let answer = run(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::spawn(async { 6 * 7 }).await
        })
        .expect("a runtime");
        assert_eq!(answer.expect("the task's result"), 42);
    }
}
