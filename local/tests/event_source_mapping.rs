//! The SQS event source mapping emulation against moto and a fake function that holds each
//! batch and notes when it ran: batches run concurrently, never more at once than
//! `MaximumConcurrency`; a batch waits for the batching window unless it fills first; and an
//! event never exceeds Lambda's 6 MB payload (what does not fit goes into the next batch).

mod fake;

use fake::Fake;
use orders_local::moto::LocalMoto;
use orders_local::runtime_api::{Function, SYNC_PAYLOAD_LIMIT};
use orders_local::sqs_source::SqsSource;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// moto, and an SQS client for it.
struct Sqs {
    moto: LocalMoto,
    client: aws_sdk_sqs::Client,
    dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed at the end.
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Sqs {
    async fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "orders-local-esm-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let moto = LocalMoto::start(&repository(), free_port(), &dir.join("moto.log"))
            .await
            .expect("moto");
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        Self {
            moto,
            client: aws_sdk_sqs::Client::new(&config),
            dir: tempdir::Dir(dir),
        }
    }

    async fn queue(&self, name: &str) -> (String, String) {
        let url = self
            .client
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        (url, arn)
    }

    async fn send(&self, url: &str, bodies: &[String]) {
        for body in bodies {
            self.client
                .send_message()
                .queue_url(url)
                .message_body(body)
                .send()
                .await
                .expect("send");
        }
    }
}

/// One batch as the fake function noted it.
#[derive(Debug)]
struct Batch {
    start: f64,
    end: f64,
    bytes: usize,
    bodies: Vec<String>,
}

fn batches(log: &Path) -> Vec<Batch> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("log line");
            Batch {
                start: v["start"].as_f64().unwrap(),
                end: v["end"].as_f64().unwrap(),
                bytes: v["bytes"].as_u64().unwrap() as usize,
                bodies: v["bodies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect()
}

/// Waits until the function has seen `count` records.
async fn await_records(log: &Path, count: usize, limit: Duration) -> Vec<Batch> {
    let deadline = Instant::now() + limit;
    loop {
        let seen = batches(log);
        if seen.iter().map(|b| b.bodies.len()).sum::<usize>() >= count {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} records in {limit:?}",
            seen.iter().map(|b| b.bodies.len()).sum::<usize>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The most batches that ran at the same time.
fn max_overlap(batches: &[Batch]) -> usize {
    let mut events: Vec<(f64, i32)> = batches
        .iter()
        .flat_map(|b| [(b.start, 1), (b.end, -1)])
        .collect();
    // An end before a start at the same instant.
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in events {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// A slow fake function with `environments` environments, logging its batches to `log`.
fn slow_function(fake: &Fake, environments: usize, log: &Path, seconds: f64) -> Function {
    let mut spec = fake::spec(&fake.program(), Duration::from_secs(60), "sqs-slow");
    spec.env
        .push(("FAKE_LOG".into(), log.display().to_string()));
    spec.env.push(("FAKE_SECONDS".into(), seconds.to_string()));
    Function::with_concurrency(spec, environments)
}

struct Mapping {
    batch_size: i32,
    window: Duration,
    max_concurrency: usize,
}

fn source(function: &Function, (url, arn): &(String, String), m: Mapping) -> SqsSource {
    SqsSource {
        name: "test-mapping".into(),
        function: function.clone(),
        queue_url: url.clone(),
        queue_arn: arn.clone(),
        region: "us-east-1".into(),
        batch_size: m.batch_size,
        batching_window: m.window,
        report_batch_item_failures: true,
        max_concurrency: m.max_concurrency,
    }
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Many small batches through a mapping capped at `cap`, with more environments than that:
/// the most batches running at once.
async fn observed_concurrency(sqs: &Sqs, fake: &Fake, dir: &Path, cap: usize) -> usize {
    let queue = sqs.queue(&format!("concurrency-{cap}")).await;
    let messages = bodies(&format!("c{cap}"), 40);
    sqs.send(&queue.0, &messages).await;
    let log = dir.join(format!("batches-{cap}.log"));
    let function = slow_function(fake, 10, &log, 0.6);
    let mapping = source(
        &function,
        &queue,
        Mapping {
            batch_size: 2,
            window: Duration::ZERO,
            max_concurrency: cap,
        },
    );
    let task = tokio::spawn(mapping.run(sqs.client.clone()));
    let seen = await_records(&log, messages.len(), Duration::from_secs(300)).await;
    task.abort();
    function.stop(Duration::from_secs(2)).await;
    let mut all: Vec<&String> = seen.iter().flat_map(|b| &b.bodies).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), messages.len(), "every message, once");
    max_overlap(&seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_run_concurrently_and_never_more_than_maximum_concurrency() {
    let sqs = Sqs::start("concurrency").await;
    let fake = Fake::new();
    let dir = sqs.dir.0.clone();
    for cap in [2, 5] {
        let most = observed_concurrency(&sqs, &fake, &dir, cap).await;
        assert!(
            most > 1,
            "cap {cap}: batches ran one at a time (most at once: {most})"
        );
        assert!(most <= cap, "cap {cap}: {most} batches ran at once");
    }
    sqs.moto.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_for_the_window_unless_it_is_full_or_at_6_mb() {
    let sqs = Sqs::start("window").await;
    let fake = Fake::new();
    let dir = sqs.dir.0.clone();
    // One poller (a function limited to one environment), so that the batch is one poller's.
    let one_poller = |batch_size, window| Mapping {
        batch_size,
        window: Duration::from_secs(window),
        max_concurrency: 1,
    };
    for (window, name) in [(0u64, "no-window"), (4, "window")] {
        let queue = sqs.queue(name).await;
        let log = dir.join(format!("{name}.log"));
        let function = slow_function(&fake, 1, &log, 0.0);
        let task =
            tokio::spawn(source(&function, &queue, one_poller(10, window)).run(sqs.client.clone()));
        sqs.send(&queue.0, &bodies(name, 1)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sqs.send(&queue.0, &bodies(&format!("{name}-later"), 2))
            .await;
        let seen = await_records(&log, 3, Duration::from_secs(120)).await;
        task.abort();
        function.stop(Duration::from_secs(2)).await;
        let first = seen
            .iter()
            .find(|b| b.bodies.contains(&format!("{name}-0")))
            .expect("the first message's batch");
        if window == 0 {
            assert_eq!(first.bodies.len(), 1, "no window: invoked at once {seen:?}");
        } else {
            assert_eq!(
                (seen.len(), first.bodies.len()),
                (1, 3),
                "a window of {window} s gathers the messages sent 1.5 s later: {seen:?}"
            );
        }
    }

    // A full batch does not wait for a long window.
    let queue = sqs.queue("full").await;
    let log = dir.join("full.log");
    let function = slow_function(&fake, 1, &log, 0.0);
    sqs.send(&queue.0, &bodies("full", 3)).await;
    let sent = Instant::now();
    let task = tokio::spawn(source(&function, &queue, one_poller(3, 60)).run(sqs.client.clone()));
    let seen = await_records(&log, 3, Duration::from_secs(120)).await;
    assert!(
        sent.elapsed() < Duration::from_secs(50),
        "a full batch waited for the 60 s window"
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
    task.abort();
    function.stop(Duration::from_secs(2)).await;

    // Nor does a batch at 6 MB; what does not fit goes into the next batch.
    let queue = sqs.queue("big").await;
    let log = dir.join("big.log");
    let function = slow_function(&fake, 1, &log, 0.0);
    let big: Vec<String> = (0..30)
        .map(|i| format!("big-{i:02}-{}", "x".repeat(250 * 1024)))
        .collect();
    sqs.send(&queue.0, &big).await;
    // The window (20 s) outlasts gathering 6 MB; the rest is invoked when it ends.
    let task = tokio::spawn(source(&function, &queue, one_poller(100, 20)).run(sqs.client.clone()));
    let seen = await_records(&log, big.len(), Duration::from_secs(180)).await;
    task.abort();
    function.stop(Duration::from_secs(2)).await;
    assert!(seen.len() >= 2, "30 x 250 KB is more than one 6 MB event");
    for batch in &seen {
        assert!(batch.bytes <= SYNC_PAYLOAD_LIMIT, "{} bytes", batch.bytes);
    }
    assert!(
        seen[0].bytes > SYNC_PAYLOAD_LIMIT - 300 * 1024,
        "the first batch was invoked at 6 MB, not before: {} bytes",
        seen[0].bytes
    );
    sqs.moto.stop().await;
}
