//! AWS's size limits on the whole path, with the AWS limits proxy in front of moto (as the
//! harness always has it): the proxy refuses what AWS refuses, with AWS's error codes; the
//! largest order validation accepts goes from POST to GET; and a listing of such orders stays
//! within Lambda's 6 MB response limit, the rest behind the cursor.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sns::types::PublishBatchRequestEntry;
use e2e::system::{get_order, list_orders, post_order, read_json, TestSystem};
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Lambda's limit on a response (the query's answer to API Gateway).
const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

/// Text of `n` characters of four UTF-8 bytes each: the most bytes a character limit allows.
fn wide(n: usize) -> String {
    "\u{1D11E}".repeat(n)
}

/// The largest order validation accepts: 100 lines, every text at its character limit in
/// four-byte characters, every number at its maximum.
fn maximum_order(customer: &str) -> String {
    let lines: Vec<Value> = (0..100)
        .map(|i| {
            json!({"sku": format!("{i:02}{}", wide(62)), "name": wide(200),
                   "quantity": 10_000, "unitPrice": 100_000_000_000_i64})
        })
        .collect();
    json!({
        "customer": {"id": customer, "name": wide(200),
                     "email": format!("{}@{}.com", wide(100), wide(149))},
        "currency": "USD",
        "lines": lines,
    })
    .to_string()
}

/// The size of a query response as Lambda returns it to API Gateway (payload format 2.0).
fn lambda_response_bytes(response: &Response<Body>) -> usize {
    let body = String::from_utf8_lossy(orders::http::body_bytes(response.body())).into_owned();
    let headers: serde_json::Map<String, Value> = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(v.to_str().unwrap_or_default())))
        .collect();
    json!({"statusCode": response.status().as_u16(), "headers": headers, "body": body,
           "isBase64Encoded": false})
    .to_string()
    .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_refuses_what_aws_refuses_with_aws_error_codes() {
    // The resources as the template declares them; calls made as the admin.
    let sys = TestSystem::start(true).await;
    let (aws, resources) = (&sys.aws, &sys.resources);

    let sns = aws_sdk_sns::Client::new(aws);
    let batch = |sizes: &[usize]| {
        let entries: Vec<PublishBatchRequestEntry> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message("m".repeat(*size))
                    .build()
                    .expect("entry")
            })
            .collect();
        sns.publish_batch()
            .topic_arn(&resources.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
    };
    let half = 262_144 / 2;
    let accepted = batch(&[half, half])
        .await
        .expect("exactly 256 KiB is accepted");
    assert_eq!(accepted.successful.unwrap_or_default().len(), 2);
    let refused = batch(&[half, half + 1]).await.expect_err("over 256 KiB");
    assert_eq!(refused.code(), Some("BatchRequestTooLong"), "{refused:?}");
    let refused = batch(&[1; 11]).await.expect_err("11 entries");
    assert_eq!(refused.code(), Some("TooManyEntriesInBatchRequest"));
    let refused = sns
        .publish()
        .topic_arn(&resources.topic_arn)
        .message("m".repeat(262_145))
        .send()
        .await
        .expect_err("over 256 KiB");
    assert_eq!(refused.code(), Some("InvalidParameter"));

    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    // A list of booleans: AWS counts 3 bytes for the list and 2 per element, moto (whose own
    // limit is 405,000 bytes) only 1 per element, so only the proxy refuses this item.
    // "orderId" (7) + a 36-character id + "l" (1) + 3 + 2 per element.
    let put = |elements: usize| {
        dynamo
            .put_item()
            .table_name(&resources.table)
            .item(
                "orderId",
                AttributeValue::S(uuid::Uuid::new_v4().to_string()),
            )
            .item(
                "l",
                AttributeValue::L(vec![AttributeValue::Bool(true); elements]),
            )
            .send()
    };
    put(204_776).await.expect("409,599 bytes are accepted");
    let refused = put(204_777).await.expect_err("409,601 bytes: over 400 KB");
    assert_eq!(refused.code(), Some("ValidationException"));
    assert!(refused
        .message()
        .is_some_and(|m| m.contains("Item size has exceeded")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_valid_order_goes_from_post_to_get() {
    let sys = TestSystem::start(true).await;
    let customer = wide(64);
    let body = maximum_order(&customer);
    let (status, created) = read_json(&sys.command.handle(post_order(&body)).await);
    assert_eq!(status, 201, "{created}");
    let id = created["orderId"].as_str().expect("orderId").to_string();
    assert_eq!(created["total"], 100 * 10_000 * 100_000_000_000_i64);
    assert_eq!(
        sys.pg.psql(
            "orders",
            &format!("SELECT published_at IS NOT NULL FROM outbox WHERE order_id = '{id}'")
        ),
        "t",
        "SNS (through the limits proxy) accepted the event"
    );

    let records = sys.receive(Duration::from_secs(10)).await;
    assert_eq!(records.len(), 1);
    let delivered = records[0].body.as_deref().unwrap_or_default().len();
    assert!(delivered > 100_000, "the event is {delivered} bytes");
    let response = sys.project(records).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    let response = sys.query.handle(get_order(&id)).await;
    let (status, view) = read_json(&response);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["lines"], created["lines"]);
    assert_eq!(view["customer"]["id"], customer.as_str());
    assert_eq!(view["customer"]["name"], wide(200).as_str());
    assert!(lambda_response_bytes(&response) < LAMBDA_RESPONSE_LIMIT);
    let receipts = sys.receipt_keys(&id).await;
    assert!(!receipts.is_empty(), "receipts stored for {id}");
    let report = sys.verify().await;
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_the_largest_orders_stays_within_lambdas_response_limit() {
    let sys = TestSystem::start(true).await;
    // 55 orders of about 120 KB: one page of them all would be over 6 MB.
    let customer = "c".repeat(64);
    let count = 55;
    let mut created = HashSet::new();
    for _ in 0..count {
        let (status, order) = read_json(
            &sys.command
                .handle(post_order(&maximum_order(&customer)))
                .await,
        );
        assert_eq!(status, 201, "{order}");
        created.insert(order["orderId"].as_str().expect("orderId").to_string());
    }
    assert_eq!(sys.drain(count, Duration::from_secs(180)).await, count);

    let mut listed = Vec::new();
    let mut pages = 0;
    let mut query = "limit=100".to_string();
    loop {
        let response = sys.query.handle(list_orders(&customer, &query)).await;
        let size = lambda_response_bytes(&response);
        let (status, page) = read_json(&response);
        assert_eq!(status, 200, "{page}");
        assert!(
            size <= LAMBDA_RESPONSE_LIMIT,
            "page {pages} is {size} bytes, over Lambda's limit"
        );
        pages += 1;
        let items = page["items"].as_array().expect("items");
        assert!(!items.is_empty(), "a page with a cursor holds orders");
        listed.extend(items.iter().map(|i| {
            (
                i["createdAt"].as_str().unwrap_or_default().to_string(),
                i["orderId"].as_str().unwrap_or_default().to_string(),
            )
        }));
        match page["nextCursor"].as_str() {
            Some(cursor) => query = format!("limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert!(pages > 1, "the page was cut by size");
    let ids: HashSet<String> = listed.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids, created, "every order listed once");
    assert_eq!(listed.len(), count, "no order listed twice");
    assert!(
        listed.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest first across pages"
    );
}
