//! `GET /health` (liveness) and `GET /ready` (readiness: PostgreSQL and NATS answer).

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use sea_orm::ConnectionTrait;

use super::{ApiTags, AppState};

pub struct HealthApi;

#[derive(Debug, Object)]
pub struct Health {
    /// Always `order`.
    pub service: String,
    /// `ok`.
    pub status: String,
}

#[derive(Debug, Object)]
pub struct Readiness {
    /// `ok` when every dependency answers, else `unavailable`.
    pub status: String,
    /// `ok` or `unavailable` (the cause is in the service's log, not here).
    pub database: String,
    /// `ok` or `unavailable`.
    pub nats: String,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// PostgreSQL and NATS answer.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// PostgreSQL or NATS is down; the body says which.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness
    ///
    /// Answers while the process runs, whatever its dependencies do.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<Health> {
        Json(Health {
            service: "order".into(),
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when PostgreSQL answers a query and the NATS connection is up; 503 naming the one
    /// that is not.
    #[oai(path = "/ready", method = "get")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        // Which dependency is down, not why: error texts describe internals (hosts, users).
        let database = match state.db.execute_unprepared("SELECT 1").await {
            Ok(_) => "ok",
            Err(error) => {
                tracing::warn!(error = %error, "readiness: PostgreSQL does not answer");
                "unavailable"
            }
        }
        .to_owned();
        let nats = match state.nats.connection_state() {
            async_nats::connection::State::Connected => "ok",
            other => {
                tracing::warn!(state = %other, "readiness: NATS is not connected");
                "unavailable"
            }
        }
        .to_owned();
        let ok = database == "ok" && nats == "ok";
        let body = Json(Readiness {
            status: if ok { "ok" } else { "unavailable" }.into(),
            database,
            nats,
        });
        if ok {
            ReadyResponse::Ready(body)
        } else {
            ReadyResponse::NotReady(body)
        }
    }
}
