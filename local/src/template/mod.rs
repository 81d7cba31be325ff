//! Reading `template.yaml` (AWS SAM / CloudFormation).
//!
//! The YAML is parsed with a YAML library that keeps tags, and every short-form intrinsic
//! (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) is rewritten to its long JSON form (`{"Ref": "X"}`,
//! `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::Sub": ...}`), so the rest of the runner sees the
//! template as CloudFormation itself does. This module is the template model (resources,
//! functions, their events); [`intrinsics`] holds the [`Resolver`] that evaluates the intrinsics
//! against the local stand-ins (parameter defaults, mappings, conditions, and the names and ARNs
//! of the resources created in moto).

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub mod intrinsics;
pub use intrinsics::{kebab, Physical, Resolver};

/// Parses CloudFormation YAML (or JSON) into JSON with long-form intrinsics.
pub fn parse(text: &str) -> Result<Value, String> {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    to_json(yaml)
}

fn to_json(value: serde_yaml_ng::Value) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => {
            Value::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                out.insert(key, to_json(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!').to_string();
            let inner = to_json(tagged.value)?;
            match name.as_str() {
                "Ref" => json!({ "Ref": inner }),
                "Condition" => json!({ "Condition": inner }),
                "GetAtt" => {
                    let args = match inner {
                        // `!GetAtt Resource.Attribute` (the attribute may itself contain dots).
                        Value::String(s) => match s.split_once('.') {
                            Some((resource, attribute)) => json!([resource, attribute]),
                            None => {
                                return Err(format!("!GetAtt {s}: expected Resource.Attribute"))
                            }
                        },
                        other => other,
                    };
                    json!({ "Fn::GetAtt": args })
                }
                other => {
                    let mut object = Map::new();
                    object.insert(format!("Fn::{other}"), inner);
                    Value::Object(object)
                }
            }
        }
    })
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub root: Value,
}

/// An HTTP API route: `Method` and `Path` of an `HttpApi` event (`None` path = `$default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDef {
    pub event: String,
    pub method: String,
    pub path: Option<String>,
    pub payload_format: String,
    pub auth: RouteAuth,
}

/// Who may call a route: the event's `Auth.Authorizer` (`NONE` for nobody), else the API's
/// `Auth.DefaultAuthorizer`, looked up in the API's `Auth.Authorizers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuth {
    /// No authorizer: anyone.
    Open,
    /// A JWT authorizer (one with `JwtConfiguration`): a valid token, holding one of `scopes`
    /// when there are any (the event's `Auth.AuthorizationScopes`, else the authorizer's).
    Jwt {
        authorizer: String,
        scopes: Vec<String>,
    },
    /// An authorizer the runner does not emulate (Lambda, `AWS_IAM`).
    Unsupported { authorizer: String, kind: String },
}

/// A `Schedule` / `ScheduleV2` event.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleDef {
    pub event: String,
    pub expression: String,
    /// The JSON text to send instead of the default scheduled event.
    pub input: Option<String>,
    /// `ScheduleV2` (EventBridge Scheduler) rather than an EventBridge rule.
    pub v2: bool,
}

/// An SQS event source mapping (`AWS::Lambda::EventSourceMapping` or a SAM `SQS` event).
#[derive(Debug, Clone, PartialEq)]
pub struct SqsMappingDef {
    pub name: String,
    /// Logical id of the queue.
    pub queue: String,
    pub batch_size: i32,
    pub batching_window: Duration,
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: the most batches invoked at once (none: as many as
    /// the function's concurrency allows).
    pub max_concurrency: Option<usize>,
}

/// What the runner needs to know about one `AWS::Serverless::Function`.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Environment variables (Globals merged with the function's own), unresolved.
    pub env: BTreeMap<String, Value>,
    /// `LoggingConfig.LogFormat` / `ApplicationLogLevel`, which Lambda passes as
    /// `AWS_LAMBDA_LOG_FORMAT` / `AWS_LAMBDA_LOG_LEVEL`.
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    /// Invocations per execution environment on Lambda Managed Instances
    /// (`Metadata.ManagedInstances.Functions` of the template; scripts/managed-template).
    pub managed_concurrency: Option<usize>,
    pub routes: Vec<RouteDef>,
    pub schedules: Vec<ScheduleDef>,
    pub sqs: Vec<SqsMappingDef>,
    /// `ReservedConcurrentExecutions`: the most environments the function may run at once.
    pub reserved_concurrency: Option<usize>,
    /// Events of types the runner does not emulate (reported at start).
    pub unsupported_events: Vec<String>,
}

impl FunctionDef {
    /// True when something locally can invoke this function.
    pub fn has_triggers(&self) -> bool {
        !self.routes.is_empty() || !self.schedules.is_empty() || !self.sqs.is_empty()
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.trim().to_ascii_lowercase().parse().ok(),
        _ => None,
    }
}

/// The logical id named by `{"Ref": X}` or `{"Fn::GetAtt": [X, ...]}`, or a plain string.
pub fn referenced_id(value: &Value) -> Option<&str> {
    if let Some(id) = value.get("Ref").and_then(Value::as_str) {
        return Some(id);
    }
    if let Some(args) = value.get("Fn::GetAtt").and_then(Value::as_array) {
        return args.first().and_then(Value::as_str);
    }
    value.as_str()
}

impl Template {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let root = parse(text)?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            return Err("no Resources section".into());
        }
        Ok(Self { root })
    }

    /// `(logical id, resource)` in template order.
    pub fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.root["Resources"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    pub fn resource(&self, id: &str) -> Option<&Value> {
        self.root["Resources"].get(id)
    }

    /// Resources of one type, in template order.
    pub fn resources_of(&self, kind: &str) -> Vec<(&str, &Value)> {
        self.resources()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .collect()
    }

    fn function_globals(&self) -> &Value {
        &self.root["Globals"]["Function"]
    }

    /// Every `AWS::Serverless::Function`, with Globals applied.
    pub fn functions(&self) -> Result<Vec<FunctionDef>, String> {
        let globals = self.function_globals();
        let mut functions = Vec::new();
        for (id, resource) in self.resources_of("AWS::Serverless::Function") {
            let props = &resource["Properties"];
            let setting = |name: &str| -> &Value {
                if props.get(name).is_some() {
                    &props[name]
                } else {
                    &globals[name]
                }
            };
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| id.trim_end_matches("Function").to_ascii_lowercase());
            let timeout = as_u64(setting("Timeout")).unwrap_or(3);
            let memory_mb = as_u64(setting("MemorySize")).unwrap_or(128) as u32;
            let mut env = BTreeMap::new();
            for source in [
                &globals["Environment"]["Variables"],
                &props["Environment"]["Variables"],
            ] {
                if let Some(vars) = source.as_object() {
                    for (k, v) in vars {
                        env.insert(k.clone(), v.clone());
                    }
                }
            }
            let logging = |key: &str| {
                props["LoggingConfig"][key]
                    .as_str()
                    .or_else(|| globals["LoggingConfig"][key].as_str())
                    .map(str::to_string)
            };
            let mut def = FunctionDef {
                logical_id: id.to_string(),
                binary,
                timeout: Duration::from_secs(timeout),
                memory_mb,
                env,
                log_format: logging("LogFormat"),
                log_level: logging("ApplicationLogLevel"),
                managed_concurrency: self.root["Metadata"]["ManagedInstances"]["Functions"][id]
                    .as_u64()
                    .map(|n| n as usize),
                routes: Vec::new(),
                schedules: Vec::new(),
                sqs: Vec::new(),
                reserved_concurrency: as_u64(setting("ReservedConcurrentExecutions"))
                    .map(|n| n as usize),
                unsupported_events: Vec::new(),
            };
            if let Some(events) = props["Events"].as_object() {
                for (name, event) in events {
                    self.read_event(&mut def, name, event)?;
                }
            }
            functions.push(def);
        }
        // Event source mappings declared as their own resources.
        for (id, resource) in self.resources_of("AWS::Lambda::EventSourceMapping") {
            let props = &resource["Properties"];
            let Some(function) = referenced_id(&props["FunctionName"]) else {
                continue;
            };
            let Some(def) = functions.iter_mut().find(|f| f.logical_id == function) else {
                continue;
            };
            let source = referenced_id(&props["EventSourceArn"]).unwrap_or_default();
            if self.resource(source).and_then(|r| r["Type"].as_str()) != Some("AWS::SQS::Queue") {
                def.unsupported_events
                    .push(format!("{id} (event source {source} is not an SQS queue)"));
                continue;
            }
            if props.get("Enabled").and_then(as_bool) == Some(false) {
                continue;
            }
            def.sqs.push(sqs_mapping(id, source, props));
        }
        Ok(functions)
    }

    fn read_event(&self, def: &mut FunctionDef, name: &str, event: &Value) -> Result<(), String> {
        let props = &event["Properties"];
        match event["Type"].as_str().unwrap_or_default() {
            "HttpApi" => {
                let method = props["Method"]
                    .as_str()
                    .unwrap_or("ANY")
                    .to_ascii_uppercase();
                let path = props["Path"].as_str().map(str::to_string);
                if path.is_none() && props.get("Path").is_some() {
                    return Err(format!(
                        "{}: event {name}: Path must be a string",
                        def.logical_id
                    ));
                }
                let payload_format = match &props["PayloadFormatVersion"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => format!("{n:.1}"),
                    _ => "2.0".into(),
                };
                let auth = self
                    .route_auth(&props["ApiId"], &props["Auth"])
                    .map_err(|e| format!("{}: event {name}: {e}", def.logical_id))?;
                def.routes.push(RouteDef {
                    event: name.into(),
                    method: if method == "*" { "ANY".into() } else { method },
                    path,
                    payload_format,
                    auth,
                });
            }
            kind @ ("Schedule" | "ScheduleV2") => {
                let v2 = kind == "ScheduleV2";
                let enabled = props.get("Enabled").and_then(as_bool).unwrap_or(true)
                    && props["State"]
                        .as_str()
                        .is_none_or(|s| s.eq_ignore_ascii_case("ENABLED"));
                if !enabled {
                    return Ok(());
                }
                let expression = props[if v2 { "ScheduleExpression" } else { "Schedule" }]
                    .as_str()
                    .ok_or_else(|| {
                        format!("{}: event {name}: no schedule expression", def.logical_id)
                    })?
                    .to_string();
                let input = match &props["Input"] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                };
                def.schedules.push(ScheduleDef {
                    event: name.into(),
                    expression,
                    input,
                    v2,
                });
            }
            "SQS" => {
                if props.get("Enabled").and_then(as_bool) == Some(false) {
                    return Ok(());
                }
                let queue = referenced_id(&props["Queue"])
                    .unwrap_or_default()
                    .to_string();
                def.sqs.push(sqs_mapping(name, &queue, props));
            }
            other => def.unsupported_events.push(format!("{name} ({other})")),
        }
        Ok(())
    }
}

impl Template {
    /// The `Auth` of the HTTP API a route belongs to (its `ApiId`, or the implicit API):
    /// the resource's own, else `Globals.HttpApi.Auth`.
    fn http_api_auth(&self, api_id: &Value) -> &Value {
        let own = referenced_id(api_id)
            .and_then(|id| self.resource(id))
            .map(|api| &api["Properties"]["Auth"])
            .filter(|auth| !auth.is_null());
        own.unwrap_or(&self.root["Globals"]["HttpApi"]["Auth"])
    }

    fn route_auth(&self, api_id: &Value, route: &Value) -> Result<RouteAuth, String> {
        let api = self.http_api_auth(api_id);
        let name = match route["Authorizer"].as_str() {
            Some(name) => name,
            None => match api["DefaultAuthorizer"].as_str() {
                Some(name) => name,
                None => return Ok(RouteAuth::Open),
            },
        };
        if name == "NONE" {
            return Ok(RouteAuth::Open);
        }
        if name == "AWS_IAM" {
            return Ok(RouteAuth::Unsupported {
                authorizer: name.into(),
                kind: "IAM".into(),
            });
        }
        let authorizer = api["Authorizers"]
            .get(name)
            .ok_or_else(|| format!("authorizer {name} is not in the API's Auth.Authorizers"))?;
        if authorizer.get("JwtConfiguration").is_none() {
            return Ok(RouteAuth::Unsupported {
                authorizer: name.into(),
                kind: "Lambda".into(),
            });
        }
        let strings = |value: &Value| -> Option<Vec<String>> {
            value.as_array().map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
        };
        let scopes = strings(&route["AuthorizationScopes"])
            .or_else(|| strings(&authorizer["AuthorizationScopes"]))
            .unwrap_or_default();
        Ok(RouteAuth::Jwt {
            authorizer: name.into(),
            scopes,
        })
    }
}

fn sqs_mapping(name: &str, queue: &str, props: &Value) -> SqsMappingDef {
    let report = props["FunctionResponseTypes"]
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t == "ReportBatchItemFailures"));
    SqsMappingDef {
        name: name.into(),
        queue: queue.into(),
        batch_size: as_u64(&props["BatchSize"]).unwrap_or(10).clamp(1, 10_000) as i32,
        batching_window: Duration::from_secs(
            as_u64(&props["MaximumBatchingWindowInSeconds"])
                .unwrap_or(0)
                .min(300),
        ),
        report_batch_item_failures: report,
        max_concurrency: as_u64(&props["ScalingConfig"]["MaximumConcurrency"])
            .map(|n| n.clamp(2, 1000) as usize),
    }
}

#[cfg(test)]
mod tests;
