//! Lambda's payload limits in the Runtime API emulator: a synchronous event or a response over
//! 6 MB and an asynchronous event over 1 MB fail as on Lambda, just under passes, and the
//! environment keeps serving after a refused response.

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
