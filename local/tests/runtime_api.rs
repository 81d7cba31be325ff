//! The Lambda Runtime API emulator with a function written against the documented protocol
//! alone (a small Python program, no Rust runtime crate): events and headers, responses,
//! function errors, timeouts, crashes and init failures, each followed by a cold start.

mod fake;

use bytes::Bytes;
use fake::Fake;
use orders_local::runtime_api::{Function, InvokeError};
use serde_json::{json, Value};
use std::time::Duration;

async fn call(function: &Function, event: Value) -> Result<(Value, Option<Duration>), InvokeError> {
    function
        .invoke(Bytes::from(event.to_string()))
        .await
        .map(|invoked| (serde_json::from_slice(&invoked.body).unwrap(), invoked.init))
}

#[tokio::test]
async fn events_go_out_with_the_documented_headers_and_environment() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(30), "normal");
    let (first, init) = call(&function, json!({"hello": "world"})).await.unwrap();
    assert!(init.is_some(), "the first invocation is a cold start");
    assert_eq!(first["event"], json!({"hello": "world"}));
    let headers = &first["headers"];
    assert!(headers["lambda-runtime-aws-request-id"]
        .as_str()
        .is_some_and(|id| id.len() == 36));
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:eu-west-1:123456789012:function:stack-fake"
    );
    assert!(headers["lambda-runtime-trace-id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    let deadline: u128 = headers["lambda-runtime-deadline-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        deadline > now && deadline <= now + 30_000,
        "deadline {deadline}, now {now}"
    );
    let env = &first["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "stack-fake");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/stack-fake");
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"]
        .as_str()
        .unwrap()
        .contains("[$LATEST]"));
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["MY_SETTING"], "42");
    assert_eq!(
        env["AWS_LAMBDA_MAX_CONCURRENCY"],
        Value::Null,
        "set on Managed Instances only"
    );
    assert_eq!(
        env["HOME"],
        Value::Null,
        "the runner's own environment is not passed on"
    );

    let (second, init) = call(&function, json!({"n": 2})).await.unwrap();
    assert_eq!(init, None, "a warm invocation");
    assert_eq!(second["pid"], first["pid"], "the same process");
    assert_ne!(
        second["headers"]["lambda-runtime-aws-request-id"],
        first["headers"]["lambda-runtime-aws-request-id"]
    );
    function.stop(Duration::from_secs(2)).await;
    assert!(matches!(
        call(&function, json!({})).await,
        Err(InvokeError::Stopped)
    ));
}

#[tokio::test]
async fn invocations_are_one_at_a_time() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(60), "normal");
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..4 {
        let function = function.clone();
        calls.spawn(async move {
            call(
                &function,
                json!({"action": "sleep", "seconds": 0.2, "i": i}),
            )
            .await
        });
    }
    let mut pids = std::collections::HashSet::new();
    let mut cold = 0;
    while let Some(result) = calls.join_next().await {
        let (body, init) = result.unwrap().unwrap();
        pids.insert(body["pid"].as_u64().unwrap());
        cold += usize::from(init.is_some());
    }
    assert_eq!(pids.len(), 1, "one process served them all, in turn");
    assert_eq!(cold, 1);
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_function_error_is_reported_and_the_process_is_kept() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(30), "normal");
    let (before, _) = call(&function, json!({})).await.unwrap();
    match call(&function, json!({"action": "error"})).await {
        Err(InvokeError::Function { error_type, body }) => {
            assert_eq!(error_type, "Boom");
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["errorMessage"], "it broke");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let (after, init) = call(&function, json!({})).await.unwrap();
    assert_eq!(init, None);
    assert_eq!(after["pid"], before["pid"]);
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_timeout_stops_the_process_and_the_next_call_cold_starts() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(2), "normal");
    let (before, _) = call(&function, json!({})).await.unwrap();
    let result = call(&function, json!({"action": "sleep", "seconds": 600})).await;
    assert!(matches!(result, Err(InvokeError::Timeout(_))), "{result:?}");
    assert_eq!(function.pid(), None, "the timed-out process is gone");
    let (after, init) = call(&function, json!({})).await.unwrap();
    assert!(init.is_some(), "a cold start");
    assert_ne!(after["pid"], before["pid"]);
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_crash_fails_the_invocation_and_the_next_call_cold_starts() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(60), "normal");
    let (before, _) = call(&function, json!({})).await.unwrap();
    let result = call(&function, json!({"action": "exit"})).await;
    match &result {
        Err(InvokeError::Crashed(why)) => assert!(why.contains("exit status 1"), "{why}"),
        other => panic!("expected a crash, got {other:?}"),
    }
    let (after, init) = call(&function, json!({})).await.unwrap();
    assert!(init.is_some());
    assert_ne!(after["pid"], before["pid"]);
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn an_init_failure_is_reported() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(10), "exit-at-init");
    match function.start().await {
        Err(InvokeError::InitFailed(why)) => assert!(why.contains("exit status 3"), "{why}"),
        other => panic!("expected an init failure, got {other:?}"),
    }
    assert!(matches!(
        call(&function, json!({})).await,
        Err(InvokeError::InitFailed(_))
    ));
}

#[tokio::test]
async fn concurrent_invocations_scale_out_to_the_concurrency_and_no_further() {
    let fake = Fake::new();
    let function = Function::with_concurrency(
        fake::spec(&fake.program(), Duration::from_secs(30), "normal"),
        3,
    );
    assert_eq!(function.concurrency(), 3);
    let calls = (0..5).map(|_| call(&function, json!({"action": "sleep", "seconds": 1})));
    let results = futures::future::join_all(calls).await;
    let mut pids = std::collections::BTreeSet::new();
    let mut cold_starts = 0;
    for result in results {
        let (body, init) = result.expect("every invocation is answered");
        pids.insert(body["pid"].as_u64().expect("pid"));
        cold_starts += usize::from(init.is_some());
    }
    assert_eq!(pids.len(), 3, "three processes served five calls: {pids:?}");
    assert_eq!(cold_starts, 3);
    assert_eq!(function.pids().len(), 3);

    // Warm environments are reused: a lone call starts nothing new.
    let (body, init) = call(&function, json!({})).await.unwrap();
    assert_eq!(init, None);
    assert!(pids.contains(&body["pid"].as_u64().unwrap()));
    function.stop(Duration::from_secs(2)).await;
    assert!(function.pids().is_empty());
}

#[tokio::test]
async fn on_managed_instances_one_process_serves_concurrent_invocations() {
    let fake = Fake::new();
    let function = Function::managed(
        fake::spec(&fake.program(), Duration::from_secs(300), "normal"),
        1,
        4,
    );
    assert_eq!((function.concurrency(), function.per_environment()), (1, 4));
    // Each invocation returns only once all four are inside the process at once (a barrier in
    // the fake): they can only succeed if the emulator hands out four events concurrently.
    let calls = (0..4).map(|_| call(&function, json!({"action": "rendezvous", "parties": 4})));
    let results = futures::future::join_all(calls).await;
    let mut pids = std::collections::BTreeSet::new();
    let mut request_ids = std::collections::BTreeSet::new();
    let mut cold_starts = 0;
    for result in results {
        let (body, init) = result.expect("every invocation is answered");
        pids.insert(body["pid"].as_u64().expect("pid"));
        request_ids.insert(body["headers"]["lambda-runtime-aws-request-id"].to_string());
        assert_eq!(body["env"]["AWS_LAMBDA_MAX_CONCURRENCY"], "4");
        cold_starts += usize::from(init.is_some());
    }
    assert_eq!(pids.len(), 1, "one process served them all: {pids:?}");
    assert_eq!(
        request_ids.len(),
        4,
        "each response matched its own request"
    );
    assert_eq!(cold_starts, 1);
    assert_eq!(
        function.pids(),
        pids.iter().map(|&p| p as u32).collect::<Vec<_>>()
    );
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn on_managed_instances_a_timeout_fails_that_invocation_alone() {
    let fake = Fake::new();
    let function = Function::managed(
        fake::spec(&fake.program(), Duration::from_secs(2), "normal"),
        1,
        2,
    );
    let (first, _) = call(&function, json!({})).await.unwrap();
    let pid = first["pid"].as_u64().unwrap();
    let stuck = call(&function, json!({"action": "sleep", "seconds": 600}));
    let after = async {
        // The other worker keeps answering while one invocation hangs.
        call(&function, json!({})).await
    };
    let (stuck, other) = tokio::join!(stuck, after);
    assert!(matches!(stuck, Err(InvokeError::Timeout(_))), "{stuck:?}");
    assert_eq!(other.unwrap().0["pid"].as_u64(), Some(pid));
    // Unlike on Lambda, the environment is not replaced after the timeout.
    let (again, init) = call(&function, json!({})).await.unwrap();
    assert_eq!((again["pid"].as_u64(), init), (Some(pid), None));
    function.stop(Duration::from_secs(2)).await;
}
