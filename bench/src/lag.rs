//! Projection lag: from `POST /orders` answering 201 to the order being readable with
//! `GET /orders/{id}`, through the whole local pipeline (command -> SNS -> SQS -> the runner's
//! event-source mapping -> updater -> DynamoDB -> query).
//!
//! Two figures per order load:
//! * for every order, the time from its 201 to the `projectedAt` the updater stamped on the
//!   view just before its conditional write (same machine, same wall clock), read back with one
//!   `GET` once the order is visible;
//! * for a sample of orders (every `sample_every`-th), the time from the 201 to the first
//!   `GET` answering 200, polling every 20 ms (an upper bound with 20 ms resolution; polling
//!   every order would itself load the query function, which handles one request at a time).

use crate::error::{BenchError, Result};
use crate::events;
use crate::http::Api;
use crate::stats::Summary;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How orders are offered.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Open loop: one new order every `1/rate` seconds, whatever the answers take.
    Rate(f64),
    /// Closed loop: `clients` clients, each placing its next order when the last answered.
    Saturation { clients: usize },
}

/// The figures of one load.
#[derive(Debug, Clone)]
pub struct Lag {
    pub load: Load,
    pub duration: Duration,
    pub orders: usize,
    /// Orders answered 201 per second.
    pub achieved: f64,
    /// `POST` latency (ms).
    pub post: Summary,
    /// 201 -> `projectedAt` (ms), every order.
    pub to_projected: Summary,
    /// 201 -> first `GET` 200 (ms), sampled orders.
    pub to_visible: Summary,
    /// The last 201 -> the last `projectedAt` (ms): how long the read model took to catch up
    /// once the load stopped.
    pub drain_ms: f64,
    /// The mapping's `MaximumBatchingWindowInSeconds` in this run.
    pub window_s: u64,
    /// What the event source mapping did for these orders (from the runner's log).
    pub cost: Option<crate::lag_baseline::MappingCost>,
}

struct Placed {
    order_id: String,
    answered_at: SystemTime,
    post: Duration,
    visible_after: Option<Duration>,
}

async fn place(api: Api, n: u64, sample: bool) -> Result<Placed> {
    let started = Instant::now();
    let order_id = api.create_order(events::order_body(n)).await?;
    let answered = Instant::now();
    let answered_at = SystemTime::now();
    let mut visible_after = None;
    if sample {
        let path = format!("/orders/{order_id}");
        let deadline = answered + Duration::from_secs(60);
        while Instant::now() < deadline {
            if api.get(&path).await?.status == 200 {
                visible_after = Some(answered.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(Placed {
        order_id,
        answered_at,
        post: answered - started,
        visible_after,
    })
}

/// Offers `load` for `duration`, then reads every order back.
pub async fn measure(
    api: &Api,
    load: Load,
    duration: Duration,
    sample_every: u64,
    counter: Arc<AtomicU64>,
) -> Result<Lag> {
    let started_wall = SystemTime::now();
    let mut tasks: tokio::task::JoinSet<Result<Vec<Placed>>> = tokio::task::JoinSet::new();
    let started = Instant::now();
    match load {
        Load::Rate(rate) => {
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut i = 0u64;
            while started.elapsed() < duration {
                ticker.tick().await;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let sample = i % sample_every == 0;
                let api = api.clone();
                tasks.spawn(async move { Ok(vec![place(api, n, sample).await?]) });
                i += 1;
            }
        }
        Load::Saturation { clients } => {
            for client in 0..clients {
                let api = api.clone();
                let counter = counter.clone();
                tasks.spawn(async move {
                    let mut placed = Vec::new();
                    let mut i = client as u64;
                    while started.elapsed() < duration {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        placed.push(place(api.clone(), n, i % sample_every == 0).await?);
                        i += clients as u64;
                    }
                    Ok(placed)
                });
            }
        }
    }
    let mut placed = Vec::new();
    while let Some(done) = tasks.join_next().await {
        placed.extend(done.map_err(|e| BenchError::msg(e.to_string()))??);
    }
    // Orders per second over the time the orders took to be answered (the last answers
    // may come after the offering stopped).
    let last_answer = placed
        .iter()
        .filter_map(|p| p.answered_at.duration_since(started_wall).ok())
        .max()
        .unwrap_or(duration);
    finish(api, load, last_answer.max(duration), placed).await
}

async fn finish(api: &Api, load: Load, elapsed: Duration, placed: Vec<Placed>) -> Result<Lag> {
    let mut to_projected = Vec::new();
    let mut last_projected = None;
    for p in &placed {
        let path = format!("/orders/{}", p.order_id);
        let deadline = Instant::now() + Duration::from_secs(60);
        let view = loop {
            let reply = api.get(&path).await?;
            if reply.status == 200 {
                break reply.json()?;
            }
            if Instant::now() > deadline {
                return Err(BenchError::msg(format!(
                    "order {} never became readable",
                    p.order_id
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let projected = view["projectedAt"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .ok_or_else(|| BenchError::msg("a view without projectedAt"))?;
        let answered = OffsetDateTime::from(p.answered_at);
        last_projected = last_projected.max(Some(projected));
        to_projected.push((projected - answered).as_seconds_f64() * 1000.0);
    }
    let visible: Vec<Duration> = placed.iter().filter_map(|p| p.visible_after).collect();
    let posts: Vec<Duration> = placed.iter().map(|p| p.post).collect();
    let last_answer = placed.iter().map(|p| p.answered_at).max();
    let drain_ms = match (last_projected, last_answer) {
        (Some(projected), Some(answered)) => {
            ((projected - OffsetDateTime::from(answered)).as_seconds_f64() * 1000.0).max(0.0)
        }
        _ => 0.0,
    };
    Ok(Lag {
        load,
        duration: elapsed,
        orders: placed.len(),
        achieved: placed.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        post: Summary::of_durations(&posts).unwrap_or_else(Summary::empty),
        to_projected: Summary::of(&to_projected).unwrap_or_else(Summary::empty),
        to_visible: Summary::of_durations(&visible).unwrap_or_else(Summary::empty),
        drain_ms,
        window_s: 0,
        cost: None,
    })
}
