//! The merchant console's data, end to end: a merchant who signs up follows
//! `GET /merchant/events` while customers order; the feed shows each order move, the levels
//! falling, the low-stock alert with its email status, a dead letter of one of its orders with
//! its replay, and the alert re-armed by a restock. What the browser test (`console_browser`)
//! shows on the page, checked here at the wire.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use larder_contract::Envelope;
use larder_contract::events::OrderCreated;
use larder_contract::subjects;

use crate::helpers::{Stack, print_report};

/// Reads one `text/event-stream` response event by event.
struct Feed {
    response: reqwest::Response,
    buffer: String,
}

/// How long the feed may take to show something.
const WITHIN: Duration = Duration::from_secs(30);

impl Feed {
    async fn open(stack: &Stack, token: &str) -> Self {
        let response = stack.api.get(token, "/merchant/events").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "the feed opens");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event: its SSE `event` field and its `data`.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|line| line.strip_prefix(name).map(str::to_owned))
                };
                if let (Some(kind), Some(data)) = (field("event: "), field("data: ")) {
                    let data: Value = serde_json::from_str(&data).unwrap();
                    assert_eq!(data["kind"], kind.as_str(), "kind repeats the event name");
                    return (kind, data);
                }
                continue; // a keep-alive comment
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the feed reads")
                .expect("the feed stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads events until one of `kind` satisfies `wanted`; returns its data.
    async fn until(&mut self, kind: &str, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WITHIN, async {
            loop {
                let (seen, data) = self.next().await;
                if seen == kind && wanted(&data) {
                    return data;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the feed did not show {what} within {WITHIN:?}"))
    }
}

fn ingredient<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    event["items"]
        .as_array()?
        .iter()
        .find(|item| item["name"] == name)
}

#[tokio::test]
async fn a_new_merchants_feed_shows_its_orders_levels_alerts_and_dead_letters_as_they_happen() {
    let stack = Stack::start().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let alert_address = format!("alerts-{suffix}@grill.example");
    let merchant = stack
        .sign_up_merchant(&format!("Grill {suffix}"), &alert_address, "EUR")
        .await;
    let customer = stack.api.new_customer().await.unwrap();

    // Only a merchant has a feed.
    let refused = stack.api.get(&customer, "/merchant/events").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // It starts with where things are: nothing yet.
    let mut feed = Feed::open(&stack, &merchant).await;
    let mut first = Vec::new();
    for _ in 0..4 {
        let (kind, data) = feed.next().await;
        assert_eq!(data["items"], json!([]), "{kind} starts empty");
        first.push(kind);
    }
    first.sort();
    assert_eq!(first, ["alerts", "dead_letters", "ingredients", "orders"]);

    // Seeding shows the ingredients, full.
    let burger = stack.seed(&merchant).await;
    let seeded = feed
        .until("ingredients", "the seeded ingredients", |e| {
            ingredient(e, "Beef").is_some()
        })
        .await;
    let beef = ingredient(&seeded, "Beef").unwrap();
    assert_eq!(
        (beef["stock"].as_i64(), beef["percent"].as_i64()),
        (Some(20_000), Some(100))
    );
    assert_eq!(beef["alert"], "armed");

    // 30 burgers take the onion from 1 kg to 400 g: the order moves, the onion falls below
    // half, and the alert appears with its email sent.
    let order = stack.api.place(&customer, burger, 30).await.unwrap();
    feed.until("order", "the new order", |e| {
        e["order_id"] == order.to_string() && e["status"] == "pending"
    })
    .await;
    feed.until("order", "the order confirmed", |e| {
        e["order_id"] == order.to_string() && e["status"] == "confirmed"
    })
    .await;
    let fallen = feed
        .until("ingredients", "the onion below half", |e| {
            ingredient(e, "Onion").is_some_and(|o| o["stock"] == 400)
        })
        .await;
    let onion = ingredient(&fallen, "Onion").unwrap();
    assert_eq!(onion["percent"], 40);
    assert_eq!(onion["alert"], "alerted");
    assert_eq!(
        ingredient(&fallen, "Beef").unwrap()["stock"],
        20_000 - 30 * 150
    );
    let alerts = feed
        .until("alerts", "the alert's email sent", |e| {
            e["items"][0]["email_status"] == "sent"
        })
        .await;
    let alerts = alerts["items"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one alert: {alerts:?}");
    assert_eq!(alerts[0]["ingredient"], "Onion");
    assert_eq!(alerts[0]["recipient"], alert_address.as_str());
    assert_eq!(
        (alerts[0]["level"].as_i64(), alerts[0]["percent"].as_i64()),
        (Some(400), Some(40))
    );
    // The same, asked for.
    let listed = stack
        .api
        .get_json::<Value>(&merchant, "/alerts")
        .await
        .unwrap();
    assert_eq!(listed[0]["event_id"], alerts[0]["event_id"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // An orders.created of one of its orders that no stock can ever take (quantity 0): stock
    // dead-letters it, and the merchant sees the dead letter and can replay it.
    let bootstrap = stack.merchant().await;
    let merchant_id = stack
        .api
        .get_json::<Value>(&merchant, "/orders")
        .await
        .unwrap()["items"][0]["merchant_id"]
        .as_i64()
        .unwrap();
    let event = Envelope::new(
        OrderCreated {
            order_id: order,
            merchant_id,
            customer_id: uuid::Uuid::new_v4(),
            lines: vec![larder_contract::events::OrderedLine {
                product_id: burger,
                quantity: 0,
                recipe: vec![],
            }],
        },
        None,
    );
    stack
        .nats
        .jetstream
        .publish(
            stack.nats.namespace().subject(subjects::ORDERS_CREATED),
            serde_json::to_vec(&event).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let dead = feed
        .until("dead_letters", "the dead letter", |e| {
            e["items"].as_array().is_some_and(|items| !items.is_empty())
        })
        .await;
    let letter = &dead["items"][0];
    assert_eq!(letter["order_id"], order.to_string());
    assert_eq!(letter["consumer"], "stock-orders-created");
    let sequence = letter["sequence"].as_u64().unwrap();
    // Another merchant neither sees nor replays it.
    let theirs = stack
        .api
        .get_json::<Value>(&bootstrap, "/dead-letters")
        .await
        .unwrap();
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["sequence"].as_u64() != Some(sequence)),
        "{theirs}"
    );
    let replay = format!("/dead-letters/{sequence}/replay");
    let foreign = stack
        .api
        .post(&bootstrap, &replay, &Value::Null)
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let replayed = stack
        .api
        .post(&merchant, &replay, &Value::Null)
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::ACCEPTED);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(
        replayed["subject"],
        stack.nats.namespace().subject(subjects::ORDERS_CREATED)
    );
    // Rejected again (still quantity 0): a second dead letter, and the stock unchanged.
    feed.until("dead_letters", "the replay dead-lettered again", |e| {
        e["items"].as_array().is_some_and(|items| items.len() == 2)
    })
    .await;

    // A restock back above half re-arms the alert.
    let onion_id = onion["id"].as_i64().unwrap();
    let restocked = stack.api.restock(&merchant, onion_id, 600).await;
    restocked.expect("the restock is accepted (200)");
    let rearmed = feed
        .until("ingredients", "the onion re-armed", |e| {
            ingredient(e, "Onion").is_some_and(|o| o["alert"] == "armed")
        })
        .await;
    assert_eq!(ingredient(&rearmed, "Onion").unwrap()["stock"], 1_000);
    stack.assert_stock_consistent().await;
}

/// The console page in a real browser: `tests/console/console.test.mjs` (Playwright driving
/// Debian's Chromium headless) against a stack of its own. `./stack.sh test` installs Chromium
/// and the script's Node packages; `LARDER_SKIP_BROWSER=1` skips it on a machine without them.
/// `CONSOLE_SCREENSHOT=path` keeps a screenshot of the merchant's page (the README's).
#[tokio::test]
async fn console_in_a_browser_shows_the_gauge_fall_the_alert_appear_and_the_restock_rearm_it() {
    if std::env::var_os("LARDER_SKIP_BROWSER").is_some() {
        eprintln!("LARDER_SKIP_BROWSER is set: skipping the browser test");
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists()
            && dir.join("node_modules/playwright-core").exists(),
        "the browser test needs {chromium} and {}/node_modules: ./stack.sh test installs both \
         (or set LARDER_SKIP_BROWSER=1)",
        dir.display()
    );
    let stack = Stack::start().await;
    let mut script = tokio::process::Command::new("node");
    script
        .arg("console.test.mjs")
        .current_dir(&dir)
        .env("LARDER_URL", stack.api.base_url())
        .env("CHROMIUM", &chromium);
    if let Some(path) = std::env::var_os("CONSOLE_SCREENSHOT") {
        script.env("SCREENSHOT", path);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), script.output())
        .await
        .expect("the browser test ends within 3 minutes")
        .expect("node runs tests/console/console.test.mjs");
    let report = print_report(&output);
    assert!(
        output.status.success(),
        "the console failed in the browser:\n{report}"
    );
}
