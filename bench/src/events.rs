//! The events the benchmarks send: request bodies, and Lambda events in the shapes API
//! Gateway, SQS, EventBridge and CloudFormation deliver (built from the samples in `events/`).

use crate::error::{BenchError, Result};
use orders::domain::validation::decode_request;
use orders::OrderEvent;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The sample events of the repository.
#[derive(Debug, Clone)]
pub struct Samples {
    dir: PathBuf,
}

impl Samples {
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("events"),
        }
    }

    fn load(&self, name: &str) -> Result<Value> {
        let path = self.dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BenchError::msg(format!("{}: {e}", path.display())))?;
        Ok(serde_json::from_str(&text)?)
    }

    /// The verified claims of a staff token (from the staff sample), who may place and read
    /// any customer's orders.
    fn staff_authorizer(&self) -> Result<Value> {
        Ok(self.load("post-order-status.json")?["requestContext"]["authorizer"].clone())
    }

    /// `POST /orders` with `body`, as API Gateway (payload format 2.0) delivers it, from staff.
    pub fn post_order(&self, body: &str) -> Result<Value> {
        let mut event = self.load("post-order.json")?;
        event["requestContext"]["authorizer"] = self.staff_authorizer()?;
        event["body"] = body.into();
        event["headers"]["content-length"] = body.len().to_string().into();
        event["requestContext"]["requestId"] = uuid::Uuid::new_v4().simple().to_string().into();
        Ok(event)
    }

    /// `GET /orders/{id}`, from staff.
    pub fn get_order(&self, id: &str) -> Result<Value> {
        let mut event = self.load("get-order.json")?;
        event["requestContext"]["authorizer"] = self.staff_authorizer()?;
        let path = format!("/orders/{id}");
        event["rawPath"] = path.clone().into();
        event["requestContext"]["http"]["path"] = path.into();
        event["pathParameters"]["id"] = id.into();
        Ok(event)
    }

    /// The EventBridge scheduled event the relay gets.
    pub fn relay_scheduled(&self) -> Result<Value> {
        self.load("relay-scheduled.json")
    }
}

/// A valid order body; `n` makes the customer unique.
pub fn order_body(n: u64) -> String {
    json!({
        "customer": {"id": format!("bench-{n}"), "name": "Ada Lovelace", "email": "ada@example.com"},
        "currency": "EUR",
        "lines": [
            {"sku": "BOOK-ENGINE-01", "name": "Notes on the Analytical Engine", "quantity": 2, "unitPrice": 1999},
            {"sku": "PEN-FOUNTAIN-07", "name": "Fountain pen", "quantity": 1, "unitPrice": 4550}
        ]
    })
    .to_string()
}

/// The `OrderCreated` event the command would write for `order_body(n)`.
pub fn order_created(n: u64) -> Result<OrderEvent> {
    let order = decode_request(order_body(n).as_bytes())
        .map_err(|e| BenchError::msg(format!("sample order: {e:?}")))?
        .validate()
        .map_err(|e| BenchError::msg(format!("sample order: {e:?}")))?;
    Ok(OrderEvent::created(&order, Some(format!("bench-{n}"))))
}

/// An SQS event whose records carry these order events (raw message delivery, as the
/// template subscribes the queue).
pub fn sqs_event(events: &[OrderEvent], queue_arn: &str, region: &str) -> Result<Value> {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut records = Vec::new();
    for event in events {
        records.push(json!({
            "messageId": uuid::Uuid::new_v4().to_string(),
            "receiptHandle": format!("bench-{}", uuid::Uuid::new_v4().simple()),
            "body": serde_json::to_string(event)?,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": now_ms.to_string(),
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": now_ms.to_string()
            },
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region
        }));
    }
    Ok(json!({ "Records": records }))
}

/// A CloudFormation custom resource `Update` request, answered at `response_url`.
pub fn migrate_update(response_url: &str) -> Value {
    json!({
        "RequestType": "Update",
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:migrate",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/orders-bench/guid",
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "ResourceType": "Custom::SchemaMigrations",
        "LogicalResourceId": "SchemaMigrations",
        "PhysicalResourceId": "orders-schema-migrations",
        "ResourceProperties": {"ServiceToken": "t", "FunctionVersion": "2"},
        "OldResourceProperties": {"ServiceToken": "t", "FunctionVersion": "1"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_orders_are_valid_and_distinct() {
        let a = order_created(1).unwrap();
        let b = order_created(2).unwrap();
        assert_ne!(a.order_id, b.order_id);
        let event = sqs_event(&[a, b], "arn:aws:sqs:us-east-1:1:q", "us-east-1").unwrap();
        assert_eq!(event["Records"].as_array().unwrap().len(), 2);
    }
}
