//! Order status as it happens: `GET /order/{id}/events` and `POST /order` with `Prefer: wait`,
//! fed by the order service's own consumers (the events are published here as stock and
//! delivery would).

use std::time::{Duration, Instant};

use larder_api_client::Client;
use reqwest::StatusCode;
use sea_orm::EntityTrait;
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{
    SseReader, TestApp, assert_problem, burgers, confirmed, delivered, dispatched, eventually,
    publish, rejected, spawn_app, spawn_app_with, spawn_other_instance,
};

/// Streams re-read the order every 5 s without a push, and a wait reads it at its deadline: an
/// answer within this of the event shows a push woke it.
const PUSHED_WITHIN: Duration = Duration::from_secs(3);

/// The URL of order `id`'s `GET /order/{id}/events` on the service `api` talks to.
fn events_url(api: &Client, id: Uuid) -> String {
    api.url(&format!("/order/{id}/events"))
}

/// `GET url` (an order's events) as `token`, resuming after `last_event_id` when given.
async fn open_stream(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(url).bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.unwrap()
}

/// [`open_stream`] on `api`'s connections, read event by event (it must open: 200).
async fn follow(api: &Client, url: &str, token: &str, last_event_id: Option<&str>) -> SseReader {
    SseReader::new(open_stream(api.http(), url, token, last_event_id).await)
}

/// The first order of this test's database that `wanted` accepts, once a handler has written it.
async fn stored_order(app: &TestApp, wanted: impl Fn(&Uuid) -> bool) -> Uuid {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = entities::orders::Entity::find()
            .all(&app.order_db)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.id)
            .find(|id| wanted(id));
        if let Some(id) = found {
            return id;
        }
        assert!(Instant::now() < deadline, "no order was stored within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A new customer's `POST /order` with `Prefer: <prefer>`, and its answer once `settle` has
/// published the order's outcome; the push must wake the waiting request within
/// [`PUSHED_WITHIN`]. Answers the response and the order's id.
async fn answered_after(
    app: &TestApp,
    prefer: &'static str,
    settle: impl AsyncFnOnce(Uuid),
) -> (reqwest::Response, Uuid) {
    let (product, token) = app.burger_and_customer().await;
    let post = order_preferring(&app.api, &token, burgers(product, 1), prefer);
    let id = stored_order(app, |_| true).await;
    let published = Instant::now();
    settle(id).await;
    let (response, _) = post.await.unwrap();
    let took = published.elapsed();
    assert!(took < PUSHED_WITHIN, "took {took:?}");
    (response, id)
}

/// `POST /order` of `order` to the service `api` talks to, with `Prefer: <prefer>`, sent on a
/// task of its own so the test can act while the request waits. Answers the response and how
/// long it took.
fn order_preferring(
    api: &Client,
    token: &str,
    order: Value,
    prefer: &'static str,
) -> tokio::task::JoinHandle<(reqwest::Response, Duration)> {
    let (api, token) = (api.clone(), token.to_owned());
    tokio::spawn(async move {
        let started = Instant::now();
        let response = api
            .post_order(&token, &order, &[("Prefer", prefer)])
            .await
            .unwrap();
        (response, started.elapsed())
    })
}

#[tokio::test]
async fn an_order_stream_shows_pending_confirmed_dispatched_delivered_and_ends() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;
    let events = events_url(&app.api, id);

    let response = open_stream(app.api.http(), &events, &token, None).await;
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-cache"
    );
    let mut stream = SseReader::new(response);
    let first = stream.next().await.expect("the current status first");
    assert_eq!(
        (first.event.as_str(), &first.data["status"]),
        ("status", &Value::from("pending"))
    );
    assert_eq!(first.data["order_id"], id.to_string());
    assert_eq!(
        first.id,
        first.data["id"].to_string(),
        "the SSE id is the change's id"
    );
    assert_eq!(first.data["final"], false);

    let shipment = Uuid::new_v4();
    publish(&app, &confirmed(id)).await;
    let second = stream.next().await.expect("confirmed");
    assert_eq!(second.data["status"], "confirmed");
    publish(&app, &dispatched(id, shipment)).await;
    publish(&app, &delivered(id, shipment)).await;
    let third = stream.next().await.expect("dispatched");
    let fourth = stream.next().await.expect("delivered");
    assert_eq!(
        (&third.data["status"], &fourth.data["status"]),
        (&Value::from("dispatched"), &Value::from("delivered"))
    );
    assert_eq!(fourth.data["final"], true);
    assert!(
        stream.next().await.is_none(),
        "the stream ends with the final status"
    );
    let ids: Vec<i64> = [&first, &second, &third, &fourth]
        .iter()
        .map(|e| e.id.parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");

    // Resuming after the first change replays the rest; after the last, nothing comes: 204.
    let mut resumed = follow(&app.api, &events, &token, Some(&first.id)).await;
    let mut statuses = Vec::new();
    while let Some(event) = resumed.next().await {
        statuses.push(event.data["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(statuses, ["confirmed", "dispatched", "delivered"]);
    let done = open_stream(app.api.http(), &events, &token, Some(&fourth.id)).await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_final_order_streams_its_status_once_and_ends() {
    let app = spawn_app().await;
    let (token, id) = app.placed_order().await;
    publish(&app, &rejected(id)).await;
    app.wait_for_status(&token, id, "rejected").await;

    let mut stream = follow(&app.api, &events_url(&app.api, id), &token, None).await;
    let only = stream.next().await.unwrap();
    assert_eq!(only.data["status"], "rejected");
    assert!(only.data["note"].as_str().unwrap().contains("Onion"));
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn only_the_customer_and_its_merchant_may_follow_an_order() {
    let app = spawn_app().await;
    let (owner, id) = app.placed_order().await;
    let events = events_url(&app.api, id);

    let stranger = app.api.new_customer().await.unwrap();
    let response = open_stream(app.api.http(), &events, &stranger, None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "another customer").await;
    let unknown = events_url(&app.api, Uuid::new_v4());
    let response = open_stream(app.api.http(), &unknown, &owner, None).await;
    assert_problem(response, StatusCode::NOT_FOUND, "no such order").await;
    let response = app.api.http().get(&events).send().await.unwrap();
    assert_problem(response, StatusCode::UNAUTHORIZED, "no token").await;
    let response = open_stream(app.api.http(), &events, &owner, Some("yesterday")).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "a bad Last-Event-ID").await;

    let merchant = app.merchant_token().await;
    let mut stream = follow(&app.api, &events, &merchant, None).await;
    assert_eq!(stream.next().await.unwrap().data["status"], "pending");
}

/// A stream holds a connection and a stream slot, never an in-flight slot: with one in-flight
/// slot and one stream open, short requests still pass, and a second stream is refused.
#[tokio::test]
async fn open_streams_are_bounded_and_leave_the_in_flight_limit_to_short_requests() {
    let app = spawn_app_with(|s| {
        s.sse_max_streams = 1;
        s.http_max_in_flight = 1;
    })
    .await;
    let (token, id) = app.placed_order().await;
    let events = events_url(&app.api, id);

    let mut open = follow(&app.api, &events, &token, None).await;
    assert_eq!(open.next().await.unwrap().data["status"], "pending");

    let second = open_stream(&reqwest::Client::new(), &events, &token, None).await;
    let problem = assert_problem(second, StatusCode::SERVICE_UNAVAILABLE, "a second stream").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("event streams")
    );
    for _ in 0..3 {
        let response = app.api.get(&token, &format!("/order/{id}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a short request");
    }
    drop(open);
    eventually("the stream's slot is free again", || async {
        open_stream(&reqwest::Client::new(), &events, &token, None)
            .await
            .status()
            == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn a_stream_ends_at_its_lifetime_and_resumes_where_it_stopped() {
    let app = spawn_app_with(|s| s.sse_max_secs = 1).await;
    let (token, id) = app.placed_order().await;
    let events = events_url(&app.api, id);

    let started = Instant::now();
    let mut stream = follow(&app.api, &events, &token, None).await;
    let first = stream.next().await.unwrap();
    assert!(stream.next().await.is_none(), "ended at its lifetime");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    publish(&app, &confirmed(id)).await;
    app.wait_for_status(&token, id, "confirmed").await;
    let mut resumed = follow(&app.api, &events, &token, Some(&first.id)).await;
    assert_eq!(resumed.next().await.unwrap().data["status"], "confirmed");
}

#[tokio::test]
async fn prefer_wait_answers_201_with_the_confirmed_order_and_caps_the_wait_at_10() {
    let app = spawn_app().await;
    let (response, id) = answered_after(&app, "wait=60", async |id| {
        publish(&app, &confirmed(id)).await
    })
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["preference-applied"], "wait=10");
    assert_eq!(
        response.headers()["location"],
        format!("/order/{id}").as_str()
    );
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["history"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn prefer_wait_answers_201_with_a_rejection_and_its_shortages() {
    let app = spawn_app().await;
    let (response, _) = answered_after(&app, "respond-async, wait=5", async |id| {
        publish(&app, &rejected(id)).await
    })
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["preference-applied"], "wait=5");
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "rejected");
    assert_eq!(order["rejection"]["shortages"][0]["ingredient"], "Onion");
}

#[tokio::test]
async fn a_wait_that_runs_out_is_the_usual_202_and_holds_no_in_flight_slot() {
    let app = spawn_app_with(|s| {
        s.http_max_in_flight = 1;
        s.prefer_wait_max_waiters = 1;
    })
    .await;
    let (product, token) = app.burger_and_customer().await;
    let waiting = order_preferring(&app.api, &token, burgers(product, 1), "wait=2");
    stored_order(&app, |_| true).await;

    // While it waits: the one in-flight slot is free for others, and the one waiter's place is
    // taken, so another wait is not honoured (202 at once, no Preference-Applied).
    let started = Instant::now();
    let other = app
        .api
        .post_order(&token, &burgers(product, 1), &[("Prefer", "wait=2")])
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    assert!(!other.headers().contains_key("preference-applied"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let (response, took) = waiting.await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["preference-applied"], "wait=2");
    assert!(took >= Duration::from_secs(2), "waited {took:?}");
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["status"], "pending");
}

/// Two instances on one database and namespace; the client's instance consumes nothing
/// (`api_only`), so every change it shows was settled, and pushed, by the other one.
#[tokio::test]
async fn a_client_on_another_instance_sees_what_this_instance_settled() {
    let app = spawn_app().await;
    let other = spawn_other_instance(&app, |s| s.api_only = true).await;
    let (product, token) = app.burger_and_customer().await;
    let id = app.api.place_one(&token, product).await.unwrap();

    let mut stream = follow(&other.api, &events_url(&other.api, id), &token, None).await;
    assert_eq!(stream.next().await.unwrap().data["status"], "pending");
    let post = order_preferring(&other.api, &token, burgers(product, 2), "wait=5");
    let shipment = Uuid::new_v4();
    for (step, status) in ["confirmed", "dispatched", "delivered"]
        .into_iter()
        .enumerate()
    {
        let published = Instant::now();
        match step {
            0 => publish(&app, &confirmed(id)).await,
            1 => publish(&app, &dispatched(id, shipment)).await,
            _ => publish(&app, &delivered(id, shipment)).await,
        }
        assert_eq!(stream.next().await.unwrap().data["status"], status);
        assert!(
            published.elapsed() < PUSHED_WITHIN,
            "{status} took {:?}",
            published.elapsed()
        );
    }
    assert!(stream.next().await.is_none());

    // The waiting POST on the other instance: its order is the one that is not `id`.
    let second = stored_order(&app, |other| *other != id).await;
    let published = Instant::now();
    publish(&app, &confirmed(second)).await;
    let (response, _) = post.await.unwrap();
    assert!(
        published.elapsed() < PUSHED_WITHIN,
        "took {:?}",
        published.elapsed()
    );
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["status"],
        "confirmed"
    );
}

/// A customer's cancel, answered by one instance, ends a stream held by another.
#[tokio::test]
async fn a_cancel_ends_the_stream_on_every_instance() {
    let app = spawn_app().await;
    let _delivery = crate::helpers::delivery_agreeing_to_cancels(&app).await;
    let other = spawn_other_instance(&app, |s| s.api_only = true).await;
    let (token, id) = app.placed_order().await;
    let mut stream = follow(&other.api, &events_url(&other.api, id), &token, None).await;
    assert_eq!(stream.next().await.unwrap().data["status"], "pending");

    let cancelled = Instant::now();
    let cancel = app.api.request_cancel(&token, id).await.unwrap();
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);

    let last = stream.next().await.unwrap();
    assert!(
        cancelled.elapsed() < PUSHED_WITHIN,
        "took {:?}",
        cancelled.elapsed()
    );
    assert_eq!(
        (&last.data["status"], &last.data["final"]),
        (&Value::from("cancelled"), &Value::from(true))
    );
    assert!(stream.next().await.is_none());
}
