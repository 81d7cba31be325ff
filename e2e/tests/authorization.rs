//! Who may do what, enforced by the handlers from the JWT authorizer's claims: a request
//! without claims is 401; customers place, read, list and cancel only their own orders (another
//! customer's order answers exactly like a missing one); staff may read anything and make any
//! legal status change; nothing about one customer reaches another through an error or a
//! cursor, and idempotency keys of different callers never meet.

use e2e::system::{
    as_caller, change_status, get_order, list_orders, order_body, post_order, read_json, Caller,
    TestSystem,
};
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use std::time::Duration;

const ADA: &str = "cust-ada";
const BOB: &str = "cust-bob";

fn from(request: Request, caller: Caller) -> Request {
    as_caller(request, caller)
}

/// Status, problem body, and the checks every refusal must pass: problem+json that names
/// neither Ada's id nor her order.
fn refusal(response: &Response<Body>, secrets: &[&str]) -> (u16, serde_json::Value) {
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let (status, body) = read_json(response);
    let text = body.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{text} leaks {secret}");
    }
    (status, body)
}

async fn create(sys: &TestSystem, customer: &str) -> String {
    let (status, body) = read_json(&sys.command.handle(post_order(&order_body(customer))).await);
    assert_eq!(status, 201, "{body}");
    body["orderId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_verified_claims_are_401_and_change_nothing() {
    let sys = TestSystem::start(false).await;
    let id = create(&sys, ADA).await;
    sys.drain(1, Duration::from_secs(20)).await;

    let anonymous = [
        (true, from(post_order(&order_body(ADA)), Caller::Anonymous)),
        (
            true,
            from(
                change_status(&id, r#"{"status":"CANCELLED"}"#, &[]),
                Caller::Anonymous,
            ),
        ),
        (false, from(get_order(&id), Caller::Anonymous)),
        (false, from(list_orders(ADA, ""), Caller::Anonymous)),
    ];
    for (is_command, request) in anonymous {
        let response = if is_command {
            sys.command.handle(request).await
        } else {
            sys.query.handle(request).await
        };
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let (status, problem) = refusal(&response, &[ADA]);
        assert_eq!(status, 401, "{problem}");
        assert_eq!(problem["type"], "/problems/unauthenticated");
    }
    // A token without the customer claim is no better.
    let mut request = post_order(&order_body(ADA));
    let mut claims = Caller::Customer(ADA).authorizer();
    claims["jwt"]["claims"]
        .as_object_mut()
        .unwrap()
        .remove("sub");
    request = e2e::system::with_authorizer(request, claims);
    let (status, _) = refusal(&sys.command.handle(request).await, &[]);
    assert_eq!(status, 401);

    assert_eq!(sys.count("orders"), 1);
    assert_eq!(sys.count("order_status_history"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_see_and_change_only_their_own_orders() {
    let sys = TestSystem::start(false).await;

    // Ordering for someone else is refused, and nothing is written.
    let response = sys
        .command
        .handle(from(post_order(&order_body(ADA)), Caller::Customer(BOB)))
        .await;
    let (status, problem) = refusal(&response, &[]);
    assert_eq!(status, 403, "{problem}");
    assert_eq!(problem["type"], "/problems/forbidden");
    assert_eq!(sys.count("orders"), 0);
    assert_eq!(sys.count("outbox"), 0);

    let ada_order = create(&sys, ADA).await;
    let bob_order = create(&sys, BOB).await;
    sys.drain(2, Duration::from_secs(20)).await;

    // Ada reads hers; Bob gets exactly what a missing order gives him.
    let (status, view) = read_json(
        &sys.query
            .handle(from(get_order(&ada_order), Caller::Customer(ADA)))
            .await,
    );
    assert_eq!((status, view["customer"]["id"].as_str()), (200, Some(ADA)));
    let foreign = sys
        .query
        .handle(from(get_order(&ada_order), Caller::Customer(BOB)))
        .await;
    let (status, foreign) = refusal(&foreign, &[ADA, "Grace Hopper"]);
    assert_eq!(status, 404);
    let missing_id = "0193a5f2-0000-7000-8000-000000000000";
    let (_, missing) = read_json(
        &sys.query
            .handle(from(get_order(missing_id), Caller::Customer(BOB)))
            .await,
    );
    let strip = |mut v: serde_json::Value, id: &str| {
        v["detail"] = v["detail"].as_str().unwrap().replace(id, "<id>").into();
        v
    };
    assert_eq!(strip(foreign, &ada_order), strip(missing, missing_id));
    // ... also when Bob guesses its ETag.
    let mut conditional = from(get_order(&ada_order), Caller::Customer(BOB));
    conditional
        .headers_mut()
        .insert(header::IF_NONE_MATCH, "\"1\"".parse().unwrap());
    let (status, _) = refusal(&sys.query.handle(conditional).await, &[ADA]);
    assert_eq!(status, 404);

    // Listings: only one's own; another customer's is 403 and shows nothing.
    let (status, page) = read_json(&sys.query.handle(list_orders(ADA, "")).await);
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["orderId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ada_order.as_str()]);
    let (status, problem) = refusal(
        &sys.query
            .handle(from(list_orders(ADA, ""), Caller::Customer(BOB)))
            .await,
        &[&ada_order],
    );
    assert_eq!(status, 403, "{problem}");

    // Status changes: Bob cannot touch Ada's order (it does not exist for him), Ada may only
    // cancel, and the order is untouched until she does.
    let (status, _) = refusal(
        &sys.command
            .handle(from(
                change_status(&ada_order, r#"{"status":"CANCELLED"}"#, &[]),
                Caller::Customer(BOB),
            ))
            .await,
        &[ADA],
    );
    assert_eq!(status, 404);
    let (status, problem) = refusal(
        &sys.command
            .handle(from(
                change_status(&ada_order, r#"{"status":"CONFIRMED"}"#, &[]),
                Caller::Customer(ADA),
            ))
            .await,
        &[],
    );
    assert_eq!(status, 403, "{problem}");
    assert_eq!(sys.count("order_status_history"), 0);
    let (status, cancelled) = read_json(
        &sys.command
            .handle(from(
                change_status(&ada_order, r#"{"status":"CANCELLED"}"#, &[]),
                Caller::Customer(ADA),
            ))
            .await,
    );
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED"))
    );

    // Bob's own order: staff confirm and ship it; then Bob may no longer cancel (the state
    // machine's 409, not an authorization error).
    for next in ["CONFIRMED", "SHIPPED"] {
        let (status, body) = read_json(
            &sys.command
                .handle(change_status(
                    &bob_order,
                    &format!(r#"{{"status":"{next}"}}"#),
                    &[],
                ))
                .await,
        );
        assert_eq!(status, 200, "{body}");
    }
    let (status, problem) = read_json(
        &sys.command
            .handle(from(
                change_status(&bob_order, r#"{"status":"CANCELLED"}"#, &[]),
                Caller::Customer(BOB),
            ))
            .await,
    );
    assert_eq!(status, 409, "{problem}");

    // Staff read and list anyone's orders.
    sys.drain(3, Duration::from_secs(20)).await;
    let (status, view) = read_json(&sys.query.handle(get_order(&ada_order)).await);
    assert_eq!((status, view["status"].as_str()), (200, Some("CANCELLED")));
    let (status, page) = read_json(
        &sys.query
            .handle(from(list_orders(BOB, ""), Caller::Staff))
            .await,
    );
    assert_eq!(status, 200);
    assert_eq!(page["items"][0]["status"], "SHIPPED");
    assert!(sys.verify().await.is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_idempotency_keys_do_not_cross_customers() {
    let sys = TestSystem::start(false).await;
    sys.create_orders(&[ADA.to_string(), ADA.to_string(), BOB.to_string()])
        .await;
    sys.drain(3, Duration::from_secs(20)).await;

    let (_, page) = read_json(&sys.query.handle(list_orders(ADA, "limit=1")).await);
    let cursor = page["nextCursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    // Ada's cursor on Bob's listing (by Bob) is refused as a bad cursor, without Ada's data.
    let (status, problem) = refusal(
        &sys.query
            .handle(list_orders(BOB, &format!("cursor={cursor}")))
            .await,
        &[ADA],
    );
    assert_eq!(status, 400, "{problem}");
    // Bob with Ada's cursor on Ada's listing: still forbidden.
    let (status, _) = refusal(
        &sys.query
            .handle(from(
                list_orders(ADA, &format!("cursor={cursor}")),
                Caller::Customer(BOB),
            ))
            .await,
        &[ADA],
    );
    assert_eq!(status, 403);

    // One key, two customers, two different orders: each gets their own 201, and neither
    // learns that the other used the key.
    let keyed = |customer: &str| {
        let mut request = post_order(&order_body(customer));
        request
            .headers_mut()
            .insert("idempotency-key", "shared-key-1".parse().unwrap());
        request
    };
    let (status, first) = read_json(&sys.command.handle(keyed(ADA)).await);
    assert_eq!(status, 201, "{first}");
    let (status, second) = read_json(&sys.command.handle(keyed(BOB)).await);
    assert_eq!(status, 201, "{second}");
    assert_ne!(first["orderId"], second["orderId"]);
    // While Ada's own retry is still a replay.
    let response = sys.command.handle(keyed(ADA)).await;
    assert!(response.headers().contains_key("idempotent-replayed"));
    assert_eq!(read_json(&response).1["orderId"], first["orderId"]);
    assert_eq!(sys.count("orders"), 5);
}

/// Issue #15: a status-change idempotency key that Bob used before, reused on Ada's order,
/// answers exactly like the same key on a missing order (404, same problem), and Bob's request
/// never takes a lock on Ada's row: while a test transaction holds that row, Bob's request
/// still answers at once instead of waiting for the lock (and timing out as a 503).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_status_key_does_not_reveal_or_lock_another_customers_order() {
    let sys = TestSystem::start(false).await;
    let ada_order = create(&sys, ADA).await;
    let bob_order = create(&sys, BOB).await;
    let key = [("idempotency-key", "bob-key-1")];
    let cancel = r#"{"status":"CANCELLED"}"#;
    let (status, body) = read_json(
        &sys.command
            .handle(from(
                change_status(&bob_order, cancel, &key),
                Caller::Customer(BOB),
            ))
            .await,
    );
    assert_eq!(status, 200, "{body}");

    // Ada's row is held by another transaction for the rest of the test.
    let mut holder = sys.store.pool().get().await.expect("connection");
    let lock = holder.transaction().await.expect("transaction");
    let ada_uuid: uuid::Uuid = ada_order.parse().unwrap();
    lock.query_one(
        "SELECT id FROM orders WHERE id = $1 FOR UPDATE",
        &[&ada_uuid],
    )
    .await
    .expect("lock Ada's order");

    let missing_id = "0193a5f2-0000-7000-8000-000000000000";
    let mut answers = Vec::new();
    for id in [ada_order.as_str(), missing_id] {
        let response = sys
            .command
            .handle(from(change_status(id, cancel, &key), Caller::Customer(BOB)))
            .await;
        let (status, problem) = refusal(&response, &[ADA, "Grace Hopper"]);
        assert_eq!(status, 404, "{id}: {problem}");
        let mut problem = problem;
        problem["detail"] = problem["detail"]
            .as_str()
            .unwrap()
            .replace(id, "<id>")
            .into();
        answers.push(problem);
    }
    assert_eq!(answers[0], answers[1]);
    lock.rollback().await.expect("release");

    // Ada's order is untouched and still hers to cancel.
    assert_eq!(sys.count("order_status_history"), 1);
    let (status, body) = read_json(
        &sys.command
            .handle(from(
                change_status(&ada_order, cancel, &[]),
                Caller::Customer(ADA),
            ))
            .await,
    );
    assert_eq!((status, body["version"].as_i64()), (200, Some(2)), "{body}");
}
