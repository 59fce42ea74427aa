//! The HTTP API: one module per OpenAPI tag, assembled into one [`OpenApiService`].

use poem_openapi::{OpenApiService, Tags};

pub mod health;

/// OpenAPI tags, in the order Swagger UI shows them.
#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and readiness.
    Health,
}

pub type Api = health::HealthApi;

/// The API description served at `/openapi.json`.
pub fn service(api: Api) -> OpenApiService<Api, ()> {
    OpenApiService::new(api, "Larder", env!("CARGO_PKG_VERSION"))
        .description(
            "Orders and ingredient stock for merchants who sell products made of ingredients. \
             Orders are acknowledged at once (202) and confirmed or rejected by stock processing.",
        )
        .server("/")
}

/// The spec as JSON, exactly as served: what `larder openapi` prints and `openapi.json` holds.
pub fn spec_json() -> String {
    service(health::HealthApi::detached()).spec()
}
