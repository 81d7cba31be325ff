//! Every file in `events/` is a valid event for its handler and gives the documented result.

use aws_lambda_events::sqs::SqsEvent;
use e2e::system::{read_json, TestSystem};
use orders::domain::view::project_event;
use orders::dynamodb::OrderViewStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_event_runs_through_its_handler() {
    let sys = TestSystem::start(false).await;
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
            _ => return None,
        })
    };
    let mut ran = 0;
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        if value.get("Records").is_some() {
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
                "sqs-order-created.json" => assert!(failed.is_empty(), "{name}: {failed:?}"),
                "sqs-poison-message.json" => assert_eq!(failed, [ids[1].clone()], "{name}"),
                other => panic!("no expectation for {other}"),
            }
        } else {
            let request =
                lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let route = value["routeKey"].as_str().unwrap();
            let response = match route {
                "POST /orders" => sys.command.handle(request).await,
                "GET /orders/{id}" => sys.query.handle(request).await,
                other => panic!("{name}: no handler for route {other}"),
            };
            let (status, body) = read_json(&response);
            let want = expected(name).unwrap_or_else(|| panic!("no expectation for {name}"));
            assert_eq!(status, want, "{name}: {body}");
        }
        ran += 1;
    }
    assert_eq!(ran, names.len());
    assert!(ran >= 7);

    // The SQS sample projected the order the GET sample reads, with the sample's totals.
    let views = OrderViewStore::new(&sys.aws, sys.resources.table.clone());
    let id = "0193a5f2-7c1e-7d3a-9b8c-2f4e6a8b0c1d".parse().unwrap();
    let view = views.get(id).await.unwrap().expect("projected");
    assert_eq!(view.total, 8548);
    let text = std::fs::read_to_string(dir.join("sqs-order-created.json")).unwrap();
    let event: SqsEvent = serde_json::from_str(&text).unwrap();
    let inner =
        orders::domain::event::decode_message(event.records[1].body.as_deref().unwrap()).unwrap();
    assert_eq!(project_event(&inner, view.projected_at).view, view);
}
