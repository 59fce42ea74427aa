//! The fault suite: every service as a process of its own, on a NATS server and a PostgreSQL
//! server of the test's own, under a steady load of orders (some cancelled at once). One fault at
//! a time, each undone before the next: every service kind killed with SIGKILL and started
//! again, NATS killed and restarted on its store, PostgreSQL stopped with `-m immediate` (a
//! crash: no checkpoint, crash recovery at the next start) and started again, and the SMTP server
//! away while an ingredient crosses its 50 % line. After each fault, the time until every order
//! accepted before the part came back is final is that fault's recovery.
//!
//! Then the invariants, checked in the database and the streams: every accepted order exists
//! once and is final; no cancelled order has a shipment that left; each delivered order's events
//! are in the streams once; each order reserved once and released at most once (only when
//! cancelled); the stock equals its movements, is never negative, and the beef left is exactly
//! what the delivered orders did not take; one email for the one crossing; no dead letter.
//!
//! The short profile (CI) runs each fault once. `LARDER_FAULTS=long` runs five rounds with longer
//! outages:
//!
//! ```sh
//! LARDER_FAULTS=long ./stack.sh test -p larder --test e2e faults -- --nocapture
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder_bus::testing::{NatsCluster, TestNats};
use migration::testing::TestDatabase;
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Stack, own_postgres};

/// Process indexes of [`Stack::start_separately_on_servers`].
const SERVICES: [(usize, &str); 4] = [
    (0, "order"),
    (1, "stock"),
    (2, "delivery"),
    (3, "notification"),
];

/// Beef in one burger (SPEC §3's catalogue), in grams.
const BEEF_PER_BURGER: i64 = 150;
/// Added to every ingredient before the load: every order is confirmed, so any loss shows.
const RESTOCK: i64 = 1_000_000;
/// Burgers in the order placed while the SMTP server is away: it takes the beef (20 kg + RESTOCK,
/// its new reference) below 50 % and nothing else (cheese and onion have as much and need less).
const CROSSING_BURGERS: i64 = 4_000;
/// One order in this many is cancelled as soon as it is accepted.
const CANCEL_EVERY: usize = 7;
/// A recovery slower than this is a stall (a retry stretched by a backoff, an ack wait sat out),
/// not noise. The figures the suite prints are the measurement; see the README.
const STALL: Duration = Duration::from_secs(20);

struct Profile {
    name: &'static str,
    rounds: usize,
    /// How long each part stays away.
    outage: Duration,
    /// Load between faults.
    between: Duration,
}

impl Profile {
    fn from_env() -> Self {
        match std::env::var("LARDER_FAULTS").as_deref() {
            Ok("long") => Self {
                name: "long",
                rounds: 5,
                outage: Duration::from_secs(3),
                between: Duration::from_secs(3),
            },
            _ => Self {
                name: "short",
                rounds: 1,
                outage: Duration::from_millis(700),
                between: Duration::from_millis(700),
            },
        }
    }
}

/// An accepted order, as the client saw it.
#[derive(Clone)]
struct Placed {
    id: String,
    burgers: i64,
    cancel_requested: bool,
}

type Accepted = Arc<Mutex<Vec<Placed>>>;

/// Places an order of `burgers`, retried with the same Idempotency-Key until the API accepts
/// it, as a careful client would while the API or its database is away.
async fn place(
    stack_client: &reqwest::Client,
    base: &str,
    token: &str,
    key: &str,
    burger: i64,
    burgers: i64,
) -> String {
    let give_up = Instant::now() + Duration::from_secs(90);
    loop {
        let sent = stack_client
            .post(format!("{base}/order"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({"products": [{"product_id": burger, "quantity": burgers}]}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(response) = sent
            && matches!(response.status(), StatusCode::ACCEPTED | StatusCode::OK)
        {
            let order: Value = response.json().await.unwrap();
            return order["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < give_up, "order {key} was never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One-burger orders one after the other until `stop`; every [`CANCEL_EVERY`]th is cancelled
/// right after it is accepted (one try: while a part is away the cancel may not get through,
/// and the order then simply goes on).
async fn offer_orders(
    client: reqwest::Client,
    base: String,
    token: String,
    burger: i64,
    accepted: Accepted,
    stop: CancellationToken,
) {
    for n in 0.. {
        if stop.is_cancelled() {
            break;
        }
        let id = place(&client, &base, &token, &format!("fault-{n}"), burger, 1).await;
        let cancel_requested = n % CANCEL_EVERY == CANCEL_EVERY - 1;
        if cancel_requested {
            let _ = client
                .post(format!("{base}/order/{id}/cancel"))
                .bearer_auth(&token)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
        }
        accepted.lock().unwrap().push(Placed {
            id,
            burgers: 1,
            cancel_requested,
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows of one query on the admin pool; `None` while the database is away.
async fn query(db: &TestDatabase, sql: &str) -> Option<Vec<sea_orm::QueryResult>> {
    db.db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .ok()
}

fn id_list(orders: &[Placed]) -> String {
    orders
        .iter()
        .map(|o| format!("'{}'", o.id))
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until every one of `orders` is final (delivered or cancelled; rejected would be a
/// failure, shown later); returns how long that took.
async fn wait_until_final(db: &TestDatabase, orders: &[Placed], fault: &str) -> Duration {
    let started = Instant::now();
    if orders.is_empty() {
        return Duration::ZERO;
    }
    let sql = format!(
        "SELECT count(*) AS waiting FROM \"order\".orders WHERE id IN ({}) \
         AND status NOT IN ('delivered', 'cancelled', 'rejected')",
        id_list(orders)
    );
    loop {
        if let Some(rows) = query(db, &sql).await {
            let waiting: i64 = rows[0].try_get("", "waiting").unwrap();
            if waiting == 0 {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "after {fault}: orders still not final after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Recovery {
    fault: String,
    /// Orders accepted before the part was back, all final after `recovered`.
    orders: usize,
    recovered: Duration,
}

#[tokio::test]
async fn orders_survive_every_fault_one_at_a_time() {
    let profile = Profile::from_env();
    let postgres = own_postgres();
    let mut nats_server = NatsCluster::start(1).await;
    let nats = TestNats::on(&nats_server.url(), 1).await;
    let db = TestDatabase::new_on(&postgres.admin_url()).await;
    let mut stack = Stack::start_separately_on_servers(nats, db).await;
    let (merchant, burger, customer) = stack.shop().await;
    for ingredient in stack.api.ingredients(&merchant).await.unwrap() {
        let restocked = stack.api.restock(&merchant, ingredient.id, RESTOCK).await;
        restocked.expect("the restock is accepted");
    }
    let beef_before = stack.api.levels(&merchant).await.unwrap()[0].1;

    let accepted: Accepted = Arc::default();
    let stop = CancellationToken::new();
    let load = tokio::spawn(offer_orders(
        stack.api.http().clone(),
        stack.api.base_url().to_owned(),
        customer.clone(),
        burger,
        Arc::clone(&accepted),
        stop.clone(),
    ));
    let accepted_so_far = || accepted.lock().unwrap().clone();

    let mut recoveries = Vec::new();
    let mut email_recovery = None;
    for round in 0..profile.rounds {
        for (index, name) in SERVICES {
            tokio::time::sleep(profile.between).await;
            stack.kill(index);
            tokio::time::sleep(profile.outage).await;
            stack.respawn(index, &[name]);
            let before_back = accepted_so_far();
            recoveries.push(Recovery {
                fault: format!("kill -9 {name}"),
                orders: before_back.len(),
                recovered: wait_until_final(&stack.db, &before_back, name).await,
            });
        }

        tokio::time::sleep(profile.between).await;
        nats_server.kill(0);
        tokio::time::sleep(profile.outage).await;
        nats_server.restart(0);
        let before_back = accepted_so_far();
        recoveries.push(Recovery {
            fault: "NATS restart".into(),
            orders: before_back.len(),
            recovered: wait_until_final(&stack.db, &before_back, "NATS restart").await,
        });

        tokio::time::sleep(profile.between).await;
        postgres.stop_immediately();
        tokio::time::sleep(profile.outage).await;
        postgres.start_again();
        let before_back = accepted_so_far();
        recoveries.push(Recovery {
            fault: "PostgreSQL immediate stop".into(),
            orders: before_back.len(),
            recovered: wait_until_final(&stack.db, &before_back, "PostgreSQL restart").await,
        });

        if round == 0 {
            // The SMTP server goes away, then the beef crosses its 50 % line: the alert waits
            // for the server and goes out once it is back.
            tokio::time::sleep(profile.between).await;
            stack.mail.stop();
            let id = place(
                stack.api.http(),
                stack.api.base_url(),
                &customer,
                "fault-crossing",
                burger,
                CROSSING_BURGERS,
            )
            .await;
            accepted.lock().unwrap().push(Placed {
                id: id.clone(),
                burgers: CROSSING_BURGERS,
                cancel_requested: false,
            });
            let id = id.parse().expect("an order id");
            stack.wait_for_status(&customer, id, "confirmed").await;
            tokio::time::sleep(profile.outage.max(Duration::from_secs(2))).await;
            stack.mail.start_again().await;
            let back = Instant::now();
            let give_up = back + Duration::from_secs(90);
            while stack.mail.emails().await.is_empty() {
                assert!(
                    Instant::now() < give_up,
                    "no email 90 s after SMTP was back"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            email_recovery = Some(back.elapsed());
        }
    }
    tokio::time::sleep(profile.between).await;
    stop.cancel();
    load.await.unwrap();
    let orders = accepted_so_far();
    let settled = wait_until_final(&stack.db, &orders, "the load").await;

    let statuses = final_statuses(&stack, &orders).await;
    let cancelled = statuses.values().filter(|s| *s == "cancelled").count();
    eprintln!(
        "fault suite ({} profile): {} orders ({} cancelled, {} cancels asked), {} faults",
        profile.name,
        orders.len(),
        cancelled,
        orders.iter().filter(|o| o.cancel_requested).count(),
        recoveries.len() + 1
    );
    eprintln!("| fault | orders accepted before | all final after |");
    for r in &recoveries {
        eprintln!(
            "| {} | {} | {:.2} s |",
            r.fault,
            r.orders,
            r.recovered.as_secs_f64()
        );
    }
    if let Some(email) = email_recovery {
        eprintln!(
            "| SMTP outage | (one alert) | email {:.2} s after SMTP was back |",
            email.as_secs_f64()
        );
    }
    eprintln!(
        "| end of load | {} | {:.2} s |",
        orders.len(),
        settled.as_secs_f64()
    );
    for r in &recoveries {
        assert!(
            r.recovered < STALL,
            "recovery after {} took {:?}",
            r.fault,
            r.recovered
        );
    }
    assert!(
        orders.len() >= 20,
        "only {} orders were accepted",
        orders.len()
    );

    assert_orders_exist_once_and_are_final(&stack, &orders).await;
    assert_events_once(&stack, &orders).await;
    assert_stock_moved_once_per_order(&stack, &orders).await;
    let delivered: i64 = statuses
        .iter()
        .filter(|(_, status)| status.as_str() == "delivered")
        .map(|(id, _)| orders.iter().find(|o| &o.id == id).unwrap().burgers)
        .sum();
    assert_eq!(
        stack.api.levels(&merchant).await.unwrap()[0].1,
        beef_before - BEEF_PER_BURGER * delivered,
        "the beef left is what the delivered orders did not take"
    );
    stack.assert_stock_consistent().await;

    // One crossing, one email, and it had to wait for the server.
    stack
        .wait_until_consumed_on("STOCK", "notification-stock-low")
        .await;
    let emails = stack.mail.emails().await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    assert!(emails[0].subject.contains("Beef"), "{emails:?}");
    let rows = query(
        &stack.db,
        "SELECT attempts, status FROM notification.notifications",
    )
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let attempts: i32 = rows[0].try_get("", "attempts").unwrap();
    assert!(attempts >= 1, "the email was tried while SMTP was away");

    let dead = stack.dead_letter_count().await;
    assert_eq!(dead, 0, "nothing is dead-lettered");
}

async fn final_statuses(stack: &Stack, orders: &[Placed]) -> HashMap<String, String> {
    let rows = query(
        &stack.db,
        &format!(
            "SELECT id::text AS id, status FROM \"order\".orders WHERE id IN ({})",
            id_list(orders)
        ),
    )
    .await
    .unwrap();
    rows.iter()
        .map(|row| {
            (
                row.try_get("", "id").unwrap(),
                row.try_get("", "status").unwrap(),
            )
        })
        .collect()
}

/// Every accepted order is one order (an Idempotency-Key retried through a fault made no
/// second one), none other exists, each is delivered or, when its cancel was asked, cancelled,
/// and no cancelled order's shipment ever left.
async fn assert_orders_exist_once_and_are_final(stack: &Stack, orders: &[Placed]) {
    let mut ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), orders.len(), "every accepted order is one order");
    let rows = query(&stack.db, "SELECT count(*) AS n FROM \"order\".orders")
        .await
        .unwrap();
    let stored: i64 = rows[0].try_get("", "n").unwrap();
    assert_eq!(stored, orders.len() as i64, "no order was stored twice");

    let statuses = final_statuses(stack, orders).await;
    for order in orders {
        let status = statuses[&order.id].as_str();
        match (status, order.cancel_requested) {
            ("delivered", _) | ("cancelled", true) => {}
            (other, _) => panic!(
                "order {} is {other} (cancel asked: {})",
                order.id, order.cancel_requested
            ),
        }
    }
    let rows = query(
        &stack.db,
        "SELECT count(*) AS n FROM \"order\".orders o JOIN delivery.shipments s ON s.order_id = o.id \
         WHERE o.status = 'cancelled' AND (s.dispatched_at IS NOT NULL OR s.delivered_at IS NOT NULL)",
    )
    .await
    .unwrap();
    let left: i64 = rows[0].try_get("", "n").unwrap();
    assert_eq!(left, 0, "a cancelled order's shipment left");
}

/// Each delivered order's life is in the streams once: created, confirmed, dispatched,
/// delivered; a cancelled one was never delivered.
async fn assert_events_once(stack: &Stack, orders: &[Placed]) {
    let events = stack.events_by_order().await;
    let statuses = final_statuses(stack, orders).await;
    for order in orders {
        let kinds: Vec<&str> = events
            .get(&order.id)
            .map(|e| e.iter().map(|e| e["type"].as_str().unwrap_or("")).collect())
            .unwrap_or_default();
        let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
        if statuses[&order.id] == "delivered" {
            for kind in [
                "order.created",
                "order.confirmed",
                "delivery.dispatched",
                "delivery.delivered",
            ] {
                assert_eq!(count(kind), 1, "order {}: {kinds:?}", order.id);
            }
        } else {
            assert_eq!(count("order.created"), 1, "order {}: {kinds:?}", order.id);
            assert_eq!(
                count("delivery.delivered"),
                0,
                "order {}: {kinds:?}",
                order.id
            );
        }
    }
}

/// Per order and ingredient: one reservation (delivered orders), and a release only for a
/// cancelled order that had one, never two.
async fn assert_stock_moved_once_per_order(stack: &Stack, orders: &[Placed]) {
    let statuses = final_statuses(stack, orders).await;
    let rows = query(
        &stack.db,
        "SELECT order_id::text AS order_id, ingredient_id, \
         count(*) FILTER (WHERE reason = 'reserve') AS reserved, \
         count(*) FILTER (WHERE reason = 'release') AS released \
         FROM stock.stock_movements WHERE order_id IS NOT NULL GROUP BY order_id, ingredient_id",
    )
    .await
    .unwrap();
    let mut reserved_ingredients: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let order: String = row.try_get("", "order_id").unwrap();
        let reserved: i64 = row.try_get("", "reserved").unwrap();
        let released: i64 = row.try_get("", "released").unwrap();
        let status = statuses.get(&order).map_or("unknown", String::as_str);
        assert!(
            reserved <= 1,
            "order {order} ({status}) reserved {reserved} times"
        );
        assert!(
            released <= reserved,
            "order {order} ({status}) released {released} of {reserved}"
        );
        if status == "delivered" {
            assert_eq!(released, 0, "delivered order {order} released its stock");
        } else {
            assert_eq!(released, reserved, "cancelled order {order} kept its stock");
        }
        *reserved_ingredients.entry(order).or_default() += reserved as usize;
    }
    for order in orders {
        if statuses[&order.id] == "delivered" {
            assert_eq!(
                reserved_ingredients.get(&order.id).copied().unwrap_or(0),
                3,
                "delivered order {} reserved each of its three ingredients once",
                order.id
            );
        }
    }
}
