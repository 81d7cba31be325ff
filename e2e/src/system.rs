//! The whole system wired against real stand-ins: PostgreSQL, moto, and the three handlers.

use crate::aws::{deploy, receive_batch, Moto, Resources, Roles, Variation};
use crate::postgres::TestPostgres;
use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use command::CommandApp;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use orders::dynamodb::OrderViewStore;
use orders::postgres::OrderStore;
use orders::projection::ReadModel;
use orders::s3::ReceiptStore;
use orders::sns::EventPublisher;
use orders_local::provision::Database;
use query::QueryApp;
use std::time::Duration;
use updater::Projector;

/// One isolated copy of the system.
pub struct TestSystem {
    pub pg: TestPostgres,
    pub moto: Moto,
    pub aws: SdkConfig,
    pub resources: Resources,
    pub store: OrderStore,
    pub command: CommandApp,
    pub query: QueryApp,
    pub projector: Projector,
    pub read_model: ReadModel,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    /// Each function's role session (the in-process handlers call AWS with theirs).
    pub roles: Roles,
}

impl TestSystem {
    /// Starts PostgreSQL and moto, migrates, provisions, and builds the handlers as their
    /// `main.rs` would.
    pub async fn start(raw_delivery: bool) -> Self {
        let pg = tokio::task::spawn_blocking(TestPostgres::start);
        let mut moto = Moto::start().await;
        if crate::aws::iam_enforced() {
            moto.create_admin("e2e").await;
        }
        let pg = pg.await.expect("postgres fixture");
        let database = Database {
            host: "127.0.0.1",
            port: pg.port,
            user: crate::postgres::USER,
            password: crate::postgres::PASSWORD,
        };
        let variation = Variation {
            raw_delivery,
            visibility_timeout_secs: 2,
        };
        let (resources, roles) = deploy(&moto, "e2e", &database, variation).await;
        // The admin: what tests inspect and operator commands (verify, rebuild) run as.
        let aws = moto.sdk_config().await;
        let db = pg.db_config();
        let pool = orders::postgres::connect(&db, &aws).await.expect("pool");
        let applied = orders::postgres::migrate(&pool).await.expect("migrate");
        assert_eq!(applied.len(), orders::postgres::MIGRATIONS.len());
        let store = OrderStore::new(pool, db.statement_timeout);
        let as_command = roles.config_of("command", &aws);
        let publisher = EventPublisher::new(
            &as_command,
            resources.topic_arn.clone(),
            Duration::from_secs(2),
        );
        let command = CommandApp::new(store.clone(), publisher, Duration::from_secs(3600));
        let as_query = roles.config_of("query", &aws);
        let query = QueryApp::new(
            OrderViewStore::new(&as_query, resources.table.clone()),
            ReceiptStore::new(&as_query, resources.bucket.clone()),
            Duration::from_secs(300),
            b"e2e-cursor-key".to_vec(),
        );
        let as_updater = roles.config_of("updater", &aws);
        let projector = Projector::new(
            ReadModel::new(
                OrderViewStore::new(&as_updater, resources.table.clone()),
                ReceiptStore::new(&as_updater, resources.bucket.clone()),
            ),
            8,
        );
        let read_model = ReadModel::new(
            OrderViewStore::new(&aws, resources.table.clone()),
            ReceiptStore::new(&aws, resources.bucket.clone()),
        );
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&aws)
                .force_path_style(true)
                .build(),
        );
        Self {
            sqs: aws_sdk_sqs::Client::new(&aws),
            s3,
            pg,
            moto,
            aws,
            resources,
            store,
            command,
            query,
            projector,
            read_model,
            roles,
        }
    }

    /// A command handler whose SNS client uses `aws` (for example an unreachable endpoint),
    /// with the command function's credentials.
    pub fn command_publishing_via(&self, aws: &SdkConfig, timeout: Duration) -> CommandApp {
        let aws = &self.roles.config_of("command", aws);
        CommandApp::new(
            self.store.clone(),
            EventPublisher::new(aws, self.resources.topic_arn.clone(), timeout),
            Duration::from_secs(3600),
        )
    }

    /// A command handler on its own pool to the database `db` describes (for example through
    /// a fault proxy), each operation bounded by `db.statement_timeout` on the client.
    /// It runs with the command function's credentials.
    pub async fn command_on(&self, db: &orders::config::DbConfig) -> CommandApp {
        let aws = &self.roles.config_of("command", &self.aws);
        let pool = orders::postgres::connect(db, aws).await.expect("pool");
        CommandApp::new(
            OrderStore::new(pool, db.statement_timeout),
            EventPublisher::new(
                aws,
                self.resources.topic_arn.clone(),
                Duration::from_secs(2),
            ),
            Duration::from_secs(3600),
        )
    }

    /// An updater whose DynamoDB and S3 clients use `aws` (for example a fault proxy), with
    /// the updater function's credentials.
    pub fn projector_via(&self, aws: &SdkConfig) -> Projector {
        let aws = &self.roles.config_of("updater", aws);
        let views = OrderViewStore::new(aws, self.resources.table.clone());
        Projector::new(
            ReadModel::new(views, ReceiptStore::new(aws, self.resources.bucket.clone())),
            8,
        )
    }

    /// One relay run against the real topic, with no grace period.
    pub async fn relay(&self) -> orders::relay::RelayReport {
        let publisher = EventPublisher::new(
            &self.roles.config_of("relay", &self.aws),
            self.resources.topic_arn.clone(),
            Duration::from_secs(2),
        );
        orders::relay::relay_once(self.store.pool(), &publisher, &relay_settings())
            .await
            .expect("relay run")
    }

    /// Compares the write and read models.
    pub async fn verify(&self) -> orders::reconcile::DriftReport {
        orders::reconcile::verify(&self.store, &self.read_model.views, 50)
            .await
            .expect("verify")
    }

    /// Places one valid order per customer and returns their ids.
    pub async fn create_orders(&self, customers: &[String]) -> Vec<String> {
        let mut ids = Vec::new();
        for customer in customers {
            let (status, created) =
                read_json(&self.command.handle(post_order(&order_body(customer))).await);
            assert_eq!(status, 201, "{created}");
            ids.push(created["orderId"].as_str().expect("orderId").to_string());
        }
        ids
    }

    /// Receives what SNS delivered to the queue; each event SNS delivered is checked against
    /// `asyncapi.yaml` (a mismatch panics).
    pub async fn receive(&self, wait: Duration) -> Vec<SqsMessage> {
        let records = receive_batch(&self.sqs, &self.resources.queue_url, 10, wait).await;
        records
            .iter()
            .for_each(crate::event_contract::check_delivery);
        records
    }

    /// Runs the updater on these records, as Lambda's event source mapping would.
    pub async fn project(&self, records: Vec<SqsMessage>) -> SqsBatchResponse {
        let mut event = SqsEvent::default();
        event.records = records;
        self.projector.handle(event).await.expect("batch handled")
    }

    /// Receives and projects until `count` distinct messages were handled or `wait` passed;
    /// returns how many were.
    pub async fn drain(&self, count: usize, wait: Duration) -> usize {
        let deadline = std::time::Instant::now() + wait;
        // Distinct messages: one whose projection outlasted the queue's short visibility
        // timeout (2 s here) comes back and must not be counted twice.
        let mut handled = std::collections::HashSet::new();
        while handled.len() < count && std::time::Instant::now() < deadline {
            let records = self.receive(Duration::from_secs(1)).await;
            if records.is_empty() {
                continue;
            }
            handled.extend(records.iter().filter_map(|r| r.message_id.clone()));
            let handles: Vec<_> = records
                .iter()
                .filter_map(|r| r.receipt_handle.clone())
                .collect();
            let response = self.project(records).await;
            assert!(response.batch_item_failures.is_empty(), "{response:?}");
            for handle in handles {
                self.sqs
                    .delete_message()
                    .queue_url(&self.resources.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
        handled.len()
    }

    /// Rewrites the outbox events of one order into the schema version 1 shape of the first
    /// release (`id` for `orderId`, no `history`), as if written before version 2.
    pub fn store_outbox_as_v1(&self, order_id: &str) {
        self.pg.psql(
            crate::postgres::DATABASE,
            &format!(
                "UPDATE outbox SET payload =
                   jsonb_set(payload #- '{{order,orderId}}' #- '{{order,history}}',
                             '{{order,id}}', payload->'order'->'orderId')
                   || '{{\"schemaVersion\": 1}}'
                 WHERE order_id = '{order_id}'"
            ),
        );
    }

    /// Keys of the receipt objects stored for one order.
    pub async fn receipt_keys(&self, order_id: &str) -> Vec<String> {
        self.s3
            .list_objects_v2()
            .bucket(&self.resources.bucket)
            .prefix(format!("receipts/{order_id}/"))
            .send()
            .await
            .expect("list receipts")
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect()
    }

    /// Counts rows of a write-side table.
    pub fn count(&self, table: &str) -> i64 {
        self.pg
            .psql(
                crate::postgres::DATABASE,
                &format!("SELECT count(*) FROM {table}"),
            )
            .parse()
            .expect("count")
    }
}

/// A request built from a sample event in `events/`, with optional changes to its JSON.
pub fn request_from_event(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Request {
    let path = crate::workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).expect("read sample event");
    let mut value: serde_json::Value = serde_json::from_str(&text).expect("sample event is JSON");
    edit(&mut value);
    lambda_http::request::from_str(&value.to_string()).expect("API Gateway v2 event")
}

/// Who a test request comes from, as API Gateway's JWT authorizer would describe them.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A customer token (`sub` = the customer id).
    Customer(&'a str),
    /// A staff token (scope `orders/admin`).
    Staff,
    /// No verified token at all.
    Anonymous,
}

impl Caller<'_> {
    /// `requestContext.authorizer` as payload format 2.0 carries it (every claim a string).
    pub fn authorizer(self) -> serde_json::Value {
        let claims = |sub: &str, scope: &str| {
            serde_json::json!({"jwt": {"claims": {
                "iss": "https://issuer.example.test/",
                "sub": sub,
                "client_id": "e2e-tests",
                "token_use": "access",
                "scope": scope,
                "iat": "1732262400",
                "exp": "4102444800",
            }, "scopes": null}})
        };
        match self {
            Caller::Customer(id) => claims(id, "orders/customer"),
            Caller::Staff => claims("staff-e2e", "openid orders/admin"),
            Caller::Anonymous => serde_json::Value::Null,
        }
    }
}

/// The same request from another caller.
pub fn as_caller(request: Request, caller: Caller) -> Request {
    with_authorizer(request, caller.authorizer())
}

/// The same request with this `requestContext.authorizer` (JSON as API Gateway sends it).
pub fn with_authorizer(request: Request, authorizer: serde_json::Value) -> Request {
    let Some(RequestContext::ApiGatewayV2(mut context)) = request.request_context_ref().cloned()
    else {
        panic!("not an API Gateway v2 request");
    };
    context.authorizer = serde_json::from_value(authorizer).expect("authorizer");
    request.with_request_context(RequestContext::ApiGatewayV2(context))
}

/// `POST /orders` with this body, from the customer it names (or the sample's caller when the
/// body names none).
pub fn post_order(body: &str) -> Request {
    let customer = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["customer"]["id"].as_str().map(str::to_string));
    let request = request_from_event("post-order.json", |v| {
        v["body"] = body.into();
        v["headers"]["content-length"] = body.len().to_string().into();
    });
    match customer {
        Some(id) => as_caller(request, Caller::Customer(&id)),
        None => request,
    }
}

/// `GET /orders/{id}`, from staff (who may read any order).
pub fn get_order(id: &str) -> Request {
    let request = request_from_event("get-order.json", |v| {
        v["rawPath"] = format!("/orders/{id}").into();
        v["requestContext"]["http"]["path"] = format!("/orders/{id}").into();
        v["pathParameters"]["id"] = id.into();
    });
    as_caller(request, Caller::Staff)
}

/// A response's status and JSON body.
pub fn read_json(response: &Response<Body>) -> (u16, serde_json::Value) {
    let bytes = orders::http::body_bytes(response.body());
    let value = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(bytes).expect("response body is JSON")
    };
    (response.status().as_u16(), value)
}

/// A valid order body for `customer`.
pub fn order_body(customer: &str) -> String {
    serde_json::json!({
        "customer": {"id": customer, "name": "Grace Hopper", "email": "grace@example.com"},
        "currency": "USD",
        "lines": [
            {"sku": "COBOL-BOOK", "name": "COBOL manual", "quantity": 3, "unitPrice": 2500},
            {"sku": "NANOSECOND", "name": "A nanosecond of wire", "quantity": 10, "unitPrice": 30}
        ]
    })
    .to_string()
}

/// Relay settings for tests: no grace period, small batches.
pub fn relay_settings() -> orders::relay::RelaySettings {
    orders::relay::RelaySettings {
        grace: Duration::ZERO,
        batch_size: 5,
        max_batches: 100,
        max_duration: Duration::from_secs(60),
        op_timeout: Duration::from_secs(5),
        key_expiry: orders::postgres::idempotency::ExpirySettings {
            batch: 100,
            budget: Duration::from_secs(30),
            op_timeout: Duration::from_secs(5),
        },
    }
}

/// `POST /orders/{id}/status` with this body and optional headers, from staff.
pub fn change_status(id: &str, body: &str, headers: &[(&str, &str)]) -> Request {
    let request = request_from_event("post-order.json", |v| {
        let path = format!("/orders/{id}/status");
        v["routeKey"] = "POST /orders/{id}/status".into();
        v["rawPath"] = path.clone().into();
        v["requestContext"]["http"]["path"] = path.into();
        v["requestContext"]["routeKey"] = "POST /orders/{id}/status".into();
        v["pathParameters"] = serde_json::json!({ "id": id });
        v["body"] = body.into();
        v["headers"]["content-length"] = body.len().to_string().into();
        v["headers"]
            .as_object_mut()
            .expect("headers")
            .remove("x-correlation-id");
    });
    as_caller(with_headers(request, headers), Caller::Staff)
}

/// The request with these headers added (test-chosen names and values).
fn with_headers(mut request: Request, headers: &[(&str, &str)]) -> Request {
    for (name, value) in headers {
        request.headers_mut().insert(
            lambda_http::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    request
}

/// `POST /orders/{id}/shipping-address` with this body and optional headers, from staff.
pub fn change_address(id: &str, body: &str, headers: &[(&str, &str)]) -> Request {
    let request = request_from_event("shipping-address-change.json", |v| {
        let path = format!("/orders/{id}/shipping-address");
        v["rawPath"] = path.clone().into();
        v["requestContext"]["http"]["path"] = path.into();
        v["pathParameters"] = serde_json::json!({ "id": id });
        v["body"] = body.into();
        v["headers"]["content-length"] = body.len().to_string().into();
        v["headers"]
            .as_object_mut()
            .expect("headers")
            .remove("if-match");
    });
    as_caller(with_headers(request, headers), Caller::Staff)
}

/// `GET /customers/{customerId}/orders?{query}`, from that customer.
pub fn list_orders(customer: &str, query: &str) -> Request {
    let request = request_from_event("get-order.json", |v| {
        let path = format!("/customers/{customer}/orders");
        v["routeKey"] = "GET /customers/{customerId}/orders".into();
        v["rawPath"] = path.clone().into();
        v["rawQueryString"] = query.into();
        v["requestContext"]["http"]["path"] = path.into();
        v["pathParameters"] = serde_json::json!({ "customerId": customer });
        let params: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
            .collect();
        if !params.is_empty() {
            v["queryStringParameters"] = serde_json::Value::Object(params);
        }
    });
    as_caller(request, Caller::Customer(customer))
}
