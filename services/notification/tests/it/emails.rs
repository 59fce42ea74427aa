use std::time::Duration;

use futures::StreamExt as _;
use larder_contract::commands::ListAlerts;
use uuid::Uuid;

use larder_test_support::MailInbox;

use crate::helpers::{MERCHANT_EMAIL, beef_is_low, eventually, spawn_app, test_settings};

#[actix::test]
async fn a_stock_low_event_sends_one_email_to_the_merchant_naming_the_ingredient() {
    let maildev = MailInbox::start().await;
    let app = spawn_app(test_settings(maildev.smtp_port())).await;
    let event = beef_is_low();

    app.publish(&event).await;

    let emails = eventually("the email", || async {
        Some(maildev.emails().await).filter(|emails| !emails.is_empty())
    })
    .await;
    let row = app.wait_until_sent(&event).await;
    app.wait_until_consumer_is_drained().await;
    assert_eq!(maildev.emails().await.len(), 1, "{emails:#?}");
    let email = &emails[0];
    let to: Vec<_> = email.to.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(to, [MERCHANT_EMAIL]);
    assert!(email.subject.contains("Beef"), "{}", email.subject);
    for (body, part) in [(&email.text, "text"), (&email.html, "HTML")] {
        for expected in ["Beef", "9850 g", "20000 g", "49 %"] {
            assert!(
                body.contains(expected),
                "the {part} part lacks {expected:?}: {body}"
            );
        }
    }
    assert_eq!(row.recipient, MERCHANT_EMAIL);
    assert_eq!(row.ingredient_name, "Beef");
    assert_eq!(row.attempts, 1);
    assert_eq!(row.last_error, None);
    assert!(row.sent_at.is_some());

    app.stop().await;
}

#[actix::test]
async fn the_same_event_delivered_twice_sends_one_email() {
    let maildev = MailInbox::start().await;
    let app = spawn_app(test_settings(maildev.smtp_port())).await;
    let event = beef_is_low();

    // Twice at once (one batch), then once more after the email went out (a replay).
    app.publish(&event).await;
    app.publish_with_message_id(&event, &format!("copy-{}", Uuid::new_v4()))
        .await;
    app.wait_until_sent(&event).await;
    app.publish_with_message_id(&event, &format!("replay-{}", Uuid::new_v4()))
        .await;
    app.wait_until_consumer_is_drained().await;

    assert_eq!(maildev.emails().await.len(), 1);
    let row = app.notification(&event).await.expect("a notification row");
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));

    app.stop().await;
}

#[actix::test]
async fn two_events_send_two_emails() {
    let maildev = MailInbox::start().await;
    let app = spawn_app(test_settings(maildev.smtp_port())).await;
    let beef = beef_is_low();
    let mut onion = beef_is_low();
    onion.data.ingredient = "Onion".into();

    app.publish(&beef).await;
    app.publish(&onion).await;

    let emails = eventually("two emails", || async {
        Some(maildev.emails().await).filter(|emails| emails.len() >= 2)
    })
    .await;
    app.wait_until_consumer_is_drained().await;
    let mut subjects: Vec<_> = emails.iter().map(|e| e.subject.clone()).collect();
    subjects.sort();
    assert_eq!(subjects.len(), 2);
    assert!(
        subjects[0].contains("Beef") && subjects[1].contains("Onion"),
        "{subjects:?}"
    );
    assert_eq!(maildev.emails().await.len(), 2);

    app.stop().await;
}

#[actix::test]
async fn the_merchants_alerts_are_served_over_nats_with_the_emails_outcome_and_each_change_pushed()
{
    let maildev = MailInbox::start().await;
    let app = spawn_app(test_settings(maildev.smtp_port())).await;
    let namespace = app.nats.namespace().clone();
    let mut pushes = app
        .nats
        .client
        .subscribe(namespace.subject(larder_contract::push::ALERTS_CHANGED))
        .await
        .unwrap();
    app.nats.client.flush().await.unwrap();
    let event = beef_is_low();

    app.publish(&event).await;
    app.wait_until_sent(&event).await;

    let list = |merchant_id| {
        let (client, namespace) = (app.nats.client.clone(), namespace.clone());
        async move {
            larder_bus::service::call(
                &client,
                &namespace,
                &ListAlerts {
                    merchant_id,
                    limit: 10,
                },
                Duration::from_secs(5),
            )
            .await
            .expect("notification answers list-alerts")
        }
    };
    let alerts = list(event.data.merchant_id).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let alert = &alerts[0];
    assert_eq!(alert.event_id, event.id);
    assert_eq!(
        (alert.ingredient.as_str(), alert.unit.as_str()),
        ("Beef", "g")
    );
    assert_eq!(
        (alert.level, alert.reference_level, alert.percent),
        (9_850, 20_000, 49)
    );
    assert_eq!(alert.recipient, MERCHANT_EMAIL);
    assert_eq!(alert.email_status, "sent");
    assert_eq!(alert.attempts, 1);
    assert!(alert.sent_at.is_some());
    assert!(
        list(event.data.merchant_id + 1).await.is_empty(),
        "another merchant has none"
    );

    // The row's creation and the email's outcome were pushed, for this merchant.
    let pushed = tokio::time::timeout(Duration::from_secs(5), pushes.next())
        .await
        .expect("a push within 5 s")
        .unwrap();
    let changed: larder_contract::push::AlertsChanged =
        serde_json::from_slice(&pushed.payload).unwrap();
    assert_eq!(changed.merchant_ids, vec![event.data.merchant_id]);

    app.stop().await;
}
