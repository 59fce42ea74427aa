//! The hardened HTTP edge: slow and idle clients cannot lock the service out, login
//! cost is bounded, every input gets a problem (never a panic or a 500), and the headers say
//! what they should. Against a real server on a random port.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    MERCHANT_EMAIL, TestApp, assert_problem, burgers, eventually, spawn_app, spawn_app_with,
};

const SLOW_CLIENTS: usize = 600;

/// Opens `n` connections to the app and writes `prefix` on each (nothing when empty).
async fn open_slow_connections(app: &TestApp, n: usize, prefix: &[u8]) -> Vec<TcpStream> {
    // 600 client sockets plus the server's 600 live in this one process.
    order::server::raise_open_file_limit().expect("the open-file limit can be read");
    let address = app.api.base_url().trim_start_matches("http://").to_owned();
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        if !prefix.is_empty() {
            stream.write_all(prefix).await.expect("write the prefix");
        }
        streams.push(stream);
    }
    streams
}

/// `/health` answers 200 within a second on a fresh connection.
async fn assert_health_answers_within_a_second(app: &TestApp, context: &str) {
    let started = Instant::now();
    let response = reqwest::Client::new()
        .get(app.api.url("/health"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{context}: /health did not answer within 1 s: {e}"));
    assert_eq!(response.status(), StatusCode::OK, "{context}");
    assert!(started.elapsed() < Duration::from_secs(1), "{context}");
}

/// Reads until the server closes the connection (or `within` passes); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

#[tokio::test]
async fn six_hundred_slow_bodies_neither_block_health_nor_stay_open() {
    let app = spawn_app_with(|s| {
        s.http_body_timeout_secs = 2;
        s.http_header_timeout_secs = 2;
    })
    .await;
    // Headers complete, then one byte of a 100-byte body, then nothing.
    let head = b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{";
    let mut slow = open_slow_connections(&app, SLOW_CLIENTS, head).await;

    assert_health_answers_within_a_second(&app, "600 slow bodies open").await;
    let ready = app.api.get_anonymous("/ready").await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "/ready with 600 slow bodies"
    );

    let started = Instant::now();
    for stream in &mut slow {
        let answer = read_until_closed(stream, Duration::from_secs(10))
            .await
            .expect("a slow body is answered and closed after the body timeout");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "closed {:?} after the health check (body timeout 2 s)",
        started.elapsed()
    );
}

#[tokio::test]
async fn silent_half_sent_and_idle_keep_alive_connections_are_closed_at_the_header_timeout() {
    let app = spawn_app_with(|s| s.http_header_timeout_secs = 2).await;
    let mut silent = open_slow_connections(&app, SLOW_CLIENTS / 2, b"").await;
    let mut partial = open_slow_connections(
        &app,
        SLOW_CLIENTS / 2,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Dri",
    )
    .await;
    // A keep-alive connection that made one request and then says nothing.
    let mut kept = open_slow_connections(&app, 1, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;

    assert_health_answers_within_a_second(&app, "600 silent or half-sent connections open").await;

    let started = Instant::now();
    for stream in silent
        .iter_mut()
        .chain(partial.iter_mut())
        .chain(kept.iter_mut())
    {
        read_until_closed(stream, Duration::from_secs(10))
            .await
            .expect("a silent or half-sent connection is closed at the header timeout");
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "closed {:?} after the health check (header timeout 2 s)",
        started.elapsed()
    );
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

/// Before: 64 concurrent logins took the server from 0.45 to 2.8 GB. Now at most one argon2
/// hash per core runs at once (19 MiB each), the rest wait in a bounded queue (503 beyond it).
/// The bound is loose because other tests share this process.
const LOGIN_FLOOD_RSS_GROWTH_BOUND: u64 = 256 * 1024 * 1024;

#[tokio::test]
async fn a_login_flood_keeps_memory_flat_and_answers_401_or_503_never_500() {
    let app = spawn_app_with(|s| {
        s.auth_rate_per_ip_per_min = 100_000;
        s.auth_rate_per_account_per_min = 100_000;
    })
    .await;
    let before = rss_bytes();
    let mut peak = before;
    let logins: Vec<_> = (0..128)
        .map(|i| {
            let client = app.api.http().clone();
            let url = app.api.url("/auth/login");
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({ "email": format!("flood{i}@example.com"), "password": "wrong-password" }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for login in logins {
        statuses.push(login.await.unwrap());
        peak = peak.max(rss_bytes());
    }
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::UNAUTHORIZED),
        "the queue admits some: {statuses:?}"
    );
    let growth = peak.saturating_sub(before);
    eprintln!(
        "login flood: RSS {} MiB -> peak {} MiB",
        before >> 20,
        peak >> 20
    );
    assert!(
        growth < LOGIN_FLOOD_RSS_GROWTH_BOUND,
        "RSS grew by {} MiB",
        growth >> 20
    );
}

#[tokio::test]
async fn logins_beyond_the_address_quota_get_429_with_retry_after() {
    let app = spawn_app_with(|s| s.auth_rate_per_ip_per_min = 5).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = app
            .api
            .login("nobody@example.com", "wrong-password")
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry_after), "{retry_after}");
            assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "over quota").await;
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            statuses.push(response.status());
        }
    }
    assert_eq!(
        statuses[..5],
        [StatusCode::UNAUTHORIZED; 5],
        "the first five pass: {statuses:?}"
    );
    assert_eq!(
        statuses[5..],
        [StatusCode::TOO_MANY_REQUESTS; 3],
        "{statuses:?}"
    );
    let register = app
        .api
        .register("new@example.com", "password-123")
        .await
        .unwrap();
    assert_eq!(
        register.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "register shares the address quota"
    );
}

#[tokio::test]
async fn thirty_wrong_passwords_then_the_right_one_is_still_refused() {
    let app = spawn_app().await;
    let mut limited = 0;
    for _ in 0..30 {
        let status = app
            .api
            .login(MERCHANT_EMAIL, "wrong-password")
            .await
            .unwrap()
            .status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
        limited += usize::from(status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(limited > 0, "failures slow the account down");
    let right = app
        .api
        .login(MERCHANT_EMAIL, crate::helpers::MERCHANT_PASSWORD)
        .await
        .unwrap();
    assert_problem(
        right,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password after a guessing run",
    )
    .await;
}

#[tokio::test]
async fn a_page_beyond_any_offset_is_a_422_not_a_panic() {
    let app = spawn_app().await;
    let token = app.api.new_customer().await.unwrap();
    for query in [
        "page=461168601842738792",
        "page=18446744073709551615",
        "page=1000001",
        "per_page=101",
    ] {
        let response = app
            .api
            .get(&token, &format!("/orders?{query}"))
            .await
            .unwrap();
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, query).await;
    }
    let last = app
        .api
        .get(&token, "/orders?page=1000000&per_page=100")
        .await
        .unwrap();
    assert_eq!(last.status(), StatusCode::OK);
}

#[tokio::test]
async fn nul_and_control_characters_in_credentials_are_422_not_500() {
    let app = spawn_app().await;
    for (email, password, field) in [
        ("a\u{0}b@example.com", "password-123", "email"),
        ("ab@example.com\u{7}", "password-123", "email"),
        ("ab@example.com", "pass\u{0}word-123", "password"),
    ] {
        for path in ["/auth/register", "/auth/login"] {
            let body = json!({ "email": email, "password": password });
            let response = app.api.post_anonymous(path, &body).await.unwrap();
            let problem = assert_problem(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("{path} {email:?}"),
            )
            .await;
            assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        }
    }
}

#[tokio::test]
async fn tokens_of_unknown_or_deleted_users_are_401() {
    let app = spawn_app().await;
    let product = app.seed().await;
    let now = chrono::Utc::now().timestamp();
    let keys = order::auth::TokenKeys::new(order::config::DEV_JWT_SECRET, 3600);
    let stranger = keys.issue(uuid::Uuid::new_v4(), order::auth::Role::Customer, None, now);

    // A customer who is deleted after logging in (nothing has seen the token yet).
    let email = format!("gone{}@example.com", uuid::Uuid::new_v4().simple());
    app.api.register(&email, "password-123").await.unwrap();
    let gone = app.api.sign_in(&email, "password-123").await.unwrap();
    app.order_db
        .execute_unprepared(&format!("DELETE FROM users WHERE email = '{email}'"))
        .await
        .unwrap();

    for (who, token) in [("unknown user", &stranger), ("deleted user", &gone)] {
        let response = app
            .api
            .post_order(token, &burgers(product, 1), &[])
            .await
            .unwrap();
        assert_problem(response, StatusCode::UNAUTHORIZED, who).await;
        let response = app.api.get(token, "/orders").await.unwrap();
        let problem = assert_problem(response, StatusCode::UNAUTHORIZED, who).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("no account"),
            "{problem}"
        );
    }
}

/// Serves a handler that panics behind the request middleware; returns its port and stopper.
async fn serve_a_panicking_handler() -> (u16, tokio_util::sync::CancellationToken) {
    use poem::{EndpointExt, Route, handler};
    #[handler]
    fn explode() -> &'static str {
        panic!("secret internals")
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Route::new()
        .at("/explode", explode)
        .with(order::api::context::RequestContext {
            max_in_flight: 8,
            body_timeout: Duration::from_secs(1),
        });
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(order::server::serve(
        listener,
        app,
        order::server::HttpLimits::default(),
        shutdown.clone(),
    ));
    (port, shutdown)
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_with_the_request_id() {
    let (port, shutdown) = serve_a_panicking_handler().await;
    let response = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/explode"))
        .header("X-Request-Id", "boom-1")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, StatusCode::INTERNAL_SERVER_ERROR, "panic").await;
    assert_eq!(problem["request_id"], "boom-1");
    assert!(
        !problem.to_string().contains("secret internals"),
        "{problem}"
    );
    // The server goes on serving.
    let again = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/explode"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
    shutdown.cancel();
}

/// Run by the test below in a process of its own, whose stderr it reads.
#[tokio::test]
#[ignore = "a child process of a_handler_panic_prints_no_backtrace_on_stderr"]
async fn child_process_serving_a_panicking_handler() {
    let (port, shutdown) = serve_a_panicking_handler().await;
    let response = reqwest::get(format!("http://127.0.0.1:{port}/explode"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    shutdown.cancel();
}

#[test]
fn a_handler_panic_prints_no_backtrace_on_stderr() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "edge::child_process_serving_a_panicking_handler",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_BACKTRACE", "full")
        .env_remove("TEST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test: {stdout}"
    );
    assert!(
        !stderr.contains("panicked at") && !stderr.contains("stack backtrace"),
        "a handler's panic went to stderr: {stderr}"
    );
}

#[tokio::test]
async fn a_merchant_email_registered_by_a_customer_stops_the_bootstrap() {
    let app = spawn_app().await;
    let taken = format!("boss{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(
        app.api
            .register(&taken, "password-123")
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let mut config = crate::helpers::config_for(&app);
    config.settings.merchant_email = taken.clone();
    config.settings.merchant_name = "Takeover Burgers".into();
    let error = std::thread::spawn(move || {
        actix::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        })
        .block_on(async move {
            order::Application::build(config)
                .await
                .err()
                .map(|e| format!("{e:#}"))
        })
    })
    .join()
    .unwrap()
    .expect("the bootstrap refuses a customer's email");
    assert!(
        error.contains("MERCHANT_EMAIL") && error.contains(&taken) && error.contains("customer"),
        "{error}"
    );
    // The customer is still a customer.
    let token = app.api.sign_in(&taken, "password-123").await.unwrap();
    let seed = app
        .api
        .post(&token, "/order/seed", &Value::Null)
        .await
        .unwrap();
    assert_eq!(seed.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_idempotency_key_that_cannot_be_stored_exactly_is_422() {
    let app = spawn_app().await;
    let (product, token) = app.burger_and_customer().await;
    for key in ["ключ-1".as_bytes(), b"caf\xe9", b"tab\there"] {
        let response = app
            .api
            .http()
            .post(app.api.url("/order"))
            .bearer_auth(&token)
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(key).unwrap(),
            )
            .json(&burgers(product, 1))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            &String::from_utf8_lossy(key),
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    }
    let orders: Value = app.api.get_json(&token, "/orders").await.unwrap();
    assert_eq!(orders["total"], 0, "no order was placed without its key");
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = spawn_app().await;

    let unauthorized = app.api.get_anonymous("/orders").await.unwrap();
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
    assert!(
        unauthorized.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"),
    );

    let wrong_method = app
        .api
        .http()
        .delete(app.api.url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "GET, HEAD");
    let wrong_method = app.api.get_anonymous("/order/seed").await.unwrap();
    assert_eq!(wrong_method.headers()["allow"], "POST");

    let login = app
        .api
        .login(MERCHANT_EMAIL, crate::helpers::MERCHANT_PASSWORD)
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["cache-control"], "no-store");

    for path in ["/health", "/docs/", "/openapi.json", "/nope"] {
        let response = app.api.get_anonymous(path).await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            headers["content-security-policy"], "frame-ancestors 'none'",
            "{path}"
        );
    }
}

/// The service cut off its database, from the maintenance database, as if PostgreSQL had gone
/// away: no new connections, and the pool's are terminated. Until [`DatabaseCutOff::reopen`]
/// (a failing test leaves it closed; its database is dropped anyway).
struct DatabaseCutOff {
    maintenance: sea_orm::DatabaseConnection,
    name: String,
}

impl DatabaseCutOff {
    async fn start(app: &TestApp) -> Self {
        let name = app.test_db().name().to_owned();
        let maintenance =
            sea_orm::Database::connect(app.test_db().admin.with_database("postgres").url)
                .await
                .unwrap();
        for sql in [
            format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"),
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ),
        ] {
            maintenance.execute_unprepared(&sql).await.unwrap();
        }
        Self { maintenance, name }
    }

    async fn reopen(self) {
        let sql = format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", self.name);
        self.maintenance.execute_unprepared(&sql).await.unwrap();
    }
}

#[tokio::test]
async fn readiness_names_the_dependency_that_is_down_without_its_error() {
    let app = spawn_app().await;
    let cut_off = DatabaseCutOff::start(&app).await;
    let response = app.api.get_anonymous("/ready").await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    cut_off.reopen().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(
        body,
        json!({ "status": "unavailable", "database": "unavailable", "nats": "ok" })
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_a_new_login_works() {
    let app = spawn_app().await;
    let email = format!("rev{}@example.com", uuid::Uuid::new_v4().simple());
    app.api.register(&email, "password-123").await.unwrap();
    let token = app.api.sign_in(&email, "password-123").await.unwrap();
    assert_eq!(
        app.api.get(&token, "/orders").await.unwrap().status(),
        StatusCode::OK
    );
    let user = order::auth::TokenKeys::new(order::config::DEV_JWT_SECRET, 3600)
        .verify(&token)
        .unwrap()
        .sub;

    assert!(
        order::store::revoke_tokens(&app.order_db, user)
            .await
            .unwrap()
    );

    // Known users are remembered for a second.
    crate::helpers::eventually("the revoked token is refused", || async {
        app.api.get(&token, "/orders").await.unwrap().status() == StatusCode::UNAUTHORIZED
    })
    .await;
    let problem = assert_problem(
        app.api.get(&token, "/orders").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "revoked",
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("revoked"),
        "{problem}"
    );
    let fresh = app.api.sign_in(&email, "password-123").await.unwrap();
    assert_eq!(
        app.api.get(&fresh, "/orders").await.unwrap().status(),
        StatusCode::OK
    );
}

/// With PostgreSQL away, operations that need it answer 503 problem+json with `Retry-After`
/// within a few seconds: the client can tell "try again" from "failed", and nothing hangs.
#[tokio::test]
async fn with_the_database_away_operations_answer_503_with_retry_after() {
    let app = spawn_app().await;
    let (burger, customer) = app.burger_and_customer().await;
    let cut_off = DatabaseCutOff::start(&app).await;

    let started = std::time::Instant::now();
    let placed = app
        .api
        .post_order(&customer, &burgers(burger, 1), &[])
        .await
        .unwrap();
    let listed = app.api.get(&customer, "/orders").await.unwrap();
    let elapsed = started.elapsed();
    cut_off.reopen().await;

    assert!(elapsed < std::time::Duration::from_secs(15), "{elapsed:?}");
    for (what, response) in [("place", placed), ("list", listed)] {
        assert!(
            response.headers().contains_key("retry-after"),
            "{what}: {} {:?}",
            response.status(),
            response.headers()
        );
        assert_problem(response, StatusCode::SERVICE_UNAVAILABLE, what).await;
    }
    // And once it is back, the same calls work.
    eventually("the database answers again", || async {
        app.api.get(&customer, "/orders").await.unwrap().status() == StatusCode::OK
    })
    .await;
}
