//! `GET /ingredients`, `POST /ingredients/{id}/restock` (merchant). The ingredients belong to the
//! stock service: these ask it over NATS, and it alone reads and writes them.

use larder_contract::commands::{IngredientLevel, ListIngredients, RestockIngredient};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi, payload::Json};

use super::problem::ApiError;
use super::security::BearerAuth;
use super::{ApiTags, AppState};

pub struct IngredientsApi;

#[derive(Debug, Object)]
pub struct Ingredient {
    pub id: i64,
    pub name: String,
    /// `g`, `ml` or `pcs`: the base unit of `stock` and `reference_level`.
    pub unit: String,
    /// Current level, in the base unit.
    pub stock: i64,
    /// 100 %: the level at the last seed or restock above it.
    pub reference_level: i64,
    /// Whole percent of the reference level, rounded down.
    pub percent: i64,
    /// `armed` (an alert fires when the level falls below 50 %) or `alerted` (one was sent;
    /// a restock back to 50 % or more re-arms it).
    pub alert: String,
}

impl From<IngredientLevel> for Ingredient {
    fn from(row: IngredientLevel) -> Self {
        Self {
            percent: row.percent,
            alert: if row.low_stock_alerted {
                "alerted"
            } else {
                "armed"
            }
            .into(),
            id: row.id,
            name: row.name,
            unit: row.unit,
            stock: row.stock,
            reference_level: row.reference_level,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example, deny_unknown_fields)]
pub struct Restock {
    /// How much to add, in the ingredient's base unit; positive.
    pub amount: i64,
}

impl Example for Restock {
    fn example() -> Self {
        Self { amount: 500 }
    }
}

#[OpenApi(tag = "ApiTags::Ingredients")]
impl IngredientsApi {
    /// List ingredient levels
    ///
    /// The caller's merchant's ingredients: level, reference level, percent and alert state.
    /// Served by the stock service: 503 with `Retry-After` when it does not answer in time.
    #[oai(path = "/ingredients", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Vec<Ingredient>>, ApiError> {
        let merchant_id = auth.merchant_id()?;
        let rows = state.call(&ListIngredients { merchant_id }).await?;
        Ok(Json(rows.into_iter().map(Ingredient::from).collect()))
    }

    /// Restock an ingredient
    ///
    /// Adds `amount` to the level, recorded as a `restock` stock movement. A level above the
    /// reference becomes the new reference (100 %). When the level is back at or above 50 %, the
    /// low-stock alert is re-armed. Served by the stock service: 503 with `Retry-After` when it
    /// does not answer in time.
    #[oai(path = "/ingredients/:id/restock", method = "post")]
    async fn restock(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The ingredient id.
        id: Path<i64>,
        body: Json<Restock>,
    ) -> Result<Json<Ingredient>, ApiError> {
        let merchant_id = auth.merchant_id()?;
        // The spec's own rule (a positive amount) is answered here, whether stock is up or not;
        // what only stock knows (the unit, an overflowing level) is its refusal, named the same.
        if body.amount <= 0 {
            return Err(ApiError::invalid_field(
                "amount",
                "must be a positive amount in the ingredient's unit",
            ));
        }
        let row = state
            .call(&RestockIngredient {
                merchant_id,
                ingredient_id: id.0,
                amount: body.amount,
            })
            .await
            .map_err(|error| match error {
                // Stock's check of the amount, named as the client wrote it.
                ApiError::Unprocessable(problem) => {
                    ApiError::invalid_field("amount", problem.0.detail.unwrap_or_default())
                }
                other => other,
            })?;
        Ok(Json(row.into()))
    }
}
