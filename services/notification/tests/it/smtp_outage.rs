use std::time::{Duration, Instant};

use larder_contract::subjects;
use notification::domain::NotificationStatus;

use larder_test_support::MailInbox;

use crate::helpers::{beef_is_low, eventually, spawn_app, test_settings};

#[actix::test]
async fn smtp_down_then_back_delivers_the_email_once() {
    let mut maildev = MailInbox::start().await;
    maildev.stop(); // nothing listens yet
    let app = spawn_app(notification::config::NotificationSettings {
        max_attempts: 20,
        ..test_settings(maildev.smtp_port())
    })
    .await;
    let event = beef_is_low();

    app.publish(&event).await;
    let failing = app
        .notification_when(&event, "two failed attempts", |row| row.attempts >= 2)
        .await;
    assert_eq!(failing.status, NotificationStatus::Pending);
    assert!(
        failing
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("SMTP")),
        "{failing:?}"
    );

    maildev.start_again().await;

    eventually("the email", || async {
        Some(maildev.emails().await).filter(|emails| !emails.is_empty())
    })
    .await;
    let row = app.wait_until_sent(&event).await;
    app.wait_until_consumer_is_drained().await;
    assert_eq!(maildev.emails().await.len(), 1);
    assert!(row.attempts > failing.attempts, "{row:?}");
    assert!(row.sent_at.is_some());
    assert!(app.dead_letters().await.is_empty());

    app.stop().await;
}

#[actix::test]
async fn an_email_held_while_smtp_is_down_goes_out_soon_after_it_is_back_not_at_the_next_retry_step()
 {
    let mut maildev = MailInbox::start().await;
    maildev.stop(); // nothing listens yet
    let retry_step = Duration::from_secs(60);
    let app = spawn_app(notification::config::NotificationSettings {
        smtp_timeout_secs: 1,
        retry_base_secs: retry_step.as_secs(),
        retry_max_secs: retry_step.as_secs(),
        breaker_failures: 1,
        breaker_cool_down_ms: 500,
        ..test_settings(maildev.smtp_port())
    })
    .await;
    let event = beef_is_low();

    app.publish(&event).await;
    // Tried again while held, on the breaker's pace, not once per retry step.
    app.notification_when(&event, "three failed attempts", |row| row.attempts >= 3)
        .await;

    let back = Instant::now();
    maildev.start_again().await;
    eventually("the email", || async {
        Some(maildev.emails().await).filter(|emails| !emails.is_empty())
    })
    .await;
    assert!(
        back.elapsed() < retry_step / 4,
        "the email went out {:?} after the server was back",
        back.elapsed()
    );
    app.wait_until_sent(&event).await;
    app.wait_until_consumer_is_drained().await;
    assert_eq!(maildev.emails().await.len(), 1);
    assert!(app.dead_letters().await.is_empty());

    app.stop().await;
}

#[actix::test]
async fn smtp_never_back_dead_letters_the_event_and_marks_the_notification_failed() {
    let mut maildev = MailInbox::start().await;
    maildev.stop(); // and never back
    let settings = notification::config::NotificationSettings {
        max_attempts: 3,
        ..test_settings(maildev.smtp_port())
    };
    let app = spawn_app(settings).await;
    let event = beef_is_low();

    app.publish(&event).await;

    let dead = eventually("the dead letter", || async {
        app.dead_letters().await.pop()
    })
    .await;
    assert_eq!(dead.consumer, "notification-stock-low");
    assert_eq!(
        dead.subject,
        app.nats.namespace().subject(subjects::STOCK_LOW)
    );
    assert_eq!(dead.deliveries, Some(3));
    assert!(
        dead.reason.starts_with("gave up after 3 deliveries") && dead.reason.contains("SMTP"),
        "{}",
        dead.reason
    );
    assert!(dead.payload_preview.contains(&event.id.to_string()));
    // It is stored on dlq.notification-stock-low.
    let stored = app
        .nats
        .jetstream
        .get_stream(app.nats.namespace().stream("DLQ"))
        .await
        .unwrap()
        .get_raw_message(dead.sequence)
        .await
        .unwrap();
    assert_eq!(
        stored.subject.as_str(),
        app.nats
            .namespace()
            .subject(&subjects::dead_letter("notification-stock-low"))
    );
    let row = app
        .notification_when(&event, "the notification to fail", |row| {
            row.status == NotificationStatus::Failed
        })
        .await;
    assert_eq!(row.attempts, 3);
    assert!(row.last_error.is_some_and(|e| e.contains("SMTP")));
    assert_eq!(row.sent_at, None);

    app.stop().await;
}

#[actix::test]
async fn a_replayed_dead_letter_is_sent_once_smtp_is_back() {
    let mut maildev = MailInbox::start().await;
    maildev.stop();
    let app = spawn_app(notification::config::NotificationSettings {
        max_attempts: 2,
        ..test_settings(maildev.smtp_port())
    })
    .await;
    let event = beef_is_low();
    app.publish(&event).await;
    let dead = eventually("the dead letter", || async {
        app.dead_letters().await.pop()
    })
    .await;
    app.notification_when(&event, "the notification to fail", |row| {
        row.status == NotificationStatus::Failed
    })
    .await;

    maildev.start_again().await;
    larder_bus::dlq::replay(&app.nats.jetstream, app.nats.namespace(), dead.sequence)
        .await
        .expect("the dead letter is replayed");

    let row = app.wait_until_sent(&event).await;
    app.wait_until_consumer_is_drained().await;
    assert_eq!(maildev.emails().await.len(), 1);
    assert_eq!(row.attempts, 3);

    app.stop().await;
}
