//! IAM enforced locally, from the template: every function runs as its own role, with exactly
//! the policies the deployed role gets, and moto checks every call against them.
//!
//! The template is expanded as CloudFormation expands it (`scripts/expand-template`, the SAM
//! transform), so policy templates such as `SNSPublishMessagePolicy` become the statements AWS
//! deploys. Then, while moto still accepts anything:
//! 1. an admin user is created (allowed everything); the runner provisions with it;
//! 2. each function's role is created with its inline policies (intrinsics resolved by the
//!    runner's [`Resolver`]), its customer managed policies and the AWS managed policy ARNs it
//!    attaches, and is assumed as Lambda assumes it (`sts:AssumeRole`, after checking that its
//!    trust policy lets `lambda.amazonaws.com` in), giving the function's session credentials;
//! 3. moto's access control is switched on (`/moto-api/reset-auth` with 0 unchecked actions).
//!
//! moto checks the action of every call against the caller's policies; it does not check
//! resources or conditions (see docs/LOCAL.md, and the static checks in scripts/lint-template).

use crate::provision::err;
use crate::template::{kebab, referenced_id, Physical, Resolver, Template};
use aws_config::SdkConfig;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Session credentials of one principal.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The role's (or user's) ARN, for messages.
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl Principal {
    /// These credentials as an SDK credentials provider.
    pub fn credentials(&self) -> aws_sdk_sts::config::Credentials {
        aws_sdk_sts::config::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "orders-local-iam",
        )
    }

    /// `config` with these credentials instead of its own.
    pub fn sdk_config(&self, config: &SdkConfig) -> SdkConfig {
        config
            .to_builder()
            .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                self.credentials(),
            ))
            .build()
    }

    /// The environment variables Lambda sets for a function's role session.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_string(), token.clone()));
        }
        env
    }
}

/// The template after the SAM transform, as CloudFormation deploys it.
pub async fn expand(root: &Path, template: &Path, region: &str) -> Result<Template, String> {
    Template::parse(&expanded_text(root, template, region).await?)
}

/// [`expand`]'s JSON text (`scripts/expand-template`).
pub async fn expanded_text(root: &Path, template: &Path, region: &str) -> Result<String, String> {
    let script = root.join("scripts/expand-template");
    let output = tokio::process::Command::new(&script)
        .arg("--template")
        .arg(template)
        .arg("--param")
        .arg(format!("AWS::Region={region}"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| e.to_string())
}

/// Creates the admin user the runner provisions with (moto must not be checking yet).
pub async fn create_admin(
    unchecked: &SdkConfig,
    stack: &str,
    account: &str,
) -> Result<Principal, String> {
    let iam = aws_sdk_iam::Client::new(unchecked);
    let name = format!("{stack}-admin");
    iam.create_user()
        .user_name(&name)
        .send()
        .await
        .map_err(err("iam:CreateUser"))?;
    let allow_all = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    });
    iam.put_user_policy()
        .user_name(&name)
        .policy_name("administrator")
        .policy_document(allow_all.to_string())
        .send()
        .await
        .map_err(err("iam:PutUserPolicy"))?;
    let key = iam
        .create_access_key()
        .user_name(&name)
        .send()
        .await
        .map_err(err("iam:CreateAccessKey"))?
        .access_key
        .ok_or("iam:CreateAccessKey returned no key")?;
    Ok(Principal {
        arn: format!("arn:aws:iam::{account}:user/{name}"),
        access_key_id: key.access_key_id().to_string(),
        secret_access_key: key.secret_access_key().to_string(),
        session_token: None,
    })
}

/// The roles to create: for each function (logical id), the logical id of its role in the
/// expanded template.
pub fn function_roles(
    expanded: &Template,
    functions: &[String],
) -> Result<BTreeMap<String, String>, String> {
    let mut roles = BTreeMap::new();
    for function in functions {
        let resource = expanded
            .resource(function)
            .ok_or_else(|| format!("{function} is not in the expanded template"))?;
        let role = referenced_id(&resource["Properties"]["Role"])
            .filter(|id| expanded.resource(id).is_some())
            .ok_or_else(|| {
                format!(
                    "{function}: its role {} is not a role of this template; the runner can \
                     only run functions under roles it can create",
                    resource["Properties"]["Role"]
                )
            })?;
        roles.insert(function.clone(), role.to_string());
    }
    Ok(roles)
}

/// Checks that a role's trust policy lets Lambda assume it (moto does not evaluate a service
/// principal's `sts:AssumeRole`).
fn trusts_lambda(trust: &Value) -> bool {
    let as_list = |v: &Value| match v {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    as_list(&trust["Statement"]).iter().any(|statement| {
        statement["Effect"] == "Allow"
            && as_list(&statement["Action"])
                .iter()
                .any(|a| a == "sts:AssumeRole")
            && as_list(&statement["Principal"]["Service"])
                .iter()
                .any(|s| s == "lambda.amazonaws.com")
    })
}

/// Creates each function's role in moto, with its policies, and assumes it. `physical` are
/// the names and ARNs of what the runner created (for the policies' intrinsics). Returns the
/// session of each function (by logical id) and one line per role for the start-up summary.
pub async fn create_function_roles(
    admin: &SdkConfig,
    expanded: &Template,
    physical: &HashMap<String, Physical>,
    (region, account, stack): (&str, &str, &str),
    functions: &[String],
) -> Result<(BTreeMap<String, Principal>, Vec<String>), String> {
    let mut resolver = Resolver::new(expanded, region, account, stack);
    resolver.physical = physical.clone();
    let iam = aws_sdk_iam::Client::new(admin);
    let sts = aws_sdk_sts::Client::new(admin);
    create_managed_policies(&iam, &mut resolver).await?;
    let mut sessions = BTreeMap::new();
    let mut lines = Vec::new();
    for (function, role_id) in function_roles(expanded, functions)? {
        let props = &expanded.resource(&role_id).expect("checked")["Properties"];
        let role = Role::from_template(&resolver, &role_id, props)?;
        if !trusts_lambda(&role.trust) {
            return Err(format!(
                "{role_id}: its trust policy does not let lambda.amazonaws.com assume it, so \
                 {function} could not run under it"
            ));
        }
        let arn = role.create(&iam).await?;
        let session = sts
            .assume_role()
            .role_arn(&arn)
            .role_session_name(format!("{stack}-{}", kebab(&function)))
            .send()
            .await
            .map_err(err("sts:AssumeRole"))?
            .credentials
            .ok_or("sts:AssumeRole returned no credentials")?;
        lines.push(format!(
            "{function} runs as role {} ({} inline, {} managed polic{})",
            role.name,
            role.inline.len(),
            role.managed.len(),
            if role.managed.len() == 1 { "y" } else { "ies" }
        ));
        sessions.insert(
            function,
            Principal {
                arn,
                access_key_id: session.access_key_id().to_string(),
                secret_access_key: session.secret_access_key().to_string(),
                session_token: Some(session.session_token().to_string()),
            },
        );
    }
    Ok((sessions, lines))
}

/// Creates the template's customer managed policies (`AWS::IAM::ManagedPolicy`), so that roles
/// can attach them by `Ref`.
async fn create_managed_policies(
    iam: &aws_sdk_iam::Client,
    resolver: &mut Resolver<'_>,
) -> Result<(), String> {
    for (id, resource) in resolver.template.resources_of("AWS::IAM::ManagedPolicy") {
        let props = &resource["Properties"];
        let name = match props.get("ManagedPolicyName") {
            Some(v) => resolver.string(v)?,
            None => format!("{}-{}", resolver.stack_name, kebab(id)),
        };
        let document = for_moto(resolver.value(&props["PolicyDocument"])?);
        let arn = iam
            .create_policy()
            .policy_name(&name)
            .policy_document(document.to_string())
            .send()
            .await
            .map_err(err("iam:CreatePolicy"))?
            .policy
            .and_then(|p| p.arn)
            .ok_or("iam:CreatePolicy returned no ARN")?;
        resolver.physical.insert(
            id.to_string(),
            Physical::new(arn.clone()).with("PolicyArn", arn),
        );
    }
    Ok(())
}

/// The document with `"Version": "2012-10-17"` when it names none. The statements SAM's policy
/// templates expand to carry no version, which IAM accepts (as the 2008 language, the same for
/// documents without policy variables) and moto refuses.
fn with_version(mut document: Value) -> Value {
    if let Some(object) = document.as_object_mut() {
        object
            .entry("Version")
            .or_insert_with(|| Value::String("2012-10-17".into()));
    }
    document
}

/// Services whose calls moto checks against a statement's `Resource` (the object or bucket
/// ARN, the queue ARN). For every other service moto compares the statement with `*`, so a
/// statement naming a table or a topic would never match.
const RESOURCE_CHECKED: &[&str] = &["s3", "sqs"];

/// Actions AWS authorizes under another action's name, and moto under their API's name:
/// (the API's action, the action a policy grants for it).
/// SQS's batch APIs have no IAM actions of their own (the SQS developer guide: a batch needs the
/// permission of its single action); the event source mapping deletes with DeleteMessageBatch
/// under the role's `sqs:DeleteMessage`.
const AUTHORIZED_AS: &[(&str, &str)] = &[
    ("sns:PublishBatch", "sns:Publish"),
    ("sqs:DeleteMessageBatch", "sqs:DeleteMessage"),
    ("sqs:SendMessageBatch", "sqs:SendMessage"),
    (
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:ChangeMessageVisibility",
    ),
];

/// The document as moto can enforce it: statements whose actions belong to a service moto
/// does not resolve resources for get `Resource: "*"` (their actions are still checked; the
/// resource is checked statically by scripts/lint-template), and a statement granting an
/// action also grants the APIs AWS authorizes under it ([`AUTHORIZED_AS`]).
fn for_moto(document: Value) -> Value {
    let mut document = with_version(document);
    let statements = match &mut document["Statement"] {
        Value::Array(items) => items.iter_mut().collect::<Vec<_>>(),
        Value::Object(_) => vec![&mut document["Statement"]],
        _ => Vec::new(),
    };
    for statement in statements {
        let actions: Vec<String> = match &statement["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            _ => continue,
        };
        let implied: Vec<Value> = AUTHORIZED_AS
            .iter()
            .filter(|(api, granted)| {
                actions.iter().any(|a| a == granted) && !actions.iter().any(|a| a == api)
            })
            .map(|(api, _)| Value::String(api.to_string()))
            .collect();
        if !implied.is_empty() {
            let mut all: Vec<Value> = actions.iter().cloned().map(Value::String).collect();
            all.extend(implied);
            statement["Action"] = Value::Array(all);
        }
        let resource_checked = actions.iter().all(|action| {
            let service = action.split(':').next().unwrap_or_default();
            RESOURCE_CHECKED.contains(&service)
        });
        if !resource_checked && statement.get("Resource").is_some() {
            statement["Resource"] = Value::String("*".into());
        }
    }
    document
}

/// One role as the template declares it, intrinsics resolved.
struct Role {
    name: String,
    trust: Value,
    /// (policy name, document)
    inline: Vec<(String, Value)>,
    managed: Vec<String>,
}

impl Role {
    fn from_template(resolver: &Resolver<'_>, id: &str, props: &Value) -> Result<Self, String> {
        let name = match props.get("RoleName") {
            Some(v) => resolver.string(v)?,
            None => format!("{}-{id}", resolver.stack_name),
        };
        let trust = resolver.value(&props["AssumeRolePolicyDocument"])?;
        let mut inline = Vec::new();
        for policy in resolver
            .value(&props["Policies"])?
            .as_array()
            .into_iter()
            .flatten()
        {
            let policy_name = policy["PolicyName"]
                .as_str()
                .ok_or_else(|| format!("{id}: a policy without PolicyName"))?;
            inline.push((
                policy_name.to_string(),
                for_moto(policy["PolicyDocument"].clone()),
            ));
        }
        let managed = resolver
            .value(&props["ManagedPolicyArns"])?
            .as_array()
            .into_iter()
            .flatten()
            .map(|arn| {
                arn.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{id}: managed policy {arn} is not an ARN"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name,
            trust,
            inline,
            managed,
        })
    }

    /// Creates it with its policies; returns its ARN.
    async fn create(&self, iam: &aws_sdk_iam::Client) -> Result<String, String> {
        let arn = iam
            .create_role()
            .role_name(&self.name)
            .assume_role_policy_document(self.trust.to_string())
            .send()
            .await
            .map_err(err("iam:CreateRole"))?
            .role
            .map(|r| r.arn().to_string())
            .ok_or("iam:CreateRole returned no role")?;
        for (policy_name, document) in &self.inline {
            iam.put_role_policy()
                .role_name(&self.name)
                .policy_name(policy_name)
                .policy_document(document.to_string())
                .send()
                .await
                .map_err(err("iam:PutRolePolicy"))?;
        }
        for policy_arn in &self.managed {
            iam.attach_role_policy()
                .role_name(&self.name)
                .policy_arn(policy_arn)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "{}: attaching {policy_arn}: {}",
                        self.name,
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
        }
        Ok(arn)
    }
}

/// Switches moto's access control on: from now on every call is checked against the caller's
/// policies.
pub async fn enforce(endpoint: &str) -> Result<(), String> {
    reset_auth(endpoint, "0").await
}

/// `POST /moto-api/reset-auth`: how many calls moto lets through unchecked from now on.
async fn reset_auth(endpoint: &str, unchecked_actions: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("{endpoint}: only http:// endpoints can be switched"))?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("moto at {address}: {e}"))?;
    let request = format!(
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\
         Content-Type: text/plain\r\nConnection: close\r\n\r\n{unchecked_actions}",
        unchecked_actions.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("moto at {address}: {e}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|e| format!("moto at {address}: {e}"))?;
    if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "moto did not switch its access control: {}",
            answer.lines().next().unwrap_or_default()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_without_a_version_get_the_current_one() {
        let bare = json!({"Statement": []});
        assert_eq!(with_version(bare)["Version"], "2012-10-17");
        let old = json!({"Version": "2008-10-17", "Statement": []});
        assert_eq!(with_version(old)["Version"], "2008-10-17");
    }

    #[test]
    fn statements_moto_cannot_match_by_resource_are_widened_to_their_actions() {
        let document = json!({"Statement": [
            {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "arn:aws:dynamodb:r:1:table/t"},
            {"Effect": "Allow", "Action": ["sns:Publish"], "Resource": "arn:aws:sns:r:1:topic"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/receipts/*"},
            {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"], "Resource": "arn:aws:sqs:r:1:q"}
        ]});
        let moto = for_moto(document);
        assert_eq!(moto["Version"], "2012-10-17");
        assert_eq!(moto["Statement"][0]["Resource"], "*");
        assert_eq!(moto["Statement"][0]["Action"], "dynamodb:GetItem");
        assert_eq!(moto["Statement"][1]["Resource"], "*");
        assert_eq!(
            moto["Statement"][1]["Action"],
            json!(["sns:Publish", "sns:PublishBatch"])
        );
        assert_eq!(
            moto["Statement"][2]["Resource"],
            "arn:aws:s3:::b/receipts/*"
        );
        assert_eq!(moto["Statement"][3]["Resource"], "arn:aws:sqs:r:1:q");
    }

    #[test]
    fn a_role_must_trust_lambda() {
        let lambda = json!({"Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole"],
            "Principal": {"Service": ["lambda.amazonaws.com"]}}]});
        assert!(trusts_lambda(&lambda));
        let single = json!({"Statement": {"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "lambda.amazonaws.com"}}});
        assert!(trusts_lambda(&single));
        let rds = json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "rds.amazonaws.com"}}]});
        assert!(!trusts_lambda(&rds));
        let denied = json!({"Statement": [{"Effect": "Deny", "Action": "sts:AssumeRole",
            "Principal": {"Service": "lambda.amazonaws.com"}}]});
        assert!(!trusts_lambda(&denied));
    }

    #[test]
    fn functions_map_to_their_roles_in_the_expanded_template() {
        let expanded = Template::parse(
            r#"{"Resources": {
                "Api": {"Type": "AWS::Lambda::Function",
                        "Properties": {"Role": {"Fn::GetAtt": ["ApiRole", "Arn"]}}},
                "ApiRole": {"Type": "AWS::IAM::Role", "Properties": {}},
                "Other": {"Type": "AWS::Lambda::Function",
                          "Properties": {"Role": "arn:aws:iam::1:role/elsewhere"}}
            }}"#,
        )
        .unwrap();
        let roles = function_roles(&expanded, &["Api".into()]).unwrap();
        assert_eq!(roles["Api"], "ApiRole");
        assert!(function_roles(&expanded, &["Other".into()]).is_err());
        assert!(function_roles(&expanded, &["Missing".into()]).is_err());
    }
}
