//! Creates, in moto (or whatever `AWS_ENDPOINT_URL` points at), the resources the template
//! declares that the functions talk to: DynamoDB tables (with their indexes), S3 buckets, SNS
//! topics and their SQS subscriptions, SQS queues (with their redrive policies) and Secrets
//! Manager secrets. Names are `<stack>-<logical-id-in-kebab-case>` unless the template names
//! the resource. Creating is idempotent, so an existing moto can be reused.
//!
//! Every created resource gets its `Ref` / `Fn::GetAtt` values in the [`Resolver`], which then
//! resolves the functions' environment variables.
//!
//! The phases, in order: [`secrets`], [`storage`] (DynamoDB tables, S3 buckets) and
//! [`messaging`] (SNS topics, SQS queues and their attributes, SNS subscriptions); each later
//! phase may refer to what an earlier one created.

mod messaging;
mod secrets;
mod storage;

pub use secrets::{random_text, resolve_dynamic};

use crate::template::{kebab, Physical, Resolver};
use aws_config::SdkConfig;
use serde_json::Value;
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

/// `what: <the SDK error with its causes>`, for `map_err`.
pub(crate) fn err<E: std::error::Error>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| {
        format!(
            "{what}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        )
    }
}

/// A scalar as text (`"5"`, `"true"`), as AWS APIs take attribute values.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The name a resource gets: the template's `key` property, else `<stack>-<logical-id>`.
fn name_of(resolver: &Resolver<'_>, id: &str, props: &Value, key: &str) -> Result<String, String> {
    match props.get(key) {
        Some(v) => resolver.string(v),
        None => Ok(format!("{}-{}", resolver.stack_name, kebab(id))),
    }
}

/// The resources of one type whose condition holds, with their properties.
fn wanted(resolver: &Resolver<'_>, kind: &str) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    for (id, resource) in resolver.template.resources_of(kind) {
        if resolver.is_created(resource)? {
            out.push((id.to_string(), resource["Properties"].clone()));
        }
    }
    Ok(out)
}

/// Sets the `Ref`/`GetAtt` values of resources that are not created but stand for local
/// things: the database endpoints (RDS instance, cluster, proxy).
pub fn describe_database(resolver: &mut Resolver<'_>, db: &Database<'_>) {
    let ids: Vec<(String, String)> = resolver
        .template
        .resources()
        .filter_map(|(id, r)| Some((id.to_string(), r["Type"].as_str()?.to_string())))
        .collect();
    let arn_prefix = format!("arn:aws:rds:{}:{}", resolver.region, resolver.account_id);
    for (id, kind) in ids {
        let physical = match kind.as_str() {
            "AWS::RDS::DBProxy" => Physical::new(kebab(&id)).with("Endpoint", db.host).with(
                "DBProxyArn",
                format!("{arn_prefix}:db-proxy:prx-{}", kebab(&id)),
            ),
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
    let mut done = Provisioned::default();
    secrets::create(
        aws,
        resolver,
        &mut done,
        &secrets::Values {
            db,
            database_secrets,
        },
        generated_values,
    )
    .await?;
    storage::create_tables(aws, resolver, &mut done).await?;
    storage::create_buckets(aws, resolver, &mut done).await?;
    messaging::create_topics(aws, resolver, &mut done).await?;
    messaging::create_queues(aws, resolver, &mut done, visibility_override).await?;
    messaging::subscribe(aws, resolver, &mut done).await?;
    Ok(done)
}

/// Gives every function its local name (`<stack>-<binary>`) and ARN.
pub fn describe_functions(resolver: &mut Resolver<'_>, defs: &[crate::template::FunctionDef]) {
    for def in defs {
        let name = format!("{}-{}", resolver.stack_name, def.binary);
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            resolver.region, resolver.account_id
        );
        resolver
            .physical
            .insert(def.logical_id.clone(), Physical::new(name).with("Arn", arn));
    }
}

/// The logical ids of the secrets that hold the database credentials: the proxy's, and any a
/// function reads its password from (`DB_SECRET_ARN`). Locally they hold the local database's.
pub fn database_secrets(
    template: &crate::template::Template,
    defs: &[crate::template::FunctionDef],
) -> BTreeSet<String> {
    let proxy_secrets = template
        .resources_of("AWS::RDS::DBProxy")
        .into_iter()
        .flat_map(|(_, proxy)| {
            proxy["Properties"]["Auth"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|auth| crate::template::referenced_id(&auth["SecretArn"]).map(str::to_string));
    defs.iter()
        .filter_map(|d| d.env.get("DB_SECRET_ARN"))
        .filter_map(|v| crate::template::referenced_id(v).map(str::to_string))
        .chain(proxy_secrets)
        .collect()
}
