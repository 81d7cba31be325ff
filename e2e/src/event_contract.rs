//! The events contract: what reaches the queue from the order-events topic is checked against
//! `asyncapi.yaml`. [`TestSystem::receive`](crate::system::TestSystem::receive) (and so every
//! drain) checks each message SNS delivered, so every event the suite publishes is validated.

use aws_lambda_events::sqs::SqsMessage;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The channel whose messages are checked.
const CHANNEL: &str = "orderEvents";

/// `asyncapi.yaml`'s messages, each compiled into one validator of `{headers, payload}`.
pub struct EventContract {
    messages: Vec<Message>,
    /// Each attribute's declared SNS data type (`x-sns-data-type`).
    data_types: Map<String, Value>,
}

struct Message {
    key: String,
    name: String,
    validator: jsonschema::Validator,
}

/// How many delivered messages [`check_delivery`] validated in this process.
static VALIDATED: AtomicUsize = AtomicUsize::new(0);

/// The document as parsed from the workspace's `asyncapi.yaml`.
pub fn document() -> Value {
    let path = crate::workspace_root().join("asyncapi.yaml");
    let text = std::fs::read_to_string(path).expect("read asyncapi.yaml");
    serde_yaml_ng::from_str(&text).expect("asyncapi.yaml parses")
}

/// The contract of the workspace's `asyncapi.yaml`, compiled once.
pub fn contract() -> &'static EventContract {
    static CONTRACT: OnceLock<EventContract> = OnceLock::new();
    CONTRACT.get_or_init(|| EventContract::new(document()))
}

/// How many delivered messages have been validated so far in this process.
pub fn validated_count() -> usize {
    VALIDATED.load(Ordering::SeqCst)
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("asyncapi.yaml: dangling {r}")),
        None => value,
    }
}

impl EventContract {
    /// Compiles every message of the topic's channel.
    pub fn new(doc: Value) -> Self {
        let channel = &doc["channels"][CHANNEL]["messages"];
        let channel = channel.as_object().expect("the channel lists messages");
        let mut messages = Vec::new();
        let mut data_types = Map::new();
        for (key, reference) in channel {
            let message = resolve(&doc, reference);
            let headers = message["headers"]["$ref"].as_str().expect("headers $ref");
            let payload = message["payload"]["$ref"].as_str().expect("payload $ref");
            let header_schema = resolve(&doc, &message["headers"]);
            for (name, spec) in header_schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let declared = spec["x-sns-data-type"].clone();
                assert!(declared.is_string(), "{key}: {name} has no x-sns-data-type");
                let known = data_types.entry(name.clone()).or_insert(declared.clone());
                assert_eq!(*known, declared, "{name}: one data type in every version");
            }
            let mut root = doc.clone();
            root["$schema"] = "https://json-schema.org/draft/2020-12/schema".into();
            root["type"] = "object".into();
            root["required"] = json!(["headers", "payload"]);
            root["properties"] =
                json!({"headers": {"$ref": headers}, "payload": {"$ref": payload}});
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("{key}: schema does not compile: {e}"));
            messages.push(Message {
                key: key.clone(),
                name: message["name"].as_str().expect("message name").to_string(),
                validator,
            });
        }
        assert!(!messages.is_empty(), "no messages in channel {CHANNEL}");
        Self {
            messages,
            data_types,
        }
    }

    /// Checks one event and its attributes (name -> `{"type", "value"}` as SNS sent them);
    /// returns the key of the one message of the document they match.
    pub fn check(
        &self,
        attributes: &Map<String, Value>,
        payload: &Value,
    ) -> Result<String, String> {
        let mut headers = Map::new();
        for (name, attribute) in attributes {
            let data_type = attribute["type"].as_str().unwrap_or_default();
            let value = attribute["value"].as_str().unwrap_or_default();
            if let Some(declared) = self.data_types.get(name) {
                if declared != data_type {
                    return Err(format!(
                        "attribute {name} has data type {data_type}, declared {declared}"
                    ));
                }
            }
            let value = match data_type {
                "Number" => serde_json::from_str(value)
                    .map_err(|_| format!("attribute {name}: {value:?} is not a number"))?,
                _ => Value::from(value),
            };
            headers.insert(name.clone(), value);
        }
        let instance = json!({"headers": headers, "payload": payload});
        let matched: Vec<&Message> = self
            .messages
            .iter()
            .filter(|m| m.validator.is_valid(&instance))
            .collect();
        match matched.as_slice() {
            [one] => Ok(one.key.clone()),
            [] => {
                let event_type = payload["eventType"].as_str().unwrap_or_default();
                let errors: Vec<String> = self
                    .messages
                    .iter()
                    .filter(|m| m.name == event_type)
                    .flat_map(|m| {
                        m.validator
                            .iter_errors(&instance)
                            .map(move |e| format!("{}: {} at {}", m.key, e, e.instance_path()))
                    })
                    .collect();
                Err(format!(
                    "matches no message of asyncapi.yaml: {errors:?}\n{instance}"
                ))
            }
            many => Err(format!(
                "matches several messages: {:?}",
                many.iter().map(|m| &m.key).collect::<Vec<_>>()
            )),
        }
    }

    /// Checks one SQS message as SNS delivered it: an SNS notification envelope (its
    /// `MessageAttributes`) or, with raw delivery, the bare event (the SQS message attributes).
    pub fn check_record(&self, record: &SqsMessage) -> Result<String, String> {
        let body = record.body.as_deref().unwrap_or_default();
        let value: Value = serde_json::from_str(body).map_err(|e| format!("body: {e}"))?;
        if value["Type"] == "Notification" {
            let message = value["Message"]
                .as_str()
                .ok_or("notification without Message")?;
            let payload: Value =
                serde_json::from_str(message).map_err(|e| format!("Message: {e}"))?;
            let mut attributes = Map::new();
            for (name, a) in value["MessageAttributes"].as_object().into_iter().flatten() {
                attributes.insert(
                    name.clone(),
                    json!({"type": a["Type"], "value": a["Value"]}),
                );
            }
            self.check(&attributes, &payload)
        } else {
            let mut attributes = Map::new();
            for (name, a) in &record.message_attributes {
                attributes.insert(
                    name.clone(),
                    json!({"type": a.data_type, "value": a.string_value}),
                );
            }
            self.check(&attributes, &value)
        }
    }
}

/// True when SNS delivered this message (rather than a test or an operator sending to the queue
/// directly): an SNS notification envelope, or with raw delivery, SNS's message attributes.
pub fn delivered_by_sns(record: &SqsMessage) -> bool {
    let body = record.body.as_deref().unwrap_or_default();
    match serde_json::from_str::<Value>(body) {
        Ok(value) if value["Type"] == "Notification" => true,
        _ => !record.message_attributes.is_empty(),
    }
}

/// Checks a message SNS delivered against `asyncapi.yaml` and panics when it does not match;
/// messages sent to the queue directly are left alone.
pub fn check_delivery(record: &SqsMessage) {
    if !delivered_by_sns(record) {
        return;
    }
    if let Err(e) = contract().check_record(record) {
        panic!(
            "event {:?} breaks asyncapi.yaml: {e}",
            record.message_id.as_deref()
        );
    }
    VALIDATED.fetch_add(1, Ordering::SeqCst);
}
