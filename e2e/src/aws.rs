//! The AWS side of a test system: moto started as the local runner starts it, the resources
//! created from `template.yaml` by the runner's provisioning (so that the table, bucket, topic,
//! queues and subscription exist only in the template), and, as in the runner, IAM enforced:
//! each function's template role created and assumed, and moto checking every call
//! (`LOCAL_NO_IAM=1` turns it off).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use orders_local::iam::{self, Principal};
use orders_local::moto::LocalMoto;
use orders_local::provision::{self, Database};
use orders_local::template::{Resolver, Template};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// moto, started as the local runner starts it.
pub struct Moto {
    pub server: LocalMoto,
    /// The admin user the harness provisions with, under IAM enforcement.
    pub admin: Option<Principal>,
}

impl Moto {
    /// Starts moto on a free port (its log goes to the system's temp dir). A port found free
    /// can be taken before moto binds it (tests and other processes pick ports side by side),
    /// so a failed start is tried again on another port.
    pub async fn start() -> Self {
        let logs = std::env::temp_dir().join("orders-cqrs-e2e");
        std::fs::create_dir_all(&logs).expect("log dir");
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = crate::free_port();
            let log = logs.join(format!("moto-{}-{port}.log", std::process::id()));
            match LocalMoto::start(&crate::workspace_root(), port, &log).await {
                Ok(server) => {
                    return Self {
                        server,
                        admin: None,
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        panic!("moto: {failures:?} (run scripts/bootstrap; the README's test command does)")
    }

    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// SDK configuration that talks to this server (as the admin, under IAM enforcement).
    pub async fn sdk_config(&self) -> SdkConfig {
        let config = sdk_config_for(&self.endpoint()).await;
        match &self.admin {
            Some(admin) => admin.sdk_config(&config),
            None => config,
        }
    }

    /// Creates the admin user (before moto checks anything) and provisions as it from now on.
    pub async fn create_admin(&mut self, stack: &str) {
        let unchecked = sdk_config_for(&self.endpoint()).await;
        let admin = iam::create_admin(&unchecked, stack, orders_local::runner::ACCOUNT_ID)
            .await
            .unwrap_or_else(|e| panic!("IAM admin: {e}"));
        self.admin = Some(admin);
    }

    /// The environment a process (`orders-admin`, as an operator) needs to talk to this
    /// server.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(admin) = &self.admin {
            env.retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY");
            env.extend(admin.env());
        }
        env
    }
}

/// Whether IAM is enforced (the default; `LOCAL_NO_IAM=1` turns it off, as for the runner).
pub fn iam_enforced() -> bool {
    !std::env::var("LOCAL_NO_IAM").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Each function's role session, by binary (empty without IAM enforcement).
#[derive(Debug, Clone, Default)]
pub struct Roles(pub BTreeMap<String, Principal>);

impl Roles {
    /// `config` as the function `binary` would call AWS: with its role session.
    pub fn config_of(&self, binary: &str, config: &SdkConfig) -> SdkConfig {
        match self.0.get(binary) {
            Some(role) => role.sdk_config(config),
            None => config.clone(),
        }
    }
}

/// SDK configuration for this endpoint with dummy credentials.
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

/// Test settings on top of the template's resources.
#[derive(Debug, Clone, Copy)]
pub struct Variation {
    /// SNS raw message delivery on the queue's subscription (the template turns it on; tests
    /// of the SNS envelope turn it off).
    pub raw_delivery: bool,
    /// The queue's visibility timeout, short so that a failed record comes back soon.
    pub visibility_timeout_secs: u32,
}

/// Creates the template's resources in moto with the runner's provisioning (names prefixed
/// with `stack`), and returns those the system under test uses: the updater's table and
/// bucket, the command's topic, and the queue the updater's event source mapping polls. With
/// `moto.admin` set, then creates each function's role, assumes it and turns moto's access
/// control on.
pub async fn deploy(
    moto: &Moto,
    stack: &str,
    db: &Database<'_>,
    variation: Variation,
) -> (Resources, Roles) {
    let aws = &moto.sdk_config().await;
    let path = crate::workspace_root().join("template.yaml");
    let template = Template::load(&path).expect("template.yaml");
    let defs = template.functions().expect("the template's functions");
    let mut resolver = Resolver::new(&template, REGION, orders_local::runner::ACCOUNT_ID, stack);
    provision::describe_database(&mut resolver, db);
    provision::describe_functions(&mut resolver, &defs);
    let provisioned = provision::provision(
        aws,
        &mut resolver,
        db,
        &provision::database_secrets(&template, &defs),
        &mut BTreeMap::new(),
        Some(variation.visibility_timeout_secs),
    )
    .await
    .unwrap_or_else(|e| panic!("provisioning from template.yaml: {e}"));
    let variable = |name: &str| {
        defs.iter()
            .filter_map(|d| d.env.get(name))
            .find_map(|v| resolver.string(v).ok())
            .unwrap_or_else(|| panic!("no function in template.yaml sets {name}"))
    };
    let mapping = defs
        .iter()
        .flat_map(|d| &d.sqs)
        .next()
        .expect("an SQS event source mapping in template.yaml");
    let queue = &provisioned.queues[&mapping.queue];
    let topic_arn = variable("ORDER_EVENTS_TOPIC_ARN");
    set_raw_delivery(aws, &resolver, &queue.arn, variation.raw_delivery).await;
    let roles = match moto.admin {
        Some(_) => function_roles(moto, aws, &resolver, &defs).await,
        None => Roles::default(),
    };
    let resources = Resources {
        table: variable("ORDERS_TABLE"),
        bucket: variable("RECEIPTS_BUCKET"),
        topic_arn,
        queue_url: queue.url.clone(),
        dlq_url: queue
            .dead_letter_queue_url
            .clone()
            .expect("the queue's dead-letter queue"),
    };
    (resources, roles)
}

/// The template after the SAM transform (once per test binary).
async fn expanded() -> Template {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(text) = TEXT.get() {
        return Template::parse(text).expect("expanded template");
    }
    let root = crate::workspace_root();
    let text = iam::expanded_text(&root, &root.join("template.yaml"), REGION)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = TEXT.set(text.clone());
    Template::parse(&text).expect("expanded template")
}

/// Each function's role, as the runner creates it; then moto's access control on.
async fn function_roles(
    moto: &Moto,
    aws: &SdkConfig,
    resolver: &Resolver<'_>,
    defs: &[orders_local::template::FunctionDef],
) -> Roles {
    let expanded = expanded().await;
    let functions: Vec<String> = defs.iter().map(|d| d.logical_id.clone()).collect();
    let (sessions, _) = iam::create_function_roles(
        aws,
        &expanded,
        &resolver.physical,
        (
            REGION,
            orders_local::runner::ACCOUNT_ID,
            &resolver.stack_name,
        ),
        &functions,
    )
    .await
    .unwrap_or_else(|e| panic!("IAM roles: {e}"));
    iam::enforce(&moto.endpoint())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Roles(
        defs.iter()
            .filter_map(|d| Some((d.binary.clone(), sessions.get(&d.logical_id)?.clone())))
            .collect(),
    )
}

/// Sets `RawMessageDelivery` on the subscriptions that deliver to `queue_arn`.
async fn set_raw_delivery(aws: &SdkConfig, resolver: &Resolver<'_>, queue_arn: &str, raw: bool) {
    let sns = aws_sdk_sns::Client::new(aws);
    let mut found = false;
    for (id, resource) in resolver.template.resources_of("AWS::SNS::Subscription") {
        let endpoint = resolver.string(&resource["Properties"]["Endpoint"]);
        let Some(physical) = resolver.physical.get(id) else {
            continue;
        };
        if endpoint.as_deref() != Ok(queue_arn) {
            continue;
        }
        let arn = physical.reference.as_str().expect("subscription ARN");
        sns.set_subscription_attributes()
            .subscription_arn(arn)
            .attribute_name("RawMessageDelivery")
            .attribute_value(raw.to_string())
            .send()
            .await
            .expect("set RawMessageDelivery");
        found = true;
    }
    assert!(
        found,
        "no subscription in template.yaml delivers to {queue_arn}"
    );
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
            .message_attribute_names("All")
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
    record.message_attributes = m
        .message_attributes
        .unwrap_or_default()
        .into_iter()
        .map(|(name, value)| {
            let mut attribute = aws_lambda_events::sqs::SqsMessageAttribute::default();
            attribute.data_type = Some(value.data_type);
            attribute.string_value = value.string_value;
            (name, attribute)
        })
        .collect();
    record
}
