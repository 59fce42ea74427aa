//! `GET /ready` follows its dependencies: on a NATS server or a PostgreSQL server of the test's
//! own, stopped and started again, it answers 503 naming the one that is down (not its error,
//! which describes hosts and users) and 200 once it is back, without a restart of the service.

use std::time::{Duration, Instant};

use larder_bus::testing::{NatsCluster, TestNats};
use migration::testing::{Auth, PostgresServer, TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_on};

/// Polls `GET /ready` until it answers `status`; returns that answer's body. The service only
/// notices a dependency is gone when it next talks to it, hence the wait.
async fn readiness_becomes(app: &TestApp, status: StatusCode) -> Value {
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < give_up {
        // A probe that hangs is as bad as one that lies: each has a few seconds.
        let sent = app
            .api
            .http()
            .get(app.api.url("/ready"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(response) = sent {
            let answered = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if answered == status {
                return body;
            }
            last = Some((answered, body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET /ready never answered {status}; last answer: {last:?}");
}

fn ready() -> Value {
    json!({ "status": "ok", "database": "ok", "nats": "ok" })
}

#[tokio::test]
async fn readiness_is_503_naming_nats_while_its_server_is_down_and_200_once_it_is_back() {
    // Declared first, dropped last: the app shuts down while its server still runs.
    let mut nats_server = NatsCluster::start(1).await;
    let nats = TestNats::on(&nats_server.url(), 1).await;
    let app = spawn_app_on(TestDatabase::new().await, nats, |_| {}).await;
    assert_eq!(readiness_becomes(&app, StatusCode::OK).await, ready());

    nats_server.kill(0);
    assert_eq!(
        readiness_becomes(&app, StatusCode::SERVICE_UNAVAILABLE).await,
        json!({ "status": "unavailable", "database": "ok", "nats": "unavailable" })
    );

    nats_server.restart(0);
    assert_eq!(readiness_becomes(&app, StatusCode::OK).await, ready());
}

#[tokio::test]
async fn readiness_is_503_naming_the_database_while_postgres_is_down_and_200_once_it_is_back() {
    let Some(postgres) = PostgresServer::start(Auth::Trust) else {
        panic!(
            "no PostgreSQL server binaries under /usr/lib/postgresql: ./stack.sh test installs them"
        );
    };
    let db = TestDatabase::new_on(&postgres.admin_url()).await;
    let app = spawn_app_on(db, TestNats::new().await, |_| {}).await;
    assert_eq!(readiness_becomes(&app, StatusCode::OK).await, ready());

    // As a crash would: every backend killed, the pool's connections with them.
    postgres.stop_immediately();
    assert_eq!(
        readiness_becomes(&app, StatusCode::SERVICE_UNAVAILABLE).await,
        json!({ "status": "unavailable", "database": "unavailable", "nats": "ok" })
    );

    postgres.start_again();
    assert_eq!(readiness_becomes(&app, StatusCode::OK).await, ready());
}
