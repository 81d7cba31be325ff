//! The HTTP client that drives the local runner's API. Every request is built in
//! [`Api::request`], so that a header every request needs (for example
//! `Authorization: Bearer ...` once the API requires it) is added in one place.

use crate::error::{BenchError, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A response: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A keep-alive HTTP/1.1 client for `http://127.0.0.1:{port}`.
#[derive(Clone)]
pub struct Api {
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    /// Sent with every request (`Authorization`, when the API requires it).
    extra_headers: Vec<(String, String)>,
}

impl Api {
    pub fn new(port: u16) -> Self {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(64)
                .build(connector),
            extra_headers: Vec::new(),
        }
    }

    /// Adds a header to every request (e.g. `authorization`, `Bearer <token>`).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.into(), value.into()));
        self
    }

    /// The one place requests are built.
    fn request(
        &self,
        method: http::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<http::Request<Full<Bytes>>> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in &self.extra_headers {
            builder = builder.header(name, value);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| BenchError::Http(e.to_string()))
    }

    async fn send(&self, request: http::Request<Full<Bytes>>) -> Result<Reply> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.request(http::Method::GET, path, None)?)
            .await
    }

    pub async fn post(&self, path: &str, body: String) -> Result<Reply> {
        self.send(self.request(http::Method::POST, path, Some(body))?)
            .await
    }

    /// `POST /orders`; returns the new order's id (an error unless the answer is 201).
    pub async fn create_order(&self, body: String) -> Result<String> {
        let reply = self.post("/orders", body).await?;
        if reply.status != 201 {
            return Err(BenchError::Http(format!(
                "POST /orders answered {}: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            )));
        }
        reply.json()?["orderId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| BenchError::Http("POST /orders: no orderId".into()))
    }
}
