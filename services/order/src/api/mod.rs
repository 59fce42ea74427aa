//! The HTTP API: one module per OpenAPI tag, assembled into one [`OpenApiService`], plus the
//! middleware every request goes through ([`context`]) and the error format ([`problem`]).

use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::{OpenApiService, Tags};
use sea_orm::DatabaseConnection;

use larder_bus::outbox::Outbox;

use crate::auth::TokenKeys;

pub mod auth;
pub mod catalogue;
pub mod console;
pub mod context;
pub mod health;
pub mod ingredients;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod orders;
pub mod problem;
pub mod security;
pub mod spec;
pub mod text;

/// OpenAPI tags, in the order Swagger UI shows them.
#[derive(Tags)]
pub enum ApiTags {
    /// Register and log in; `Authorize` in Swagger UI with the token.
    Auth,
    /// The merchant's catalogue.
    Catalogue,
    /// Place and follow orders.
    Orders,
    /// Ingredient levels and restocking (merchant).
    Ingredients,
    /// What the merchant console shows: the live feed, alerts, dead letters (merchant).
    Console,
    /// Liveness and readiness.
    Health,
}

/// What handlers share, read as `Data<&AppState>`.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub nats: async_nats::Client,
    pub outbox: Outbox,
    pub keys: TokenKeys,
    /// How long a merchant command to stock or delivery may take (see [`AppState::call`]).
    pub service_request_timeout: std::time::Duration,
    pub catalogue: std::sync::Arc<crate::catalogue_cache::CatalogueCache>,
    /// Group commit for `POST /order`.
    pub order_writer: actix::Addr<crate::order_writer::OrderWriter>,
    /// What `GET /metrics` renders; `None` when the process installed no recorder.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// This instance's watchers of orders and merchant feeds, woken by every instance's and
    /// service's pushes.
    pub listeners: crate::push::Listeners,
    /// Announces the status changes this instance's handlers commit (an API cancel).
    pub pushes: crate::push::StatusPublisher,
    /// The bounds of event streams and `Prefer: wait`.
    pub live: live::LiveLimits,
    /// Who may create merchants.
    pub signup: auth::SignUpPolicy,
}

impl AppState {
    /// Sends a merchant command to the service that owns the data (stock, delivery) and waits
    /// for its answer, bounded by the configured timeout. No answer in time is a 503.
    pub async fn call<C: larder_contract::commands::Command>(
        &self,
        command: &C,
    ) -> Result<C::Reply, problem::ApiError> {
        larder_bus::service::call(
            &self.nats,
            self.outbox.namespace(),
            command,
            self.service_request_timeout,
        )
        .await
        .map_err(problem::ApiError::from)
    }
}

pub type Api = (
    auth::AuthApi,
    catalogue::CatalogueApi,
    orders::OrdersApi,
    live::LiveApi,
    ingredients::IngredientsApi,
    console::ConsoleApi,
    health::HealthApi,
);

/// The API description: what `/openapi.json` serves and `larder openapi` prints.
pub fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            catalogue::CatalogueApi,
            orders::OrdersApi,
            live::LiveApi,
            ingredients::IngredientsApi,
            console::ConsoleApi,
            health::HealthApi,
        ),
        "Larder",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Orders and ingredient stock for merchants who sell products made of ingredients.\n\n\
         Try it: `POST /auth/login` as the bootstrap merchant (see `.env.example`), Authorize \
         with the token, `POST /order/seed`; register a customer, log in, Authorize, \
         `POST /order` (with `Prefer: wait=5` to get the outcome in the answer), then follow it \
         with `GET /order/{id}/events` or `GET /order/{id}`. A new merchant signs up with \
         `POST /auth/merchants`.\n\n\
         Every error is `application/problem+json` (RFC 9457) with the request id.",
    )
}

/// The spec as JSON, exactly as served: what `openapi.json` holds. The derived spec completed
/// with the rules the handlers enforce ([`spec::complete`]).
pub fn spec_json() -> String {
    spec::complete(&service().spec()).expect("every spec rule finds its target (tested)")
}

/// The merchant console (README "The merchant console"): a page, a script and a style sheet,
/// checked in and compiled into the binary, so there is nothing to build or serve apart.
fn console_page() -> Route {
    fn asset(content_type: &'static str, body: &'static str) -> impl Endpoint + use<> {
        poem::get(poem::endpoint::make_sync(move |_| {
            poem::Response::builder()
                .content_type(content_type)
                // Served from the binary: a new version is a new process, so revalidate.
                .header(poem::http::header::CACHE_CONTROL, "no-cache")
                .body(body)
        }))
    }
    Route::new()
        .at(
            "/",
            asset(
                "text/html; charset=utf-8",
                include_str!("../../console/index.html"),
            ),
        )
        .at(
            "/console.js",
            asset(
                "text/javascript; charset=utf-8",
                include_str!("../../console/console.js"),
            ),
        )
        .at(
            "/console.css",
            asset(
                "text/css; charset=utf-8",
                include_str!("../../console/console.css"),
            ),
        )
}

/// The whole HTTP application: the API, Swagger UI at `/docs`, the spec at `/openapi.json`, the
/// merchant console at `/console/` (where `/` leads), behind the request middleware, with the
/// limits of `settings`.
pub fn app(state: AppState, settings: &crate::config::OrderSettings) -> impl Endpoint + use<> {
    let api = service();
    let spec = spec_json();
    Route::new()
        .nest("/docs", api.swagger_ui())
        .nest("/console", console_page())
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json; charset=utf-8")
                    .body(spec.clone())
            }),
        )
        .at("/metrics", {
            let handle = state.metrics.clone();
            poem::get(poem::endpoint::make_sync(move |_| {
                metrics::render(handle.as_ref())
            }))
        })
        .nest("/", api)
        // Not a route: the API nested at `/` also matches `/` itself, before any `.at("/")`.
        .around(|ep, req| async move {
            if req.uri().path() == "/" {
                return Ok(poem::web::Redirect::see_other("/console/").into_response());
            }
            ep.call(req).await.map(IntoResponse::into_response)
        })
        .data(state.keys.clone())
        .data(security::KnownUsers::default())
        .data(limits::AuthLimits::new(settings.auth_limits()))
        .data(state)
        .with(context::RequestContext {
            max_in_flight: settings.http_max_in_flight,
            body_timeout: std::time::Duration::from_secs(settings.http_body_timeout_secs),
        })
        .around(metrics::record)
}
