//! An HTTP endpoint that answers 200 to every request: where the migrate function PUTs its
//! CloudFormation response (a presigned S3 URL when deployed).

use crate::error::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;

/// A running sink.
pub struct Sink {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |request: http::Request<hyper::body::Incoming>| async move {
                            let _ = request.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::new(),
                            )))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { port, task })
    }

    /// A URL on the sink.
    pub fn url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/cloudformation-response?X-Amz-Signature=bench",
            self.port
        )
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
