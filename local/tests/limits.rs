//! The runner's AWS limits: Lambda's payload limits in the Runtime API emulator (a synchronous
//! event or a response over 6 MB and an asynchronous event over 1 MB fail as on Lambda, just
//! under passes, and the environment keeps serving after a refused response), and the limits
//! proxy in front of the runner's moto.

mod fake;

use bytes::Bytes;
use fake::Fake;
use orders_local::runtime_api::{
    Function, InvokeError, ASYNC_PAYLOAD_LIMIT, RESPONSE_TOO_LARGE, SYNC_PAYLOAD_LIMIT,
};
use serde_json::json;
use std::time::Duration;

/// `{"action":"big","bytes":<response>,"pad":"xxx..."}` of exactly `size` bytes.
fn event(size: usize, response: usize) -> Bytes {
    let head = json!({"action": "big", "bytes": response, "pad": ""}).to_string();
    let pad = "x".repeat(size - head.len());
    Bytes::from(json!({"action": "big", "bytes": response, "pad": pad}).to_string())
}

fn too_large(result: Result<orders_local::runtime_api::Invoked, InvokeError>, limit: usize) {
    match result {
        Err(InvokeError::PayloadTooLarge { size, limit: l }) => {
            assert_eq!((size, l), (limit + 1, limit));
        }
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
}

async fn respond(function: &Function, bytes: usize) -> Result<usize, InvokeError> {
    function
        .invoke(event(100, bytes))
        .await
        .map(|invoked| invoked.body.len())
}

#[tokio::test]
async fn responses_over_6_mb_fail_as_on_lambda_and_the_environment_keeps_serving() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(60), "normal");
    assert_eq!(
        respond(&function, SYNC_PAYLOAD_LIMIT).await.unwrap(),
        SYNC_PAYLOAD_LIMIT
    );
    match respond(&function, SYNC_PAYLOAD_LIMIT + 1).await {
        Err(InvokeError::Function { error_type, body }) => {
            assert_eq!(error_type, RESPONSE_TOO_LARGE);
            assert!(String::from_utf8_lossy(&body).contains("exceeded maximum allowed payload"));
        }
        other => panic!("expected {RESPONSE_TOO_LARGE}, got {other:?}"),
    }
    let warm = function.invoke(event(100, 50)).await.unwrap();
    assert_eq!(
        warm.init, None,
        "the same process serves the next invocation"
    );
    function.stop(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn events_over_6_mb_sync_or_1_mb_async_are_refused_before_the_function_runs() {
    let fake = Fake::new();
    let function = fake.function(Duration::from_secs(60), "normal");
    let sync = function
        .invoke(event(SYNC_PAYLOAD_LIMIT, 50))
        .await
        .unwrap();
    assert_eq!(sync.body.len(), 50);
    too_large(
        function.invoke(event(SYNC_PAYLOAD_LIMIT + 1, 50)).await,
        SYNC_PAYLOAD_LIMIT,
    );
    let asynchronous = function
        .invoke_async(event(ASYNC_PAYLOAD_LIMIT, 50))
        .await
        .unwrap();
    assert_eq!(asynchronous.body.len(), 50);
    too_large(
        function
            .invoke_async(event(ASYNC_PAYLOAD_LIMIT + 1, 50))
            .await,
        ASYNC_PAYLOAD_LIMIT,
    );
    function.stop(Duration::from_secs(2)).await;
}

/// The runner's moto is only reachable through the AWS limits proxy: an SNS message over
/// 256 KiB is refused on the public port with AWS's error, a call within the limits reaches moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runners_moto_sits_behind_the_aws_limits_proxy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = std::env::temp_dir().join(format!("orders-local-limits-moto-{port}.log"));
    let moto = orders_local::moto::LocalMoto::start(&root, port, &log)
        .await
        .expect("moto starts");
    let endpoint = moto.endpoint();
    assert_eq!(endpoint, format!("http://127.0.0.1:{port}"));
    let call = |body: String| {
        let endpoint = endpoint.clone();
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            let response = agent
                .post(&endpoint)
                .header("content-type", "application/x-www-form-urlencoded")
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sns/aws4_request, \
                     SignedHeaders=host, Signature=0",
                )
                .send(body)
                .expect("an answer");
            let status = response.status().as_u16();
            (
                status,
                response.into_body().read_to_string().unwrap_or_default(),
            )
        })
    };
    let (status, text) = call(format!(
        "Action=Publish&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A123456789012%3Anone&Message={}",
        "m".repeat(262_145)
    ))
    .await
    .expect("call");
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>InvalidParameter</Code>"), "{text}");
    let (status, text) = call("Action=ListTopics&Version=2010-03-31".into())
        .await
        .expect("call");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("ListTopicsResponse"), "{text}");
    moto.stop().await;
    let _ = std::fs::remove_file(&log);
}
