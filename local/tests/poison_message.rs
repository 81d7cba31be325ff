//! The SQS event source emulation against the real updater process: a malformed message put
//! straight onto the queue is reported failed on every receive, comes back after the visibility
//! timeout, and after maxReceiveCount receives moto's redrive policy moves it to the
//! dead-letter queue; orders posted meanwhile are projected as usual.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn sqs_client(
    moto_port: u16,
    (key, secret): (String, String),
) -> (tokio::runtime::Runtime, aws_sdk_sqs::Client) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(format!("http://127.0.0.1:{moto_port}"))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                key, secret, None, None, "test",
            ))
            .load(),
    );
    (runtime, aws_sdk_sqs::Client::new(&config))
}

#[test]
fn a_poison_message_ends_in_the_dead_letter_queue_without_blocking_orders() {
    let state = StateDir::new("poison");
    let ports = Ports::free();
    // A short visibility timeout, so the five receives take seconds rather than 15 minutes.
    let runner = Runner::start(&state.0, ports, &["--visibility-timeout", "1"]);
    let agent = agent();
    let base = runner.base.clone();

    let (_, health) = json_of(agent.get(&format!("{base}/health")).call().expect("health"));
    let queue = &health["components"]["queues"][0];
    assert_eq!(queue["function"], "updater", "{health}");
    let queue_url = queue["url"].as_str().expect("queue url").to_string();
    let dlq_url = queue["deadLetterQueueUrl"]
        .as_str()
        .expect("dlq url")
        .to_string();

    // As the runner's admin (moto checks every call under IAM enforcement).
    let (runtime, sqs) = sqs_client(ports.moto, common::runner_credentials(&state.0));
    let poison = "this is not an order event {";
    runtime
        .block_on(
            sqs.send_message()
                .queue_url(&queue_url)
                .message_body(poison)
                .send(),
        )
        .expect("send the poison message");

    // Orders posted after it are not held up.
    let (token1, token2) = (
        runner.customer_token("cust-poison-1"),
        runner.customer_token("cust-poison-2"),
    );
    let first = create_order(&agent, &base, &token1, "cust-poison-1");
    let second = create_order(&agent, &base, &token2, "cust-poison-2");
    assert_eq!(
        await_order(&agent, &base, &token1, &first, Duration::from_secs(120))["orderId"],
        first.as_str()
    );
    assert_eq!(
        await_order(&agent, &base, &token2, &second, Duration::from_secs(120))["orderId"],
        second.as_str()
    );

    // The poison message reaches the DLQ, unchanged.
    let deadline = Instant::now() + Duration::from_secs(300);
    let dead = loop {
        let received = runtime
            .block_on(
                sqs.receive_message()
                    .queue_url(&dlq_url)
                    .wait_time_seconds(2)
                    .max_number_of_messages(10)
                    .send(),
            )
            .expect("receive from the DLQ");
        let bodies: Vec<String> = received
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.body)
            .collect();
        if !bodies.is_empty() {
            break bodies;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message never reached the DLQ:\n{}",
            runner.output()
        );
    };
    assert_eq!(dead, vec![poison.to_string()]);

    // It was retried as Lambda would: reported failed, not deleted.
    let output = runner.output();
    assert!(output.contains("reported failed"), "{output}");
    // And the main queue is empty: nothing else was dead-lettered or left behind.
    let attributes = runtime
        .block_on(
            sqs.get_queue_attributes()
                .queue_url(&queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send(),
        )
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    for name in [
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ] {
        assert_eq!(
            attributes.get(&name).map(String::as_str),
            Some("0"),
            "{name:?}"
        );
    }
}
