//! Scheduled invocations for `Schedule` (EventBridge rule) and `ScheduleV2` (EventBridge
//! Scheduler) events. `rate(...)` expressions run locally; `cron(...)` ones are reported and
//! skipped (invoke such a function by hand, see docs/LOCAL.md).

use crate::output;
use crate::runtime_api::Function;
use bytes::Bytes;
use serde_json::json;
use std::time::Duration;

/// Parses `rate(5 minutes)`, `rate(1 hour)`, `rate(2 days)`.
pub fn parse_rate(expression: &str) -> Result<Duration, String> {
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("{expression:?} is not a rate(...) expression"))?;
    let (value, unit) = inner
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("{expression:?}: expected rate(<value> <unit>)"))?;
    let value: u64 = value
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{expression:?}: the value must be a positive integer"))?;
    let unit_seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(format!("{expression:?}: unknown unit {other:?}")),
    };
    Ok(Duration::from_secs(value * unit_seconds))
}

/// One scheduled trigger.
#[derive(Clone)]
pub struct Schedule {
    /// `<function logical id>.<event name>`, the local stand-in for the rule's name.
    pub name: String,
    pub function: Function,
    pub every: Duration,
    pub input: Option<String>,
    pub v2: bool,
    pub region: String,
    pub account_id: String,
}

impl Schedule {
    /// The event an invocation receives: the `Input` when one is set; otherwise the
    /// "Scheduled Event" of an EventBridge rule, or `{}` for EventBridge Scheduler.
    pub fn payload(&self, now: time::OffsetDateTime) -> String {
        if let Some(input) = &self.input {
            return input.clone();
        }
        if self.v2 {
            return "{}".into();
        }
        let time = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account_id,
            "time": time,
            "region": self.region,
            "resources": [format!(
                "arn:aws:events:{}:{}:rule/{}",
                self.region, self.account_id, self.name
            )],
            "detail": {}
        })
        .to_string()
    }

    /// Invokes the function every period (the first time one period after the start), until
    /// the task is aborted.
    pub async fn run(self) {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let payload = self.payload(time::OffsetDateTime::now_utc());
            match self.function.invoke_async(Bytes::from(payload)).await {
                Ok(_) => output::prefixed(
                    "schedule",
                    &format!("{} -> {}: done", self.name, self.function.name()),
                    false,
                ),
                Err(e) => output::prefixed(
                    "schedule",
                    &format!("{} -> {}: {e}", self.name, self.function.name()),
                    true,
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime_api::FunctionSpec;

    #[test]
    fn rates_parse() {
        assert_eq!(
            parse_rate("rate(1 minute)").unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            parse_rate("rate(5 minutes)").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_rate(" rate(2 hours) ").unwrap(),
            Duration::from_secs(7200)
        );
        assert_eq!(
            parse_rate("rate(1 day)").unwrap(),
            Duration::from_secs(86_400)
        );
        assert!(parse_rate("rate(0 minutes)").is_err());
        assert!(parse_rate("rate(5 weeks)").is_err());
        assert!(parse_rate("cron(0 12 * * ? *)").is_err());
    }

    #[test]
    fn scheduled_events_look_like_eventbridge() {
        let function = Function::new(FunctionSpec {
            name: "relay".into(),
            function_name: "relay".into(),
            program: "/bin/false".into(),
            env: Vec::new(),
            timeout: Duration::from_secs(1),
            init_timeout: Duration::from_secs(1),
            memory_mb: 128,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            show_output: false,
            report: false,
        });
        let mut schedule = Schedule {
            name: "RelayFunction.Every".into(),
            function,
            every: Duration::from_secs(60),
            input: None,
            v2: false,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        };
        let now = time::macros::datetime!(2026-11-22 10:15:30.5 UTC);
        let event: serde_json::Value = serde_json::from_str(&schedule.payload(now)).unwrap();
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert_eq!(event["time"], "2026-11-22T10:15:30Z");
        assert_eq!(event["account"], "123456789012");
        assert_eq!(
            event["resources"][0],
            "arn:aws:events:us-east-1:123456789012:rule/RelayFunction.Every"
        );
        assert_eq!(event["detail"], serde_json::json!({}));
        schedule.v2 = true;
        assert_eq!(schedule.payload(now), "{}");
        schedule.input = Some(r#"{"batch":50}"#.into());
        assert_eq!(schedule.payload(now), r#"{"batch":50}"#);
    }
}
