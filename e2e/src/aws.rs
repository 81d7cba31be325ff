//! A moto server standing in for DynamoDB, S3, SNS and SQS, and the resources the system
//! needs in it, created as `template.yaml` declares them.

use crate::process::Guarded;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server, reached through the AWS limits proxy (as the runner does), so the
/// tests meet AWS's size limits that moto alone does not enforce.
pub struct Moto {
    /// The proxy's port: what clients use.
    pub port: u16,
    _limits: orders_local::aws_limits::LimitsProxy,
    _server: Guarded,
}

/// Where moto lives: `MOTO_SERVER`, else the project's venv.
pub fn moto_program() -> std::path::PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(Into::into)
        .unwrap_or_else(|| crate::workspace_root().join(".venv/bin/moto_server"))
}

impl Moto {
    pub fn start() -> Self {
        let program = moto_program();
        assert!(
            program.exists(),
            "{} not found: run scripts/bootstrap (the README's test command does)",
            program.display()
        );
        let moto_port = crate::free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = Guarded {
            child,
            stop_signal: libc::SIGTERM,
        };
        let limits = orders_local::aws_limits::LimitsProxy::start(
            0,
            format!("http://127.0.0.1:{moto_port}"),
            false,
        )
        .expect("start the AWS limits proxy");
        let moto = Self {
            port: limits.port,
            _limits: limits,
            _server: server,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SDK configuration that talks to this server with dummy credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }

    /// The environment a function process needs to talk to this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

pub const REGION: &str = "us-east-1";

pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// The names and addresses of one provisioned set of resources.
#[derive(Debug, Clone)]
pub struct Resources {
    pub table: String,
    pub bucket: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub dlq_url: String,
}

/// Creates the table (with its GSI), bucket, topic, queue with a DLQ (redrive after
/// `max_receive_count`) and the SNS -> SQS subscription. `prefix` keeps tests apart.
pub async fn provision(config: &SdkConfig, prefix: &str, raw_delivery: bool) -> Resources {
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    );
    let sns = aws_sdk_sns::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);

    let table = format!("{prefix}-orders");
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key schema")
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute")
    };
    dynamo
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("orderId"))
        .attribute_definitions(attr("customerId"))
        .attribute_definitions(attr("createdAt"))
        .key_schema(key("orderId", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("byCustomer")
                .key_schema(key("customerId", KeyType::Hash))
                .key_schema(key("createdAt", KeyType::Range))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .expect("gsi"),
        )
        .send()
        .await
        .expect("create table");

    let bucket = format!("{prefix}-receipts");
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");

    let topic_arn = sns
        .create_topic()
        .name(format!("{prefix}-order-events"))
        .send()
        .await
        .expect("create topic")
        .topic_arn
        .expect("topic arn");

    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-order-events-dlq"))
        .send()
        .await
        .expect("create dlq")
        .queue_url
        .expect("dlq url");
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let redrive =
        serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}).to_string();
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-order-events"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "2")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = queue_arn(&sqs, &queue_url).await;
    let subscription = sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .attributes("RawMessageDelivery", raw_delivery.to_string())
        .send()
        .await
        .expect("subscribe queue");
    assert!(subscription.subscription_arn.is_some());

    Resources {
        table,
        bucket,
        topic_arn,
        queue_url,
        dlq_url,
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue arn")
}

/// Receives what is on the queue now (up to `max`, waiting up to `wait`), as the records
/// of a Lambda SQS event.
pub async fn receive_batch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: i32,
    wait: Duration,
) -> Vec<aws_lambda_events::sqs::SqsMessage> {
    let deadline = Instant::now() + wait;
    let mut records = Vec::new();
    while records.is_empty() && Instant::now() < deadline {
        let output = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.min(10))
            .wait_time_seconds(1)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        for m in output.messages.unwrap_or_default() {
            records.push(to_record(m, queue_url));
        }
    }
    records
}

/// Converts a received SQS message into the record shape Lambda's SQS event carries.
pub fn to_record(
    m: aws_sdk_sqs::types::Message,
    queue_url: &str,
) -> aws_lambda_events::sqs::SqsMessage {
    let mut record = aws_lambda_events::sqs::SqsMessage::default();
    record.message_id = m.message_id;
    record.receipt_handle = m.receipt_handle;
    record.body = m.body;
    record.md5_of_body = m.md5_of_body;
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue_url.to_string());
    record.aws_region = Some(REGION.into());
    record.attributes = m
        .attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect();
    record
}
