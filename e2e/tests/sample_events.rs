//! Every file in `events/` is a valid event for its handler and gives the documented result.

use aws_lambda_events::sqs::SqsEvent;
use e2e::system::{post_order, read_json, TestSystem};
use orders::domain::view::project_event;
use orders::dynamodb::OrderViewStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_runs_through_its_handler() {
    let sys = TestSystem::start(false).await;
    // An order whose publish failed, for the relay sample to find.
    let dead = e2e::aws::sdk_config_for(&format!("http://127.0.0.1:{}", e2e::free_port())).await;
    let unpublished = sys.command_publishing_via(&dead, std::time::Duration::from_millis(300));
    let (status, pending) = read_json(
        &unpublished
            .handle(post_order(&e2e::system::order_body("relay-sample")))
            .await,
    );
    assert_eq!(status, 201);
    let publisher = orders::sns::EventPublisher::new(
        &sys.aws,
        sys.resources.topic_arn.clone(),
        std::time::Duration::from_secs(2),
    );
    let dir = e2e::workspace_root().join("events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    // The GET sample reads the order the SQS sample creates, so the SQS samples go first.
    names.sort_by_key(|n| !n.starts_with("sqs-"));
    let expected = |name: &str| -> Option<u16> {
        Some(match name {
            "post-order.json" => 201,
            "post-order-invalid.json" => 422,
            "post-order-malformed.json" => 400,
            "get-order.json" => 200,
            "get-order-invalid-id.json" => 400,
            "get-customer-orders.json" => 200,
            "post-order-status.json" => 200,
            // Sorted after the status sample (and the relay's drain), so at version 2.
            "shipping-address-change.json" => 200,
            _ => return None,
        })
    };
    // The order the samples name, as the write side would hold it.
    sys.pg.psql(
        "orders",
        "INSERT INTO orders VALUES ('0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d', 'cust-1001', 'Ada Lovelace',
           'ada@example.com', 'EUR', 8548, 'PENDING', 1, '2026-11-22T10:15:30.123456Z', '2026-11-22T10:15:30.123456Z');
         INSERT INTO order_lines VALUES
           ('0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d', 1, 'BOOK-ENGINE-01', 'Notes on the Analytical Engine', 2, 1999, 3998),
           ('0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d', 2, 'PEN-FOUNTAIN-07', 'Fountain pen', 1, 4550, 4550)",
    );
    let mut ran = 0;
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        if value.get("detail-type").and_then(|d| d.as_str()) == Some("Scheduled Event") {
            // The relay's schedule: with a failed publish waiting, the run publishes it.
            let relay = relay::Relay::new(
                sys.store.pool().clone(),
                publisher.clone(),
                e2e::system::relay_settings(),
            );
            let report = relay
                .handle(value)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (report.published, report.backlog),
                (1, 0),
                "{name}: {report:?}"
            );
            // On the queue now: that event, the run's heartbeat, and the events the
            // post-order and status samples published.
            assert_eq!(
                sys.drain(4, std::time::Duration::from_secs(20)).await,
                4,
                "{name}"
            );
            let id = pending["orderId"].as_str().unwrap();
            let (status, view) = read_json(&sys.query.handle(e2e::system::get_order(id)).await);
            assert_eq!(
                (status, view["customerId"].as_str()),
                (200, Some("relay-sample")),
                "{name}"
            );
        } else if value.get("Records").is_some() {
            let event: SqsEvent =
                serde_json::from_value(value).unwrap_or_else(|e| panic!("{name}: {e}"));
            let ids: Vec<_> = event
                .records
                .iter()
                .map(|r| r.message_id.clone().unwrap())
                .collect();
            let response = sys.projector.handle(event).await.unwrap();
            let failed: Vec<_> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            match name.as_str() {
                // The same order as version 2 and as version 1 (upcast) events: both project.
                "sqs-order-created.json" | "sqs-order-created-v1.json" => {
                    assert!(failed.is_empty(), "{name}: {failed:?}")
                }
                "sqs-poison-message.json" => assert_eq!(failed, [ids[1].clone()], "{name}"),
                other => panic!("no expectation for {other}"),
            }
        } else {
            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let route = value["routeKey"].as_str().unwrap();
            let response = match route {
                "POST /orders" => sys.command.handle(request).await,
                "POST /orders/{id}/status" | "POST /orders/{id}/shipping-address" => {
                    sys.command.handle(request).await
                }
                "GET /orders/{id}" | "GET /customers/{customerId}/orders" => {
                    sys.query.handle(request).await
                }
                other => panic!("{name}: no handler for route {other}"),
            };
            let (status, body) = read_json(&response);
            let want = expected(name).unwrap_or_else(|| panic!("no expectation for {name}"));
            assert_eq!(status, want, "{name}: {body}");
        }
        ran += 1;
    }
    assert_eq!(ran, names.len());
    assert!(ran >= 10);

    // The SQS sample projected the order the GET sample reads, with the sample's totals; the
    // status sample then moved it to version 2, which the relay's drain projected.
    let views = OrderViewStore::new(&sys.aws, sys.resources.table.clone());
    let id = "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d".parse().unwrap();
    let view = views.get(id).await.unwrap().expect("projected");
    assert_eq!(
        (
            view.order.total,
            view.order.version,
            view.order.status.as_str()
        ),
        (8548, 2, "CONFIRMED")
    );
    let text = std::fs::read_to_string(dir.join("sqs-order-created.json")).unwrap();
    let event: SqsEvent = serde_json::from_str(&text).unwrap();
    let inner =
        orders::domain::event::decode_message(event.records[1].body.as_deref().unwrap()).unwrap();
    let v1 = project_event(&inner, view.projected_at).view;
    assert_eq!(
        (v1.order.lines, v1.order.customer),
        (view.order.lines, view.order.customer)
    );
    // The shipping-address sample's event, still on the queue.
    sys.drain(1, std::time::Duration::from_secs(20)).await;
    let drift = sys.verify().await;
    assert!(drift.is_clean(), "{:?}", drift.drift);
}
