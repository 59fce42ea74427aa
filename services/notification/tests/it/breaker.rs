use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notification::config::NotificationSettings;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::helpers::{beef_is_low, eventually, spawn_app, test_settings};

/// An SMTP server that is down for business: it accepts, answers `421` and hangs up, and
/// records when each connection came.
struct DeadSmtp {
    port: u16,
    connections: Arc<Mutex<Vec<Instant>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl DeadSmtp {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&connections);
        let accepting = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                seen.lock().unwrap().push(Instant::now());
                let _ = socket
                    .write_all(b"421 4.3.2 Service not available, closing channel\r\n")
                    .await;
                let _ = socket.shutdown().await;
            }
        });
        Self {
            port,
            connections,
            accepting,
        }
    }

    fn connections(&self) -> Vec<Instant> {
        self.connections.lock().unwrap().clone()
    }
}

impl Drop for DeadSmtp {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

#[actix::test]
async fn an_open_breaker_tries_a_dead_server_once_per_cool_down_instead_of_hammering_it() {
    let dead = DeadSmtp::start().await;
    let cool_down = Duration::from_millis(1500);
    // Ack wait of a first delivery 5 s: a held delivery can wait out the cool-down (5 s minus
    // the 1 s SMTP timeout and margin leaves 3 s) before its trial.
    let app = spawn_app(NotificationSettings {
        smtp_timeout_secs: 1,
        retry_base_secs: 5,
        retry_max_secs: 5,
        max_attempts: 10,
        breaker_failures: 1,
        breaker_cool_down_ms: cool_down.as_millis() as u64,
        batch_size: 1,
        ..test_settings(dead.port)
    })
    .await;
    let events = [beef_is_low(), beef_is_low(), beef_is_low()];

    // Three events at once: without a breaker all three would hit the server together.
    for event in &events {
        app.publish(event).await;
    }

    let attempts = eventually("four connections to the dead server", || async {
        let seen = dead.connections();
        (seen.len() >= 4).then_some(seen)
    })
    .await;
    for (n, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= cool_down - Duration::from_millis(100),
            "attempts {} and {} only {gap:?} apart (cool-down {cool_down:?})",
            n + 1,
            n + 2
        );
    }
    // The first email was held and tried on the breaker's pace; its error is the server's 421.
    let first = app
        .notification(&events[0])
        .await
        .expect("a notification row");
    assert!(first.attempts >= 1, "{first:?}");
    assert!(
        first
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("421") || e.contains("circuit open")),
        "{first:?}"
    );

    // A delivery held by the open breaker does not hold up shutdown.
    let stopping = Instant::now();
    app.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        stopping.elapsed()
    );
}
