//! Reading `template.yaml` (AWS SAM / CloudFormation).
//!
//! The YAML is parsed with a YAML library that keeps tags, and every short-form intrinsic
//! (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) is rewritten to its long JSON form (`{"Ref": "X"}`,
//! `{"Fn::GetAtt": ["A", "B"]}`, `{"Fn::Sub": ...}`), so the rest of the runner sees the
//! template as CloudFormation itself does. [`Resolver`] evaluates those intrinsics against the
//! local stand-ins (parameter defaults, mappings, conditions, and the names and ARNs of the
//! resources created in moto).

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

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
    pub routes: Vec<RouteDef>,
    pub schedules: Vec<ScheduleDef>,
    pub sqs: Vec<SqsMappingDef>,
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
                routes: Vec::new(),
                schedules: Vec::new(),
                sqs: Vec::new(),
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
    }
}

/// What a resource created locally answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    pub reference: Value,
    pub attributes: HashMap<String, Value>,
}

impl Physical {
    pub fn new(reference: impl Into<Value>) -> Self {
        Self {
            reference: reference.into(),
            attributes: HashMap::new(),
        }
    }

    pub fn with(mut self, attribute: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(attribute.into(), value.into());
        self
    }
}

/// Evaluates intrinsic functions for the local deployment.
pub struct Resolver<'a> {
    pub template: &'a Template,
    pub region: String,
    pub account_id: String,
    pub stack_name: String,
    pub physical: HashMap<String, Physical>,
}

type Resolved = Result<Option<Value>, String>;

impl<'a> Resolver<'a> {
    pub fn new(template: &'a Template, region: &str, account_id: &str, stack_name: &str) -> Self {
        Self {
            template,
            region: region.into(),
            account_id: account_id.into(),
            stack_name: stack_name.into(),
            physical: HashMap::new(),
        }
    }

    /// Resolves every intrinsic in `value`. `Ok(None)` is `AWS::NoValue`.
    pub fn resolve(&self, value: &Value) -> Resolved {
        match value {
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    if let Some(v) = self.resolve(item)? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                if key == "Ref" || key == "Condition" || key.starts_with("Fn::") {
                    self.intrinsic(key, arg)
                } else {
                    self.resolve_object(map)
                }
            }
            Value::Object(map) => self.resolve_object(map),
            other => Ok(Some(other.clone())),
        }
    }

    /// Like [`Resolver::resolve`], for a value that must be there.
    pub fn value(&self, value: &Value) -> Result<Value, String> {
        self.resolve(value)?
            .ok_or_else(|| "AWS::NoValue where a value is needed".to_string())
    }

    /// A resolved scalar as the string an environment variable would hold.
    pub fn string(&self, value: &Value) -> Result<String, String> {
        match self.value(value)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("expected a scalar, got {other}")),
        }
    }

    fn resolve_object(&self, map: &Map<String, Value>) -> Resolved {
        let mut out = Map::new();
        for (k, v) in map {
            if let Some(v) = self.resolve(v)? {
                out.insert(k.clone(), v);
            }
        }
        Ok(Some(Value::Object(out)))
    }

    fn intrinsic(&self, name: &str, arg: &Value) -> Resolved {
        match name {
            "Ref" => {
                let target = self.string(arg)?;
                self.reference(&target)
            }
            "Condition" => Ok(Some(Value::Bool(self.condition(&self.string(arg)?)?))),
            "Fn::GetAtt" => {
                let args = match self.value(arg)? {
                    Value::String(s) => s
                        .split_once('.')
                        .map(|(a, b)| vec![a.to_string(), b.to_string()])
                        .ok_or_else(|| format!("Fn::GetAtt {s}"))?,
                    Value::Array(items) => items
                        .iter()
                        .map(|i| i.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("Fn::GetAtt: expected strings")?,
                    other => return Err(format!("Fn::GetAtt {other}")),
                };
                let [resource, attribute] = args.as_slice() else {
                    return Err(format!("Fn::GetAtt {args:?}"));
                };
                self.physical
                    .get(resource)
                    .and_then(|p| p.attributes.get(attribute))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| format!("{resource}.{attribute} has no local value"))
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(items) if items.len() == 2 => {
                        let text = self.string(&items[0])?;
                        let vars = match self.value(&items[1])? {
                            Value::Object(m) => m,
                            _ => return Err("Fn::Sub: the second argument must be a map".into()),
                        };
                        (text, vars)
                    }
                    other => return Err(format!("Fn::Sub {other}")),
                };
                Ok(Some(Value::String(self.substitute(&text, &vars)?)))
            }
            "Fn::FindInMap" => {
                let args = self.value(arg)?;
                let keys: Vec<String> = args
                    .as_array()
                    .filter(|a| a.len() >= 3)
                    .ok_or("Fn::FindInMap: expected [map, key, key]")?
                    .iter()
                    .take(3)
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        other => Err(format!("Fn::FindInMap key {other}")),
                    })
                    .collect::<Result<_, String>>()?;
                self.template.root["Mappings"][&keys[0]][&keys[1]]
                    .get(&keys[2])
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| format!("Fn::FindInMap {keys:?}: not in Mappings"))
            }
            "Fn::Join" => {
                let args = self.value(arg)?;
                let (Some(delimiter), Some(items)) = (
                    args.get(0).and_then(Value::as_str),
                    args.get(1).and_then(Value::as_array),
                ) else {
                    return Err("Fn::Join: expected [delimiter, [values]]".into());
                };
                let parts = items
                    .iter()
                    .map(|v| self.string(v))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Value::String(parts.join(delimiter))))
            }
            "Fn::Select" => {
                let args = self.value(arg)?;
                let index = args.get(0).and_then(as_u64).ok_or("Fn::Select: index")? as usize;
                args.get(1)
                    .and_then(Value::as_array)
                    .and_then(|items| items.get(index))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| "Fn::Select: index out of range".into())
            }
            "Fn::Split" => {
                let args = self.value(arg)?;
                let (Some(delimiter), Some(text)) = (
                    args.get(0).and_then(Value::as_str),
                    args.get(1).and_then(Value::as_str),
                ) else {
                    return Err("Fn::Split: expected [delimiter, text]".into());
                };
                Ok(Some(Value::Array(
                    text.split(delimiter)
                        .map(|s| Value::String(s.into()))
                        .collect(),
                )))
            }
            "Fn::GetAZs" => Ok(Some(json!([
                format!("{}a", self.region),
                format!("{}b", self.region),
                format!("{}c", self.region)
            ]))),
            "Fn::If" => {
                let args = arg
                    .as_array()
                    .filter(|a| a.len() == 3)
                    .ok_or("Fn::If: [cond, a, b]")?;
                let condition = args[0].as_str().ok_or("Fn::If: condition name")?;
                if self.condition(condition)? {
                    self.resolve(&args[1])
                } else {
                    self.resolve(&args[2])
                }
            }
            "Fn::Equals" => {
                let args = arg
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or("Fn::Equals: [a, b]")?;
                let a = self.value(&args[0])?;
                let b = self.value(&args[1])?;
                let text = |v: &Value| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                };
                Ok(Some(Value::Bool(text(&a) == text(&b))))
            }
            "Fn::Not" | "Fn::And" | "Fn::Or" => {
                let args = arg
                    .as_array()
                    .ok_or_else(|| format!("{name}: expected a list"))?;
                let values = args
                    .iter()
                    .map(|v| match self.value(v)? {
                        Value::Bool(b) => Ok(b),
                        other => Err(format!("{name}: {other} is not a condition")),
                    })
                    .collect::<Result<Vec<bool>, String>>()?;
                Ok(Some(Value::Bool(match name {
                    "Fn::Not" => !values.first().copied().unwrap_or(false),
                    "Fn::And" => values.iter().all(|b| *b),
                    _ => values.iter().any(|b| *b),
                })))
            }
            other => Err(format!("{other} is not supported locally")),
        }
    }

    fn reference(&self, target: &str) -> Resolved {
        let pseudo = match target {
            "AWS::NoValue" => return Ok(None),
            "AWS::Region" => Some(self.region.clone()),
            "AWS::AccountId" => Some(self.account_id.clone()),
            "AWS::StackName" => Some(self.stack_name.clone()),
            "AWS::StackId" => Some(format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                self.region, self.account_id, self.stack_name
            )),
            "AWS::Partition" => Some("aws".into()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            "AWS::NotificationARNs" => return Ok(Some(json!([]))),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Some(Value::String(value)));
        }
        if let Some(parameter) = self.template.root["Parameters"].get(target) {
            return parameter
                .get("Default")
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("parameter {target} has no Default"));
        }
        self.physical
            .get(target)
            .map(|p| Some(p.reference.clone()))
            .ok_or_else(|| format!("{target} has no local value"))
    }

    /// Evaluates a named condition (parameters take their defaults).
    pub fn condition(&self, name: &str) -> Result<bool, String> {
        let definition = self.template.root["Conditions"]
            .get(name)
            .ok_or_else(|| format!("condition {name} is not defined"))?;
        match self.value(definition)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("condition {name} evaluates to {other}")),
        }
    }

    /// False when the resource has a `Condition` that is false locally.
    pub fn is_created(&self, resource: &Value) -> Result<bool, String> {
        match resource["Condition"].as_str() {
            Some(name) => self.condition(name),
            None => Ok(true),
        }
    }

    fn substitute(&self, text: &str, vars: &Map<String, Value>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("Fn::Sub: unclosed ${{ in {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&self.string(v)?);
            } else if let Some((resource, attribute)) = name.split_once('.') {
                out.push_str(&self.string(&json!({ "Fn::GetAtt": [resource, attribute] }))?);
            } else {
                out.push_str(&self.string(&json!({ "Ref": name }))?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `OrderEventsDeadLetterQueue` -> `order-events-dead-letter-queue`.
pub fn kebab(logical_id: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = logical_id.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('-');
            }
        }
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push('-');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  AlarmEmail: {Type: String, Default: ""}
Mappings:
  StageConfig:
    dev: {LogLevel: debug}
  Database:
    Settings: {Name: orders, Port: 5432}
Conditions:
  HasAlarmEmail: !Not [!Equals [!Ref AlarmEmail, ""]]
Globals:
  Function:
    Timeout: 10
    MemorySize: 256
    LoggingConfig: {LogFormat: JSON}
    Environment:
      Variables:
        LOG_LEVEL: !FindInMap [StageConfig, !Ref Stage, LogLevel]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  AlarmTopic:
    Type: AWS::SNS::Topic
    Condition: HasAlarmEmail
  Queue:
    Type: AWS::SQS::Queue
  Api:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: api}}
    Properties:
      Timeout: 6
      Environment:
        Variables:
          TABLE: !Ref Table
          TABLE_ARN: !GetAtt Table.Arn
          PORT: !FindInMap [Database, Settings, Port]
          URL: !Sub "https://${Table}.example/${AWS::Region}/${!Literal}"
      Events:
        Get: {Type: HttpApi, Properties: {Method: get, Path: "/things/{id}"}}
        Tick: {Type: Schedule, Properties: {Schedule: rate(5 minutes), Input: '{"a":1}'}}
        Off: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 minute), State: DISABLED}}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Q: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn, BatchSize: 5}}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref Api
      EventSourceArn: !GetAtt Queue.Arn
      MaximumBatchingWindowInSeconds: 2
      FunctionResponseTypes: [ReportBatchItemFailures]
"#;

    #[test]
    fn short_form_tags_become_long_form() {
        let t = Template::parse(SAMPLE).unwrap();
        let vars = &t.root["Resources"]["Api"]["Properties"]["Environment"]["Variables"];
        assert_eq!(vars["TABLE"], json!({"Ref": "Table"}));
        assert_eq!(vars["TABLE_ARN"], json!({"Fn::GetAtt": ["Table", "Arn"]}));
        assert_eq!(
            vars["PORT"],
            json!({"Fn::FindInMap": ["Database", "Settings", "Port"]})
        );
        assert_eq!(
            t.root["Conditions"]["HasAlarmEmail"],
            json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]})
        );
    }

    #[test]
    fn functions_merge_globals_and_collect_events() {
        let t = Template::parse(SAMPLE).unwrap();
        let functions = t.functions().unwrap();
        let api = &functions[0];
        assert_eq!(api.binary, "api");
        assert_eq!(api.timeout, Duration::from_secs(6));
        assert_eq!(api.memory_mb, 256);
        assert_eq!(api.log_format.as_deref(), Some("JSON"));
        assert!(api.env.contains_key("LOG_LEVEL") && api.env.contains_key("TABLE"));
        assert_eq!(
            api.routes,
            vec![RouteDef {
                event: "Get".into(),
                method: "GET".into(),
                path: Some("/things/{id}".into()),
                payload_format: "2.0".into(),
                auth: RouteAuth::Open,
            }]
        );
        assert_eq!(api.schedules.len(), 1, "the disabled schedule is left out");
        assert_eq!(api.schedules[0].expression, "rate(5 minutes)");
        assert_eq!(api.schedules[0].input.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(
            api.sqs,
            vec![SqsMappingDef {
                name: "Mapping".into(),
                queue: "Queue".into(),
                batch_size: 10,
                batching_window: Duration::from_secs(2),
                report_batch_item_failures: true
            }]
        );
        let worker = &functions[1];
        assert_eq!(worker.binary, "worker");
        assert_eq!(worker.timeout, Duration::from_secs(10));
        assert_eq!(worker.sqs[0].batch_size, 5);
        assert!(!worker.sqs[0].report_batch_item_failures);
    }

    #[test]
    fn resolver_evaluates_intrinsics() {
        let t = Template::parse(SAMPLE).unwrap();
        let mut r = Resolver::new(&t, "eu-west-1", "123456789012", "stack");
        r.physical.insert(
            "Table".into(),
            Physical::new("stack-table").with(
                "Arn",
                "arn:aws:dynamodb:eu-west-1:123456789012:table/stack-table",
            ),
        );
        let env = &t.functions().unwrap()[0].env;
        assert_eq!(r.string(&env["LOG_LEVEL"]).unwrap(), "debug");
        assert_eq!(r.string(&env["TABLE"]).unwrap(), "stack-table");
        assert!(r
            .string(&env["TABLE_ARN"])
            .unwrap()
            .ends_with(":table/stack-table"));
        assert_eq!(r.string(&env["PORT"]).unwrap(), "5432");
        assert_eq!(
            r.string(&env["URL"]).unwrap(),
            "https://stack-table.example/eu-west-1/${Literal}"
        );
        assert!(!r.condition("HasAlarmEmail").unwrap());
        assert!(!r.is_created(t.resource("AlarmTopic").unwrap()).unwrap());
        assert!(r.string(&json!({"Ref": "Missing"})).is_err());
        assert_eq!(r.resolve(&json!({"Ref": "AWS::NoValue"})).unwrap(), None);
        assert_eq!(
            r.value(&json!({"a": {"Ref": "AWS::NoValue"}, "b": [1, {"Ref": "AWS::NoValue"}]}))
                .unwrap(),
            json!({"b": [1]})
        );
    }

    const WITH_AUTH: &str = r#"
Conditions:
  CreateUserPool: !Equals [!Ref JwtIssuer, ""]
Resources:
  UserPool: {Type: AWS::Cognito::UserPool}
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: OrdersJwt
        Authorizers:
          OrdersJwt:
            IdentitySource: $request.header.Authorization
            JwtConfiguration:
              issuer: !If [CreateUserPool, !Sub "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}", !Ref JwtIssuer]
              audience:
                - !If [CreateUserPool, !Ref UserPoolClient, !Ref JwtAudience]
          Scoped:
            AuthorizationScopes: [orders/read]
            JwtConfiguration: {issuer: x, audience: [y]}
          Custom:
            FunctionArn: arn:aws:lambda:eu-west-1:1:function:f
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Post: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: POST, Path: /orders}}
        Admin:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: POST
            Path: /admin
            Auth: {AuthorizationScopes: [orders/admin]}
        Health: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /ping, Auth: {Authorizer: NONE}}}
        Read: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /r, Auth: {Authorizer: Scoped}}}
        Lambda: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: GET, Path: /l, Auth: {Authorizer: Custom}}}
        Implicit: {Type: HttpApi, Properties: {Method: GET, Path: /implicit}}
"#;

    #[test]
    fn route_authorizers_come_from_the_template() {
        let t = Template::parse(WITH_AUTH).unwrap();
        let functions = t.functions().unwrap();
        let auth: BTreeMap<&str, &RouteAuth> = functions[0]
            .routes
            .iter()
            .map(|r| (r.event.as_str(), &r.auth))
            .collect();
        let jwt = |name: &str, scopes: &[&str]| RouteAuth::Jwt {
            authorizer: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(auth["Post"], &jwt("OrdersJwt", &[]));
        assert_eq!(auth["Admin"], &jwt("OrdersJwt", &["orders/admin"]));
        assert_eq!(auth["Health"], &RouteAuth::Open);
        assert_eq!(auth["Read"], &jwt("Scoped", &["orders/read"]));
        assert_eq!(
            auth["Lambda"],
            &RouteAuth::Unsupported {
                authorizer: "Custom".into(),
                kind: "Lambda".into()
            }
        );
        // The implicit API has no Auth here (none in Globals.HttpApi either).
        assert_eq!(auth["Implicit"], &RouteAuth::Open);

        let with_globals = WITH_AUTH.replacen(
            "Resources:",
            "Globals:\n  HttpApi:\n    Auth:\n      DefaultAuthorizer: G\n      Authorizers:\n        G: {JwtConfiguration: {issuer: i, audience: [a]}}\nResources:",
            1,
        );
        let functions = Template::parse(&with_globals).unwrap().functions().unwrap();
        let implicit = functions[0].routes.iter().find(|r| r.event == "Implicit");
        assert_eq!(implicit.unwrap().auth, jwt("G", &[]));

        let unknown = WITH_AUTH.replace("Authorizer: Custom", "Authorizer: Missing");
        let error = Template::parse(&unknown).unwrap().functions().unwrap_err();
        assert!(error.contains("Missing"), "{error}");
    }

    #[test]
    fn kebab_case_names() {
        assert_eq!(
            kebab("OrderEventsDeadLetterQueue"),
            "order-events-dead-letter-queue"
        );
        assert_eq!(kebab("OrdersTable"), "orders-table");
        assert_eq!(kebab("DBProxy"), "db-proxy");
        assert_eq!(kebab("S3Bucket2"), "s3-bucket2");
    }

    #[test]
    fn the_project_template_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = Template::load(&path).unwrap();
        let functions = t.functions().unwrap();
        let triggered: Vec<_> = functions.iter().filter(|f| f.has_triggers()).collect();
        assert!(
            triggered.iter().any(|f| !f.routes.is_empty()),
            "an HTTP route"
        );
        assert!(
            triggered.iter().any(|f| !f.sqs.is_empty()),
            "an SQS event source"
        );
        assert!(
            triggered
                .iter()
                .flat_map(|f| &f.routes)
                .any(|r| matches!(r.auth, RouteAuth::Jwt { .. })),
            "a route behind the JWT authorizer"
        );
    }
}
