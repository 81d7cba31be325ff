//! Creates, in moto (or whatever `AWS_ENDPOINT_URL` points at), the resources the template
//! declares that the functions talk to: DynamoDB tables (with their indexes), S3 buckets, SNS
//! topics and their SQS subscriptions, SQS queues (with their redrive policies) and Secrets
//! Manager secrets. Names are `<stack>-<logical-id-in-kebab-case>` unless the template names
//! the resource. Creating is idempotent, so an existing moto can be reused.
//!
//! Every created resource gets its `Ref` / `Fn::GetAtt` values in the [`Resolver`], which then
//! resolves the functions' environment variables.

use crate::template::{kebab, Physical, Resolver};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ProvisionedThroughput, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A queue as created locally.
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
    pub visibility_timeout: Option<String>,
    pub max_receive_count: Option<String>,
    /// Name and URL of the redrive target.
    pub dead_letter_queue: Option<String>,
    pub dead_letter_queue_url: Option<String>,
}

/// The database the secrets and DB endpoints stand for.
pub struct Database<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
}

/// What was created.
#[derive(Debug, Default)]
pub struct Provisioned {
    /// One line per resource, for the start-up summary.
    pub lines: Vec<String>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, Queue>,
    /// Secret values by ARN and by name, for `{{resolve:secretsmanager:...}}` references.
    pub secret_values: HashMap<String, String>,
}

/// Letters and digits from the system's random source (for generated secrets).
pub fn random_text(length: usize) -> String {
    let mut out = String::new();
    while out.len() < length {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(length.max(1));
    out
}

/// Replaces CloudFormation dynamic references to Secrets Manager
/// (`{{resolve:secretsmanager:<arn or name>:SecretString[:<json key>[:...]]}}`) with the values
/// of the local secrets.
pub fn resolve_dynamic(text: &str, secrets: &HashMap<String, String>) -> Result<String, String> {
    const START: &str = "{{resolve:";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(START) {
        out.push_str(&rest[..start]);
        let after = &rest[start + START.len()..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed dynamic reference in {text:?}"))?;
        let reference = &after[..end];
        let Some(inner) = reference.strip_prefix("secretsmanager:") else {
            return Err(format!(
                "{{{{resolve:{reference}}}}} is not supported locally"
            ));
        };
        let (id, selector) = match inner.split_once(":SecretString") {
            Some((id, selector)) => (id, selector),
            None => (inner, ""),
        };
        let value = secrets
            .get(id)
            .ok_or_else(|| format!("secret {id} is not a local secret"))?;
        match selector
            .trim_start_matches(':')
            .split(':')
            .next()
            .filter(|k| !k.is_empty())
        {
            None => out.push_str(value),
            Some(key) => {
                let json: Value = serde_json::from_str(value)
                    .map_err(|_| format!("secret {id} is not JSON (asked for key {key})"))?;
                let field = json
                    .get(key)
                    .and_then(text_of)
                    .ok_or_else(|| format!("secret {id} has no key {key}"))?;
                out.push_str(&field);
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn text_of(value: &Value) -> Option<String> {
    text(value)
}

fn err<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| {
        format!(
            "{what}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        )
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Sets the `Ref`/`GetAtt` values of resources that are not created but stand for local
/// things: the database endpoints (RDS instance, cluster, proxy).
pub fn describe_database(resolver: &mut Resolver<'_>, db: &Database<'_>) {
    let ids: Vec<(String, String)> = resolver
        .template
        .resources()
        .filter_map(|(id, r)| Some((id.to_string(), r["Type"].as_str()?.to_string())))
        .collect();
    for (id, kind) in ids {
        let physical = match kind.as_str() {
            "AWS::RDS::DBProxy" => Physical::new(kebab(&id)).with("Endpoint", db.host),
            "AWS::RDS::DBInstance" | "AWS::RDS::DBCluster" => Physical::new(kebab(&id))
                .with("Endpoint.Address", db.host)
                .with("Endpoint.Port", db.port.to_string())
                .with("ReadEndpoint.Address", db.host),
            _ => continue,
        };
        resolver.physical.insert(id, physical);
    }
}

/// Creates the resources. `database_secrets` are the logical ids of the secrets that hold the
/// database credentials; other generated secret values are taken from, and added to,
/// `generated_values` (so that they stay the same from one run to the next).
pub async fn provision(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    db: &Database<'_>,
    database_secrets: &BTreeSet<String>,
    generated_values: &mut BTreeMap<String, String>,
    visibility_override: Option<u32>,
) -> Result<Provisioned, String> {
    let template = resolver.template;
    let stack = resolver.stack_name.clone();
    let region = resolver.region.clone();
    let account = resolver.account_id.clone();
    let mut done = Provisioned::default();
    let name_of =
        |resolver: &Resolver<'_>, id: &str, props: &Value, key: &str| -> Result<String, String> {
            match props.get(key) {
                Some(v) => resolver.string(v),
                None => Ok(format!("{stack}-{}", kebab(id))),
            }
        };
    let wanted = |resolver: &Resolver<'_>, kind: &str| -> Result<Vec<(String, Value)>, String> {
        let mut out = Vec::new();
        for (id, resource) in template.resources_of(kind) {
            if resolver.is_created(resource)? {
                out.push((id.to_string(), resource["Properties"].clone()));
            }
        }
        Ok(out)
    };

    // Secrets Manager: the database credentials, and generated values for the others.
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    for (id, props) in wanted(resolver, "AWS::SecretsManager::Secret")? {
        let name = name_of(resolver, &id, &props, "Name")?;
        let is_database = database_secrets.contains(&id);
        let value = match props.get("SecretString") {
            Some(v) => resolver.string(v)?,
            None => {
                let generate = &props["GenerateSecretString"];
                let mut generated = || {
                    let length = generate["PasswordLength"].as_u64().unwrap_or(32) as usize;
                    generated_values
                        .entry(id.clone())
                        .or_insert_with(|| random_text(length))
                        .clone()
                };
                match generate["GenerateStringKey"].as_str() {
                    Some(key) => {
                        let mut object: Map<String, Value> = generate["SecretStringTemplate"]
                            .as_str()
                            .and_then(|t| serde_json::from_str(t).ok())
                            .unwrap_or_default();
                        if is_database {
                            if object.contains_key("username") {
                                object.insert("username".into(), db.user.into());
                            }
                            object.insert(key.into(), db.password.into());
                        } else {
                            object.insert(key.into(), generated().into());
                        }
                        Value::Object(object).to_string()
                    }
                    None if is_database => db.password.to_string(),
                    None => generated(),
                }
            }
        };
        let arn = match secrets
            .create_secret()
            .name(&name)
            .secret_string(&value)
            .send()
            .await
        {
            Ok(out) => out.arn.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                secrets
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&value)
                    .send()
                    .await
                    .map_err(err("PutSecretValue"))?
                    .arn
                    .unwrap_or_default()
            }
            Err(e) => return Err(err("CreateSecret")(e)),
        };
        done.lines.push(format!(
            "secret {name} ({})",
            if is_database {
                "the local database credentials"
            } else {
                "a generated value"
            }
        ));
        done.secret_values.insert(arn.clone(), value.clone());
        done.secret_values.insert(name, value);
        resolver
            .physical
            .insert(id, Physical::new(arn.clone()).with("Id", arn));
    }

    // DynamoDB tables.
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    for (id, props) in wanted(resolver, "AWS::DynamoDB::Table")? {
        let name = name_of(resolver, &id, &props, "TableName")?;
        let key = |v: &Value| -> Result<Vec<KeySchemaElement>, String> {
            v.as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(k["AttributeName"].as_str().unwrap_or_default())
                        .key_type(KeyType::from(k["KeyType"].as_str().unwrap_or_default()))
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect()
        };
        let projection = |v: &Value| {
            Projection::builder()
                .projection_type(ProjectionType::from(
                    v["ProjectionType"].as_str().unwrap_or("ALL"),
                ))
                .set_non_key_attributes(v["NonKeyAttributes"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                }))
                .build()
        };
        let provisioned = resolver
            .resolve(&props["BillingMode"])?
            .and_then(|v| v.as_str().map(str::to_string))
            .is_some_and(|m| m == "PROVISIONED");
        let throughput = || {
            ProvisionedThroughput::builder()
                .read_capacity_units(5)
                .write_capacity_units(5)
                .build()
                .expect("throughput")
        };
        let mut request = dynamo
            .create_table()
            .table_name(&name)
            .billing_mode(if provisioned {
                BillingMode::Provisioned
            } else {
                BillingMode::PayPerRequest
            });
        if provisioned {
            request = request.provisioned_throughput(throughput());
        }
        for attribute in resolver
            .value(&props["AttributeDefinitions"])?
            .as_array()
            .into_iter()
            .flatten()
        {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute["AttributeName"].as_str().unwrap_or_default())
                    .attribute_type(ScalarAttributeType::from(
                        attribute["AttributeType"].as_str().unwrap_or("S"),
                    ))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        request = request.set_key_schema(Some(key(&resolver.value(&props["KeySchema"])?)?));
        let mut indexes = Vec::new();
        for index in resolver
            .value(&props["GlobalSecondaryIndexes"])?
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = index["IndexName"].as_str().unwrap_or_default();
            indexes.push(name.to_string());
            let mut gsi = GlobalSecondaryIndex::builder()
                .index_name(name)
                .set_key_schema(Some(key(&index["KeySchema"])?))
                .projection(projection(&index["Projection"]));
            if provisioned {
                gsi = gsi.provisioned_throughput(throughput());
            }
            request = request.global_secondary_indexes(gsi.build().map_err(|e| e.to_string())?);
        }
        for index in resolver
            .value(&props["LocalSecondaryIndexes"])?
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = index["IndexName"].as_str().unwrap_or_default();
            indexes.push(name.to_string());
            request = request.local_secondary_indexes(
                LocalSecondaryIndex::builder()
                    .index_name(name)
                    .set_key_schema(Some(key(&index["KeySchema"])?))
                    .projection(projection(&index["Projection"]))
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        match request.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(err("CreateTable")(e)),
        }
        let indexes = if indexes.is_empty() {
            String::new()
        } else {
            format!(", index {}", indexes.join(", "))
        };
        done.lines.push(format!("DynamoDB table {name}{indexes}"));
        let arn = format!("arn:aws:dynamodb:{region}:{account}:table/{name}");
        resolver
            .physical
            .insert(id, Physical::new(name).with("Arn", arn));
    }

    // S3 buckets (path-style addressing, as moto needs).
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build(),
    );
    for (id, props) in wanted(resolver, "AWS::S3::Bucket")? {
        let name = name_of(resolver, &id, &props, "BucketName")?.to_ascii_lowercase();
        match s3.create_bucket().bucket(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_bucket_already_owned_by_you() || s.is_bucket_already_exists()
                }) => {}
            Err(e) => return Err(err("CreateBucket")(e)),
        }
        done.lines.push(format!("S3 bucket {name}"));
        let physical = Physical::new(name.clone())
            .with("Arn", format!("arn:aws:s3:::{name}"))
            .with("DomainName", format!("{name}.s3.amazonaws.com"))
            .with(
                "RegionalDomainName",
                format!("{name}.s3.{region}.amazonaws.com"),
            );
        resolver.physical.insert(id, physical);
    }

    // SNS topics.
    let sns = aws_sdk_sns::Client::new(aws);
    for (id, props) in wanted(resolver, "AWS::SNS::Topic")? {
        let fifo = resolver
            .resolve(&props["FifoTopic"])?
            .and_then(|v| text(&v))
            .is_some_and(|v| v == "true");
        let mut name = name_of(resolver, &id, &props, "TopicName")?;
        if fifo && !name.ends_with(".fifo") {
            name.push_str(".fifo");
        }
        let mut request = sns.create_topic().name(&name);
        if fifo {
            request = request.attributes("FifoTopic", "true");
        }
        let arn = request
            .send()
            .await
            .map_err(err("CreateTopic"))?
            .topic_arn
            .unwrap_or_default();
        done.lines.push(format!("SNS topic {name}"));
        resolver.physical.insert(
            id,
            Physical::new(arn.clone())
                .with("TopicArn", arn)
                .with("TopicName", name),
        );
    }

    // SQS queues: first all of them, then their attributes (a redrive policy names another
    // queue's ARN).
    let sqs = aws_sdk_sqs::Client::new(aws);
    let queues = wanted(resolver, "AWS::SQS::Queue")?;
    for (id, props) in &queues {
        let fifo = resolver
            .resolve(&props["FifoQueue"])?
            .and_then(|v| text(&v))
            .is_some_and(|v| v == "true");
        let mut name = name_of(resolver, id, props, "QueueName")?;
        if fifo && !name.ends_with(".fifo") {
            name.push_str(".fifo");
        }
        let mut request = sqs.create_queue().queue_name(&name);
        if fifo {
            request = request.attributes(QueueAttributeName::FifoQueue, "true");
        }
        let url = request
            .send()
            .await
            .map_err(err("CreateQueue"))?
            .queue_url
            .unwrap_or_default();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(err("GetQueueAttributes"))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        resolver.physical.insert(
            id.clone(),
            Physical::new(url.clone())
                .with("Arn", arn.clone())
                .with("QueueName", name.clone())
                .with("QueueUrl", url.clone()),
        );
        done.queues.insert(
            id.clone(),
            Queue {
                name,
                url,
                arn,
                visibility_timeout: None,
                max_receive_count: None,
                dead_letter_queue: None,
                dead_letter_queue_url: None,
            },
        );
    }
    for (id, props) in &queues {
        let queue = done.queues.get(id).cloned().expect("created above");
        let mut request = sqs.set_queue_attributes().queue_url(&queue.url);
        let mut any = false;
        let mut visibility = None;
        for (property, attribute) in [
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
            ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
            (
                "ReceiveMessageWaitTimeSeconds",
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            ),
            (
                "ContentBasedDeduplication",
                QueueAttributeName::ContentBasedDeduplication,
            ),
        ] {
            let mut value = resolver.resolve(&props[property])?.and_then(|v| text(&v));
            if property == "VisibilityTimeout" {
                if let Some(seconds) = visibility_override {
                    value = Some(seconds.to_string());
                }
                visibility = value.clone();
            }
            if let Some(value) = value {
                request = request.attributes(attribute, value);
                any = true;
            }
        }
        let mut max_receive_count = None;
        let mut dead_letter_queue = None;
        let mut dead_letter_queue_url = None;
        if let Some(policy) = resolver
            .resolve(&props["RedrivePolicy"])?
            .filter(Value::is_object)
        {
            max_receive_count = policy.get("maxReceiveCount").and_then(text);
            let target = policy
                .get("deadLetterTargetArn")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Some(dlq) = done.queues.values().find(|q| q.arn == target) {
                dead_letter_queue = Some(dlq.name.clone());
                dead_letter_queue_url = Some(dlq.url.clone());
            }
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
            any = true;
        }
        if any {
            request.send().await.map_err(err("SetQueueAttributes"))?;
        }
        let mut line = format!("SQS queue {}", queue.name);
        if let Some(v) = &visibility {
            line.push_str(&format!(", visibility timeout {v}s"));
        }
        if let (Some(count), Some(dlq)) = (&max_receive_count, &dead_letter_queue) {
            line.push_str(&format!(", to {dlq} after {count} receives"));
        }
        done.lines.push(line);
        let entry = done.queues.get_mut(id).expect("created above");
        entry.visibility_timeout = visibility;
        entry.max_receive_count = max_receive_count;
        entry.dead_letter_queue = dead_letter_queue;
        entry.dead_letter_queue_url = dead_letter_queue_url;
    }

    // SNS subscriptions (SQS endpoints).
    for (id, props) in wanted(resolver, "AWS::SNS::Subscription")? {
        let protocol = resolver.string(&props["Protocol"])?;
        if protocol != "sqs" {
            done.lines.push(format!(
                "skipped subscription {id} (protocol {protocol} is not emulated)"
            ));
            continue;
        }
        let topic = resolver.string(&props["TopicArn"])?;
        let endpoint = resolver.string(&props["Endpoint"])?;
        let arn = sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(&endpoint)
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(err("Subscribe"))?
            .subscription_arn
            .unwrap_or_default();
        let mut raw = false;
        for attribute in [
            "RawMessageDelivery",
            "FilterPolicy",
            "FilterPolicyScope",
            "RedrivePolicy",
        ] {
            let Some(value) = resolver.resolve(&props[attribute])? else {
                continue;
            };
            let value = match value {
                Value::Null => continue,
                Value::Object(_) | Value::Array(_) => value.to_string(),
                other => text(&other).unwrap_or_default(),
            };
            if attribute == "RawMessageDelivery" {
                raw = value == "true";
            }
            sns.set_subscription_attributes()
                .subscription_arn(&arn)
                .attribute_name(attribute)
                .attribute_value(value)
                .send()
                .await
                .map_err(err("SetSubscriptionAttributes"))?;
        }
        let queue = done
            .queues
            .values()
            .find(|q| q.arn == endpoint)
            .map(|q| q.name.clone())
            .unwrap_or(endpoint);
        let topic_name = topic.rsplit(':').next().unwrap_or_default().to_string();
        done.lines.push(format!(
            "subscription {topic_name} -> {queue}{}",
            if raw { " (raw message delivery)" } else { "" }
        ));
        resolver.physical.insert(id, Physical::new(arn));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_references_resolve_to_local_secrets() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack-db-AbCdEf";
        let secrets = HashMap::from([
            (
                arn.to_string(),
                r#"{"username":"orders","password":"pw"}"#.to_string(),
            ),
            ("stack-key".to_string(), "k3y".to_string()),
        ]);
        let text = format!("{{{{resolve:secretsmanager:{arn}:SecretString:password}}}}");
        assert_eq!(resolve_dynamic(&text, &secrets).unwrap(), "pw");
        assert_eq!(
            resolve_dynamic(
                "a-{{resolve:secretsmanager:stack-key:SecretString}}-b",
                &secrets
            )
            .unwrap(),
            "a-k3y-b"
        );
        assert_eq!(
            resolve_dynamic("{{resolve:secretsmanager:stack-key}}", &secrets).unwrap(),
            "k3y"
        );
        assert_eq!(resolve_dynamic("plain", &secrets).unwrap(), "plain");
        assert!(resolve_dynamic("{{resolve:ssm:/param}}", &secrets).is_err());
        assert!(
            resolve_dynamic("{{resolve:secretsmanager:other:SecretString}}", &secrets).is_err()
        );
        let missing_key = format!("{{{{resolve:secretsmanager:{arn}:SecretString:nope}}}}");
        assert!(resolve_dynamic(&missing_key, &secrets).is_err());
    }

    #[test]
    fn random_text_has_the_length_asked_for() {
        assert_eq!(random_text(64).len(), 64);
        assert_eq!(random_text(5).len(), 5);
        assert!(random_text(40).chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(random_text(32), random_text(32));
    }
}
