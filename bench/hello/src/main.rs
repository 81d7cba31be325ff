//! A hello-world `lambda_runtime` function: the baseline for binary size, cold start and memory.
//! Built with the workspace's release profile, like the real functions.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(json!({ "message": "hello", "requestId": event.context.request_id }))
    }))
    .await
}
