//! The benchmark suite of issue #7, run by `scripts/bench`, which writes BENCHMARKS.md.
//!
//! Every figure is measured beside its baseline in the same run: binary sizes and cold starts
//! against a hello-world `lambda_runtime` function ([`size`], [`cold_start`]), warm API latency
//! against the raw SDK and database calls the handlers make ([`latency`]), updater throughput
//! against raw writes ([`throughput`]), and projection lag under load ([`lag`]). The system is
//! the real local runner ([`system`]); functions run behind the Lambda Runtime API emulator of
//! `orders_local::runtime_api` ([`functions`]).

pub mod cold_start;
pub mod cpu_share;
pub mod error;
pub mod events;
pub mod functions;
pub mod http;
pub mod lag;
pub mod lag_baseline;
pub mod latency;
pub mod managed;
pub mod report;
pub mod sink;
pub mod size;
pub mod stats;
pub mod system;
pub mod throughput;
pub mod tls;
