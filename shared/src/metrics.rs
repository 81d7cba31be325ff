//! Metrics in CloudWatch embedded metric format (EMF): one JSON line on stdout per batch of
//! values, turned into metrics by CloudWatch Logs with no client and no extra call.
//! Dimensions are kept to function and stage to bound cost.

use serde_json::{json, Map, Value};

/// CloudWatch metric units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
            Self::Seconds => "Seconds",
        }
    }
}

/// Builds one EMF record.
#[derive(Debug, Default)]
pub struct MetricSet {
    metrics: Vec<(&'static str, Unit, f64)>,
    properties: Map<String, Value>,
}

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn metric(mut self, name: &'static str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name, unit, value));
        self
    }

    pub fn count(self, name: &'static str, value: usize) -> Self {
        self.metric(name, Unit::Count, value as f64)
    }

    /// A searchable property that is not a dimension (for example an order id).
    pub fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(key.to_string(), value.into());
        self
    }

    /// The EMF JSON document.
    pub fn to_json(&self) -> Value {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
        let stage = std::env::var(crate::config::vars::STAGE).unwrap_or_else(|_| "local".into());
        let namespace = std::env::var(crate::config::vars::METRICS_NAMESPACE)
            .unwrap_or_else(|_| "OrdersCqrs".into());
        let timestamp = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        let mut doc = self.properties.clone();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Function", "Stage"]],
                    "Metrics": definitions,
                }]
            }),
        );
        doc.insert("Function".into(), function.into());
        doc.insert("Stage".into(), stage.into());
        for (name, _, value) in &self.metrics {
            doc.insert((*name).to_string(), json!(value));
        }
        Value::Object(doc)
    }

    /// Writes the record as one line on stdout.
    pub fn emit(&self) {
        if self.metrics.is_empty() {
            return;
        }
        // println! (not a raw stdout handle) so that test harnesses capture it.
        println!("{}", self.to_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_follows_the_emf_structure() {
        let doc = MetricSet::new()
            .count("OrdersCreated", 1)
            .metric("ProjectionLag", Unit::Milliseconds, 12.5)
            .property("orderId", "abc")
            .to_json();
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "OrdersCqrs");
        assert_eq!(directive["Dimensions"], json!([["Function", "Stage"]]));
        assert_eq!(
            directive["Metrics"][0],
            json!({"Name": "OrdersCreated", "Unit": "Count"})
        );
        assert_eq!(directive["Metrics"][1]["Unit"], "Milliseconds");
        // Every metric and dimension named in the directive has a top-level value.
        assert_eq!(doc["OrdersCreated"], 1.0);
        assert_eq!(doc["ProjectionLag"], 12.5);
        assert!(doc["Function"].is_string() && doc["Stage"].is_string());
        assert_eq!(doc["orderId"], "abc");
    }
}
