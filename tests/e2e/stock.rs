//! End to end: reservations under concurrency and exactly-once low-stock email.

use std::collections::HashMap;

use futures::future::join_all;
use serde_json::Value;

use crate::helpers::{Stack, eventually};

/// 200 single-burger orders from 20 customers, all at once, against stock for exactly 50
/// burgers (onion: 1 000 g, 20 g each).
async fn two_hundred_orders_against_fifty_burgers(stack: &Stack) {
    let merchant = stack.merchant().await;
    let burger = stack.seed(&merchant).await;
    let customers: Vec<String> = join_all((0..20).map(|_| stack.api.new_customer()))
        .await
        .into_iter()
        .map(|customer| customer.unwrap())
        .collect();

    let requests = (0..200).map(|i| {
        let token = customers[i % customers.len()].clone();
        async move {
            // Accepted (202), or the call fails.
            let id = stack.api.place_one(&token, burger).await.unwrap();
            (token, id)
        }
    });
    let orders = join_all(requests).await;

    let mut statuses: HashMap<String, usize> = HashMap::new();
    eventually("every order is confirmed or rejected", || async {
        let merchant_view = stack
            .api
            .get_json::<Value>(&merchant, "/orders?status=pending&per_page=1")
            .await
            .unwrap();
        merchant_view["total"] == 0
    })
    .await;
    for (token, id) in &orders {
        let status = stack.api.order(token, *id).await.unwrap().status;
        *statuses.entry(status).or_default() += 1;
    }
    assert_eq!(statuses.get("confirmed"), Some(&50), "{statuses:?}");
    assert_eq!(statuses.get("rejected"), Some(&150), "{statuses:?}");

    let (token, rejected) = {
        let mut found = None;
        for (token, id) in &orders {
            if stack.api.order(token, *id).await.unwrap().status == "rejected" {
                found = Some((token.clone(), *id));
                break;
            }
        }
        found.unwrap()
    };
    let rejected = stack
        .api
        .get_json::<Value>(&token, &format!("/order/{rejected}"))
        .await
        .unwrap();
    assert_eq!(
        rejected["rejection"]["shortages"][0]["ingredient"], "Onion",
        "{rejected}"
    );
    assert_eq!(rejected["rejection"]["shortages"][0]["available"], 0);

    let levels = stack.api.levels(&merchant).await.unwrap();
    assert_eq!(
        levels,
        vec![
            ("Beef".into(), 20_000 - 50 * 150),
            ("Cheese".into(), 5_000 - 50 * 30),
            ("Onion".into(), 0)
        ]
    );
    stack.assert_stock_consistent().await;

    // Only onion crossed 50 % (beef ends at 62 %, cheese at 70 %): exactly one email.
    eventually("the low-stock email arrives", || async {
        !stack.mail.emails().await.is_empty()
    })
    .await;
    let emails = stack.mail.emails().await;
    assert_eq!(emails.len(), 1, "{emails:?}");
    let email = &emails[0];
    assert!(email.subject.contains("Onion"), "{email:?}");
    assert_eq!(email.to[0].address, "merchant@larder.local");
    assert!(email.text.contains('%'));
    assert!(!email.html.is_empty());
}

/// A courier that never comes: confirmed orders stay confirmed while we count them.
const NO_DELIVERY: [(&str, &str); 1] = [("DELIVERY_DISPATCH_DELAY_MS", "3600000")];

#[tokio::test]
async fn concurrent_orders_never_oversell_and_alert_once() {
    let stack = Stack::start_with(&NO_DELIVERY).await;
    two_hundred_orders_against_fifty_burgers(&stack).await;
}

#[tokio::test]
async fn concurrent_orders_never_oversell_with_two_stock_instances() {
    let mut stack = Stack::start_with(&NO_DELIVERY).await;
    stack.spawn(&["stock"]);
    two_hundred_orders_against_fifty_burgers(&stack).await;
}

#[tokio::test]
async fn no_second_email_until_a_restock_re_arms_the_alert() {
    let stack = Stack::start().await;
    let (merchant, burger, customer) = stack.shop().await;

    // 26 burgers take onion from 1 000 g to 480 g: below 50 %.
    stack
        .place_and_wait_for(&customer, burger, 26, "confirmed")
        .await;
    eventually("one email", || async {
        stack.mail.emails().await.len() == 1
    })
    .await;

    // Further down: no new alert.
    stack
        .place_and_wait_for(&customer, burger, 5, "confirmed")
        .await;

    // A restock that stays below 50 % does not re-arm; one that reaches it does.
    let onion = stack.ingredient(&merchant, "Onion").await;
    let restocked = stack.api.restock(&merchant, onion.id, 10).await.unwrap();
    assert_eq!(restocked.alert, "alerted");
    let restocked = stack.api.restock(&merchant, onion.id, 600).await.unwrap();
    assert_eq!(restocked.alert, "armed");
    assert_eq!(
        stack.mail.emails().await.len(),
        1,
        "no email for the orders in between"
    );

    // Crossing again after the re-arm: a second email.
    let burgers_to_cross = (restocked.stock - restocked.reference_level / 2) / 20 + 1;
    stack
        .place_and_wait_for(&customer, burger, burgers_to_cross, "confirmed")
        .await;
    eventually("a second email", || async {
        stack.mail.emails().await.len() == 2
    })
    .await;
    stack.assert_stock_consistent().await;
}
