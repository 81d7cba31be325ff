//! Secrets Manager secrets: those that hold the database credentials get the local database's;
//! generated ones keep their values from one run to the next. Also the CloudFormation dynamic
//! references (`{{resolve:secretsmanager:...}}`) to them.

use super::{err, name_of, text, wanted, Database, Provisioned};
use crate::template::{Physical, Resolver};
use aws_config::SdkConfig;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// What the secrets hold: the database's credentials for `database_secrets` (logical ids).
pub(super) struct Values<'a> {
    pub db: &'a Database<'a>,
    pub database_secrets: &'a BTreeSet<String>,
}

/// Creates (or updates) every secret; generated values are taken from, and added to,
/// `generated_values`.
pub(super) async fn create(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
    values: &Values<'_>,
    generated_values: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let secrets = aws_sdk_secretsmanager::Client::new(aws);
    for (id, props) in wanted(resolver, "AWS::SecretsManager::Secret")? {
        let name = name_of(resolver, &id, &props, "Name")?;
        let is_database = values.database_secrets.contains(&id);
        let value = secret_value(
            resolver,
            &id,
            &props,
            is_database.then_some(values.db),
            generated_values,
        )?;
        let arn = put(&secrets, &name, &value).await?;
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
    Ok(())
}

/// The value of one secret: its `SecretString`, else generated as `GenerateSecretString` says
/// (with the database's user and password for a database secret).
fn secret_value(
    resolver: &Resolver<'_>,
    id: &str,
    props: &Value,
    database: Option<&Database<'_>>,
    generated_values: &mut BTreeMap<String, String>,
) -> Result<String, String> {
    Ok(match props.get("SecretString") {
        Some(v) => resolver.string(v)?,
        None => {
            let generate = &props["GenerateSecretString"];
            let mut generated = || {
                let length = generate["PasswordLength"].as_u64().unwrap_or(32) as usize;
                generated_values
                    .entry(id.to_string())
                    .or_insert_with(|| random_text(length))
                    .clone()
            };
            match generate["GenerateStringKey"].as_str() {
                Some(key) => {
                    let mut object: Map<String, Value> = generate["SecretStringTemplate"]
                        .as_str()
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or_default();
                    if let Some(db) = database {
                        if object.contains_key("username") {
                            object.insert("username".into(), db.user.into());
                        }
                        object.insert(key.into(), db.password.into());
                    } else {
                        object.insert(key.into(), generated().into());
                    }
                    Value::Object(object).to_string()
                }
                None => match database {
                    Some(db) => db.password.to_string(),
                    None => generated(),
                },
            }
        }
    })
}

/// Creates the secret, or gives an existing one this value; returns its ARN.
async fn put(
    secrets: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<String, String> {
    Ok(
        match secrets
            .create_secret()
            .name(name)
            .secret_string(value)
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
                    .secret_id(name)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(err("PutSecretValue"))?
                    .arn
                    .unwrap_or_default()
            }
            Err(e) => return Err(err("CreateSecret")(e)),
        },
    )
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
