//! SNS topics, SQS queues (with their redrive policies) and the topics' SQS subscriptions.

use super::{err, name_of, text, wanted, Provisioned, Queue};
use crate::template::{Physical, Resolver};
use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

/// Creates every topic.
pub(super) async fn create_topics(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
) -> Result<(), String> {
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

    Ok(())
}

/// Creates every queue, then sets their attributes (a redrive policy names another queue's
/// ARN). `visibility_override` replaces every queue's `VisibilityTimeout`.
pub(super) async fn create_queues(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
    visibility_override: Option<u32>,
) -> Result<(), String> {
    let sqs = aws_sdk_sqs::Client::new(aws);
    let queues = wanted(resolver, "AWS::SQS::Queue")?;
    for (id, props) in &queues {
        create_queue(&sqs, resolver, done, id, props).await?;
    }
    for (id, props) in &queues {
        set_queue_attributes(&sqs, resolver, done, (id, props), visibility_override).await?;
    }
    Ok(())
}

async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
    id: &str,
    props: &Value,
) -> Result<(), String> {
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
        id.to_string(),
        Physical::new(url.clone())
            .with("Arn", arn.clone())
            .with("QueueName", name.clone())
            .with("QueueUrl", url.clone()),
    );
    done.queues.insert(
        id.to_string(),
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
    Ok(())
}

async fn set_queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    resolver: &Resolver<'_>,
    done: &mut Provisioned,
    (id, props): (&str, &Value),
    visibility_override: Option<u32>,
) -> Result<(), String> {
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
    Ok(())
}

/// Subscribes the queues to the topics (SQS endpoints only).
pub(super) async fn subscribe(
    aws: &SdkConfig,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
) -> Result<(), String> {
    let sns = aws_sdk_sns::Client::new(aws);
    for (id, props) in wanted(resolver, "AWS::SNS::Subscription")? {
        subscribe_one(&sns, resolver, done, id, &props).await?;
    }
    Ok(())
}

async fn subscribe_one(
    sns: &aws_sdk_sns::Client,
    resolver: &mut Resolver<'_>,
    done: &mut Provisioned,
    id: String,
    props: &Value,
) -> Result<(), String> {
    let protocol = resolver.string(&props["Protocol"])?;
    if protocol != "sqs" {
        done.lines.push(format!(
            "skipped subscription {id} (protocol {protocol} is not emulated)"
        ));
        return Ok(());
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
    Ok(())
}
