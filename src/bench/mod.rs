//! `larder bench`: offers orders to a running stack over keep-alive HTTP, waits until every
//! order is final, and reports throughput, latency and a consistency check.
//!
//! Closed loop: C clients, each sending its next order when the previous is answered.
//! Open loop: a fixed rate R for D seconds, whatever the answers do (no coordinated omission).
//! End-to-end latency is from sending `POST /order` to the `confirmed`/`rejected` entry of the
//! order's history, read from the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use larder_api_client::{Client, NewOrder, OrderId};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;
use stock::audit::Inconsistency;
use uuid::Uuid;

mod cpu;

pub use cpu::CpuPerOrder;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// C concurrent clients, as fast as answers come.
    Closed,
    /// A fixed offered rate.
    Open,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The order service.
    #[arg(long, env = "BENCH_BASE_URL", default_value = "http://127.0.0.1:3000")]
    pub base_url: String,
    /// The stack's admin database URL, for the final-status wait and the consistency check
    /// (it reads the order and stock schemas).
    #[arg(
        id = "bench_database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/larder?sslmode=disable"
    )]
    pub database_url: String,
    /// The stack's NATS servers (comma-separated), to find the nats-server processes whose CPU
    /// counts.
    #[arg(
        id = "bench_nats_url",
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    #[arg(long, value_enum, default_value_t = Mode::Closed)]
    pub mode: Mode,
    /// Closed loop: concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Open loop: orders offered per second.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// How long to offer orders.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Burgers per order.
    #[arg(long, default_value_t = 1)]
    pub quantity: i64,
    /// Stock for exactly this many burgers (at least 50, the seeded amount); default: plenty.
    #[arg(long)]
    pub stock_burgers: Option<i64>,
    /// How long to wait for the last orders to become final.
    #[arg(long, default_value_t = 120)]
    pub settle_timeout_secs: u64,
    #[arg(
        id = "bench_merchant_email",
        long = "merchant-email",
        env = "MERCHANT_EMAIL",
        default_value = "merchant@larder.local"
    )]
    pub merchant_email: String,
    #[arg(
        id = "bench_merchant_password",
        long = "merchant-password",
        env = "MERCHANT_PASSWORD",
        default_value = "merchant-password"
    )]
    pub merchant_password: String,
}

/// One `POST /order`.
struct Sample {
    sent_at: DateTime<Utc>,
    latency: Duration,
    order_id: Option<Uuid>,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut millis: Vec<f64>) -> Self {
        if millis.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                max: 0.0,
            };
        }
        millis.sort_by(f64::total_cmp);
        let at =
            |q: f64| millis[((millis.len() as f64 * q).ceil() as usize).clamp(1, millis.len()) - 1];
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    mode: String,
    duration_secs: f64,
    offered: u64,
    offered_per_s: f64,
    accepted: u64,
    accepted_per_s: f64,
    completed_per_s: f64,
    accept_latency_ms: Percentiles,
    end_to_end_latency_ms: Percentiles,
    confirmed: u64,
    rejected: u64,
    errors: u64,
    /// CPU of the stack on this machine per completed order (the bench itself not counted).
    cpu_per_order_ms: CpuPerOrder,
    consistency: Consistency,
}

#[derive(Debug, Serialize)]
struct Consistency {
    every_order_final: bool,
    no_negative_stock: bool,
    movements_sum_to_stock: bool,
    reservations_match_confirmed_orders: bool,
    /// What [`stock::audit::find_inconsistencies`] found, one line each.
    inconsistencies: Vec<String>,
    ok: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(256))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = Client::with_http(client, &args.base_url);
    // Named, so that the CPU probe can leave the bench's own backends out.
    let separator = if args.database_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut options = sea_orm::ConnectOptions::new(format!(
        "{}{separator}application_name={}",
        args.database_url,
        cpu::BENCH_APPLICATION_NAME
    ));
    // The admin reads the order and stock schemas (each service's role sees only its own).
    options
        .sqlx_logging(false)
        .set_schema_search_path("\"order\",stock");
    let db = sea_orm::Database::connect(options)
        .await
        .context("Failed to connect to the database")?;

    // Arrange: merchant, stock, one fresh customer.
    let merchant = api
        .sign_in(&args.merchant_email, &args.merchant_password)
        .await
        .context("merchant login")?;
    let catalogue = api.seed(&merchant).await?;
    let product = catalogue
        .products
        .first()
        .context("seed returned no product")?;
    let burgers = args.stock_burgers.unwrap_or(100_000_000);
    if burgers < 50 {
        bail!("--stock-burgers must be at least 50, the seeded amount");
    }
    for recipe in &product.recipe {
        let id = recipe.ingredient_id;
        let level = catalogue
            .ingredients
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.stock)
            .context("recipe ingredient missing from the catalogue")?;
        let add = burgers * recipe.amount - level;
        if add > 0 {
            api.restock(&merchant, id, add).await?;
        }
    }
    let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
    // Any answer will do (as before): the sign-in below fails if the account is not there.
    api.register(&email, "bench-password").await?;
    let customer = api.sign_in(&email, "bench-password").await?;
    let customer_id = customer_id_of(&db, &email).await?;
    let body = Arc::new(NewOrder::of(product.id, args.quantity));

    // Act: offer orders.
    let counters = Arc::new(Counters::default());
    let progress = tokio::spawn(report_progress(counters.clone()));
    let cpu = cpu::CpuProbe::start(&db, &args.nats_url).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    let samples = match args.mode {
        Mode::Closed => {
            closed_loop(&api, &customer, body, args.concurrency, deadline, &counters).await
        }
        Mode::Open => open_loop(&api, &customer, body, args.rate, deadline, &counters).await,
    };
    let offered_for = started.elapsed();
    progress.abort();
    eprintln!();

    // Wait until every accepted order is final.
    let settle_deadline = Instant::now() + Duration::from_secs(args.settle_timeout_secs);
    let mut pending = count(
        &db,
        "SELECT count(*) FROM orders WHERE customer_id = $1 AND status = 'pending'",
        customer_id,
    )
    .await?;
    while pending > 0 && Instant::now() < settle_deadline {
        eprint!("\rwaiting for {pending} orders to become final   ");
        tokio::time::sleep(Duration::from_millis(200)).await;
        pending = count(
            &db,
            "SELECT count(*) FROM orders WHERE customer_id = $1 AND status = 'pending'",
            customer_id,
        )
        .await?;
    }
    eprintln!();

    // The CPU window ends when the settle wait saw the last order final.
    let completed = count(
        &db,
        "SELECT count(*) FROM orders WHERE customer_id = $1 AND status <> 'pending'",
        customer_id,
    )
    .await?;
    let settled = Settled {
        every_order_final: pending == 0,
        cpu_per_order_ms: cpu.finish(completed as u64).await,
    };
    let report = build_report(
        &db,
        args.mode,
        customer_id,
        &samples,
        offered_for,
        settled,
        &counters,
    )
    .await?;
    print_table(&report);
    println!("{}", serde_json::to_string(&report)?);
    if !report.consistency.ok {
        bail!("consistency check failed");
    }
    Ok(())
}

/// The bench's measured request: one `POST /order` through the shared client (its URL built
/// once, the body serialised straight from the shared `NewOrder`), timed until the answer's id
/// is read.
async fn place_order(api: &Client, token: &str, body: &NewOrder) -> Sample {
    let sent_at = Utc::now();
    let started = Instant::now();
    let result = api.post_order(token, body, &[]).await;
    let order_id = match result {
        Ok(response) if response.status().as_u16() == 202 => {
            response.json::<OrderId>().await.ok().map(|o| o.id)
        }
        _ => None,
    };
    Sample {
        sent_at,
        latency: started.elapsed(),
        order_id,
    }
}

async fn closed_loop(
    api: &Client,
    token: &str,
    body: Arc<NewOrder>,
    concurrency: usize,
    deadline: Instant,
    counters: &Counters,
) -> Vec<Sample> {
    let clients = (0..concurrency.max(1)).map(|_| {
        let body = body.clone();
        async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                let sample = place_order(api, token, &body).await;
                tally(counters, &sample);
                samples.push(sample);
            }
            samples
        }
    });
    futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect()
}

async fn open_loop(
    api: &Client,
    token: &str,
    body: Arc<NewOrder>,
    rate: u64,
    deadline: Instant,
    counters: &Counters,
) -> Vec<Sample> {
    use futures::StreamExt;
    // Each order is its own task, so sending never waits for answers (or for one task to poll
    // thousands of them); at most this many may be outstanding before the client counts errors.
    const MAX_OUTSTANDING: usize = 20_000;
    // Send in 10 ms slices so high rates do not depend on a 0.2 ms timer.
    let slice = Duration::from_millis(10);
    let per_slice = rate as f64 / 100.0;
    let mut owed = 0.0;
    let mut ticker = tokio::time::interval(slice);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut samples = Vec::new();
    let token: Arc<str> = Arc::from(token);
    while Instant::now() < deadline {
        tokio::select! {
            _ = ticker.tick() => {
                owed += per_slice;
                while owed >= 1.0 {
                    owed -= 1.0;
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                    if in_flight.len() >= MAX_OUTSTANDING {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let (api, token, body) = (api.clone(), token.clone(), body.clone());
                    in_flight.push(tokio::spawn(async move { place_order(&api, &token, &body).await }));
                }
            }
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                if let Ok(sample) = done {
                    tally(counters, &sample);
                    samples.push(sample);
                }
            }
        }
    }
    while let Some(done) = in_flight.next().await {
        if let Ok(sample) = done {
            tally(counters, &sample);
            samples.push(sample);
        }
    }
    samples
}

fn tally(counters: &Counters, sample: &Sample) {
    if sample.order_id.is_some() {
        counters.accepted.fetch_add(1, Ordering::Relaxed);
    } else {
        counters.errors.fetch_add(1, Ordering::Relaxed);
    }
}

async fn report_progress(counters: Arc<Counters>) {
    let started = Instant::now();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let accepted = counters.accepted.load(Ordering::Relaxed);
        eprint!(
            "\r{:>4.0}s  sent {:>8}  accepted {:>8} ({:>6}/s)  errors {:>5}",
            started.elapsed().as_secs_f64(),
            counters.sent.load(Ordering::Relaxed),
            accepted,
            accepted - last,
            counters.errors.load(Ordering::Relaxed),
        );
        last = accepted;
    }
}

async fn customer_id_of(db: &DatabaseConnection, email: &str) -> anyhow::Result<Uuid> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM users WHERE lower(email) = lower($1)",
            [email.into()],
        ))
        .await?
        .context("the bench customer was not stored")?;
    Ok(row.try_get("", "id")?)
}

async fn count(db: &DatabaseConnection, sql: &str, customer_id: Uuid) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [customer_id.into()],
        ))
        .await?
        .context("count returned no row")?;
    Ok(row.try_get_by_index(0)?)
}

/// How the wait for the last orders ended.
struct Settled {
    every_order_final: bool,
    cpu_per_order_ms: CpuPerOrder,
}

async fn build_report(
    db: &DatabaseConnection,
    mode: Mode,
    customer_id: Uuid,
    samples: &[Sample],
    offered_for: Duration,
    settled: Settled,
    counters: &Counters,
) -> anyhow::Result<Report> {
    let Settled {
        every_order_final,
        cpu_per_order_ms,
    } = settled;
    let sent_at: HashMap<Uuid, DateTime<Utc>> = samples
        .iter()
        .filter_map(|s| s.order_id.map(|id| (id, s.sent_at)))
        .collect();
    let finals = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT h.order_id, h.status, h.at FROM order_status_history h JOIN orders o ON o.id = h.order_id \
             WHERE o.customer_id = $1 AND h.status IN ('confirmed', 'rejected')",
            [customer_id.into()],
        ))
        .await?;
    let (mut confirmed, mut rejected) = (0, 0);
    let mut e2e = Vec::with_capacity(finals.len());
    let first_sent = samples.iter().map(|s| s.sent_at).min();
    let mut last_final: Option<DateTime<Utc>> = None;
    for row in &finals {
        let id: Uuid = row.try_get("", "order_id")?;
        let status: String = row.try_get("", "status")?;
        let at: DateTime<Utc> = row
            .try_get::<chrono::DateTime<chrono::FixedOffset>>("", "at")?
            .with_timezone(&Utc);
        if status == "confirmed" {
            confirmed += 1
        } else {
            rejected += 1
        }
        if let Some(sent) = sent_at.get(&id) {
            e2e.push((at - *sent).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
        last_final = last_final.max(Some(at));
    }
    let completed_window = match (first_sent, last_final) {
        (Some(first), Some(last)) => (last - first).num_milliseconds().max(1) as f64 / 1000.0,
        _ => 1.0,
    };
    let accepted = counters.accepted.load(Ordering::Relaxed);
    let offered = counters.sent.load(Ordering::Relaxed);
    let secs = offered_for.as_secs_f64();
    Ok(Report {
        mode: format!("{mode:?}").to_lowercase(),
        duration_secs: secs,
        offered,
        offered_per_s: offered as f64 / secs,
        accepted,
        accepted_per_s: accepted as f64 / secs,
        completed_per_s: (confirmed + rejected) as f64 / completed_window,
        accept_latency_ms: Percentiles::of(
            samples
                .iter()
                .map(|s| s.latency.as_secs_f64() * 1000.0)
                .collect(),
        ),
        end_to_end_latency_ms: Percentiles::of(e2e),
        confirmed,
        rejected,
        errors: counters.errors.load(Ordering::Relaxed),
        cpu_per_order_ms,
        consistency: check_consistency(db, customer_id, every_order_final).await?,
    })
}

/// No oversell: levels never negative, movements add up to levels, and what was reserved for
/// this run's orders is exactly what its confirmed orders needed.
async fn check_consistency(
    db: &DatabaseConnection,
    customer_id: Uuid,
    every_order_final: bool,
) -> anyhow::Result<Consistency> {
    let found = stock::audit::find_inconsistencies(db).await?;
    let negative = found
        .iter()
        .any(|i| matches!(i, Inconsistency::Negative { .. }));
    let drift = found
        .iter()
        .any(|i| matches!(i, Inconsistency::Drift { .. }));
    // What the confirmed orders needed (quantity x recipe) against what was reserved for them.
    let mismatch = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH needed AS ( \
                 SELECT ol.order_id, r.ingredient_id, SUM(ol.quantity::BIGINT * r.amount) AS amount \
                 FROM orders o JOIN order_lines ol ON ol.order_id = o.id JOIN recipe_lines r ON r.product_id = ol.product_id \
                 WHERE o.customer_id = $1 AND o.status IN ('confirmed', 'dispatched', 'delivered') GROUP BY 1, 2), \
             reserved AS ( \
                 SELECT m.order_id, m.ingredient_id, -SUM(m.delta) AS amount FROM stock_movements m \
                 JOIN orders o ON o.id = m.order_id WHERE o.customer_id = $1 AND m.reason = 'reserve' GROUP BY 1, 2) \
             SELECT count(*) FROM needed FULL JOIN reserved USING (order_id, ingredient_id) \
             WHERE needed.amount IS DISTINCT FROM reserved.amount",
            [customer_id.into()],
        ))
        .await?
        .context("no row")?
        .try_get_by_index::<i64>(0)?;
    let consistency = Consistency {
        every_order_final,
        no_negative_stock: !negative,
        movements_sum_to_stock: !drift,
        inconsistencies: found.iter().map(ToString::to_string).collect(),
        reservations_match_confirmed_orders: mismatch == 0,
        ok: false,
    };
    Ok(Consistency {
        ok: consistency.every_order_final
            && consistency.no_negative_stock
            && consistency.movements_sum_to_stock
            && consistency.reservations_match_confirmed_orders,
        ..consistency
    })
}

fn print_table(r: &Report) {
    println!("mode                      {}", r.mode);
    println!(
        "offered                   {} orders in {:.1} s = {:.0}/s",
        r.offered, r.duration_secs, r.offered_per_s
    );
    println!(
        "accepted (202)            {} = {:.0}/s",
        r.accepted, r.accepted_per_s
    );
    println!("completed end to end      {:.0}/s", r.completed_per_s);
    println!("confirmed / rejected      {} / {}", r.confirmed, r.rejected);
    println!("errors                    {}", r.errors);
    let p = |name: &str, l: &Percentiles| {
        println!(
            "{name:<26}p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            l.p50, l.p90, l.p99, l.max
        )
    };
    p("accept latency (ms)", &r.accept_latency_ms);
    p("end-to-end latency (ms)", &r.end_to_end_latency_ms);
    let cpu = &r.cpu_per_order_ms;
    println!(
        "CPU per completed order   {:.3} ms: larder {:.3} ({} processes), postgres {:.3} ({} backends), nats-server {:.3} ({}); over {:.1} s",
        cpu.total_ms,
        cpu.larder_ms,
        cpu.larder_processes,
        cpu.postgres_ms,
        cpu.postgres_backends,
        cpu.nats_ms,
        cpu.nats_processes,
        cpu.window_secs
    );
    let c = &r.consistency;
    println!(
        "consistency               {} (final {}, stock >= 0 {}, movements = stock {}, reservations = confirmed {})",
        if c.ok { "OK" } else { "FAILED" },
        c.every_order_final,
        c.no_negative_stock,
        c.movements_sum_to_stock,
        c.reservations_match_confirmed_orders
    );
    for inconsistency in &c.inconsistencies {
        println!("  {inconsistency}");
    }
}
