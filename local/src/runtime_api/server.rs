//! The Runtime API one execution environment's process talks to: `next`, `response`,
//! `error` and `init/error`, over HTTP on its own loopback port.

use super::{InvokeError, RESPONSE_TOO_LARGE, SYNC_PAYLOAD_LIMIT};
use crate::output;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

pub(super) struct Next {
    pub(super) request_id: String,
    pub(super) payload: Bytes,
    pub(super) deadline_ms: u64,
    pub(super) trace_id: String,
}

pub(super) type Outcome = Result<Bytes, InvokeError>;

/// The Runtime API state of one environment.
pub(super) struct Api {
    pub(super) function_arn: String,
    pub(super) name: String,
    pub(super) show_output: bool,
    pub(super) next_tx: mpsc::Sender<Next>,
    pub(super) next_rx: tokio::sync::Mutex<mpsc::Receiver<Next>>,
    pub(super) pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// When the process first asked for an event (end of its init phase).
    pub(super) ready: watch::Sender<Option<Instant>>,
    pub(super) init_error: Mutex<Option<String>>,
}

pub(super) async fn serve(listener: TcpListener, api: Arc<Api>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(api.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

type HttpResponse = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

async fn handle(
    api: Arc<Api>,
    request: Request<Incoming>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(not_found());
    };
    if method == Method::GET && rest == "invocation/next" {
        return Ok(next(&api).await);
    }
    if method != Method::POST {
        return Ok(not_found());
    }
    let error_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"errorType": "InvalidRequest", "errorMessage": e.to_string()}),
            ))
        }
    };
    if rest == "init/error" {
        let text = error_text(error_type.as_deref(), &body);
        if api.show_output {
            output::prefixed(&api.name, &format!("init error: {text}"), true);
        }
        *api.init_error.lock().expect("init error lock") = Some(text);
        return Ok(accepted());
    }
    let Some(invocation) = rest.strip_prefix("invocation/") else {
        return Ok(not_found());
    };
    let mut refused = None;
    let (id, outcome) = if let Some(id) = invocation.strip_suffix("/response") {
        if body.len() > SYNC_PAYLOAD_LIMIT {
            // As Lambda: the runtime gets 413 and the invocation fails with this error type.
            let message = format!(
                "Response payload size ({} bytes) exceeded maximum allowed payload size \
                 ({SYNC_PAYLOAD_LIMIT} bytes).",
                body.len()
            );
            let error =
                serde_json::json!({"errorType": RESPONSE_TOO_LARGE, "errorMessage": message});
            refused = Some(reply(StatusCode::PAYLOAD_TOO_LARGE, error.clone()));
            let body = Bytes::from(error.to_string());
            (
                id,
                Err(InvokeError::Function {
                    error_type: RESPONSE_TOO_LARGE.into(),
                    body,
                }),
            )
        } else {
            (id, Ok(body))
        }
    } else if let Some(id) = invocation.strip_suffix("/error") {
        let error_type = error_type
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["errorType"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| "Unhandled".into());
        (id, Err(InvokeError::Function { error_type, body }))
    } else {
        return Ok(not_found());
    };
    let waiter = api.pending.lock().expect("pending lock").remove(id);
    match waiter {
        Some(waiter) => {
            let _ = waiter.send(outcome);
            Ok(refused.unwrap_or_else(accepted))
        }
        None => Ok(reply(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"}),
        )),
    }
}

fn error_text(error_type: Option<&str>, body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    match error_type {
        Some(t) => format!("{t}: {message}"),
        None => message,
    }
}

fn accepted() -> HttpResponse {
    reply(StatusCode::ACCEPTED, serde_json::json!({"status": "OK"}))
}

fn not_found() -> HttpResponse {
    reply(
        StatusCode::NOT_FOUND,
        serde_json::json!({"errorType": "NotFound", "errorMessage": "unknown Runtime API path"}),
    )
}

async fn next(api: &Api) -> HttpResponse {
    api.ready.send_if_modified(|ready| {
        if ready.is_none() {
            *ready = Some(Instant::now());
            true
        } else {
            false
        }
    });
    let mut queue = api.next_rx.lock().await;
    let next = loop {
        match queue.recv().await {
            // An invocation that already timed out is skipped.
            Some(next)
                if api
                    .pending
                    .lock()
                    .expect("pending lock")
                    .contains_key(&next.request_id) =>
            {
                break next
            }
            Some(_) => continue,
            None => {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"errorType": "ServiceException", "errorMessage": "shutting down"}),
                )
            }
        }
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &next.request_id)
        .header("lambda-runtime-deadline-ms", next.deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", &api.function_arn)
        .header("lambda-runtime-trace-id", &next.trace_id)
        .body(Full::new(next.payload))
        .expect("valid response")
}
