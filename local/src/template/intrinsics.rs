//! The intrinsic-function evaluator: `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If`,
//! `Fn::FindInMap`, conditions and the pseudo parameters, evaluated for the local deployment
//! against parameter defaults, mappings and the [`Physical`] values of the resources the
//! runner created.

use super::{as_u64, Template};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

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
            "Fn::GetAtt" => self.get_att(arg),
            "Fn::Sub" => self.sub(arg),
            "Fn::FindInMap" => self.find_in_map(arg),
            "Fn::Join" => self.join(arg),
            "Fn::Select" => self.select(arg),
            "Fn::Split" => self.split(arg),
            "Fn::GetAZs" => Ok(Some(json!([
                format!("{}a", self.region),
                format!("{}b", self.region),
                format!("{}c", self.region)
            ]))),
            "Fn::If" => self.if_(arg),
            "Fn::Equals" => self.equals(arg),
            "Fn::Not" | "Fn::And" | "Fn::Or" => self.logical(name, arg),
            other => Err(format!("{other} is not supported locally")),
        }
    }

    /// `Fn::GetAtt`: `Resource.Attribute` or `[Resource, Attribute]`.
    fn get_att(&self, arg: &Value) -> Resolved {
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

    /// `Fn::Sub`: a string, or `[string, {variables}]`.
    fn sub(&self, arg: &Value) -> Resolved {
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

    /// `Fn::FindInMap`: `[map, top-level key, second-level key]`.
    fn find_in_map(&self, arg: &Value) -> Resolved {
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

    /// `Fn::Join`: `[delimiter, [values]]`.
    fn join(&self, arg: &Value) -> Resolved {
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

    /// `Fn::Select`: `[index, [values]]`.
    fn select(&self, arg: &Value) -> Resolved {
        let args = self.value(arg)?;
        let index = args.get(0).and_then(as_u64).ok_or("Fn::Select: index")? as usize;
        args.get(1)
            .and_then(Value::as_array)
            .and_then(|items| items.get(index))
            .cloned()
            .map(Some)
            .ok_or_else(|| "Fn::Select: index out of range".into())
    }

    /// `Fn::Split`: `[delimiter, text]`.
    fn split(&self, arg: &Value) -> Resolved {
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

    /// `Fn::If`: `[condition name, value if true, value if false]`.
    fn if_(&self, arg: &Value) -> Resolved {
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

    /// `Fn::Equals`: `[a, b]`, compared as text.
    fn equals(&self, arg: &Value) -> Resolved {
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

    /// `Fn::Not`, `Fn::And`, `Fn::Or` over conditions.
    fn logical(&self, name: &str, arg: &Value) -> Resolved {
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
