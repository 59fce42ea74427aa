//! `POST /order/seed` (merchant): the burger catalogue of SPEC §3. The ingredients belong to the
//! stock service, which seeds them on request; the products and recipes are this service's.

use std::collections::HashMap;

use larder_contract::commands::{IngredientLevel, IngredientSeed, SeedIngredients};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::{Object, OpenApi, payload::Json};
use sea_orm::TransactionTrait;

use super::ingredients::Ingredient;
use super::problem::ApiError;
use super::security::BearerAuth;
use super::{ApiTags, AppState};
use crate::domain::burger_catalogue;
use crate::store;

pub struct CatalogueApi;

#[derive(Debug, Object)]
pub struct Catalogue {
    pub products: Vec<Product>,
    pub ingredients: Vec<Ingredient>,
}

#[derive(Debug, Object)]
pub struct Product {
    /// Use this id in `POST /order`.
    pub id: i64,
    pub name: String,
    /// Price in minor units (cents).
    pub price_cents: i64,
    pub currency: String,
    /// What one unit is made of.
    pub recipe: Vec<RecipeLine>,
}

#[derive(Debug, Object)]
pub struct RecipeLine {
    pub ingredient_id: i64,
    pub ingredient: String,
    /// Amount per unit of product, in the ingredient's unit.
    pub amount: i64,
    pub unit: String,
}

/// The most products `GET /products` lists.
pub const MAX_OFFERS: u64 = 200;

/// A product on offer, with who sells it.
#[derive(Debug, Object)]
pub struct Offer {
    /// Use this id in `POST /order`.
    pub id: i64,
    pub name: String,
    /// Price in minor units (cents).
    pub price_cents: i64,
    pub currency: String,
    pub merchant_id: i64,
    pub merchant: String,
}

#[OpenApi(tag = "ApiTags::Catalogue")]
impl CatalogueApi {
    /// List products
    ///
    /// Anyone. The products on offer (at most 200), by merchant then id, with their price and
    /// merchant: what a customer orders with `POST /order` (one merchant per order).
    #[oai(path = "/products", method = "get")]
    async fn products(
        &self,
        state: Data<&AppState>,
        /// Only this merchant's products.
        merchant_id: Query<Option<i64>>,
    ) -> Result<Json<Vec<Offer>>, ApiError> {
        let offers = store::list_offers(&state.db, merchant_id.0, MAX_OFFERS).await?;
        Ok(Json(
            offers
                .into_iter()
                .map(|(product, merchant)| Offer {
                    id: product.id,
                    name: product.name,
                    price_cents: product.price_cents,
                    currency: merchant.currency,
                    merchant_id: merchant.id,
                    merchant: merchant.name,
                })
                .collect(),
        ))
    }

    /// Seed the burger catalogue
    ///
    /// Idempotent. For the caller's merchant: ingredients Beef 20 kg, Cheese 5 kg, Onion 1 kg
    /// (levels and reference levels reset, low-stock alerts re-armed) and the product Burger
    /// (150 g beef, 30 g cheese, 20 g onion). Returns the catalogue, with the product ids to order.
    /// The stock service seeds the ingredients: when it does not answer in time, 503 with
    /// `Retry-After` (seeding again completes an interrupted seed).
    #[oai(path = "/order/seed", method = "post")]
    async fn seed(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<Json<Catalogue>, ApiError> {
        let merchant_id = auth.merchant_id()?;
        let merchant = store::find_merchant(&state.db, merchant_id)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("merchant {merchant_id} no longer exists"))
            })?;
        let seeds: Vec<IngredientSeed> = burger_catalogue::INGREDIENTS
            .iter()
            .map(|(name, unit, level)| IngredientSeed {
                name: (*name).to_owned(),
                unit: (*unit).to_owned(),
                level: *level,
            })
            .collect();

        // Stock first: the recipe needs its ingredient ids. Seeding is idempotent on both
        // sides, so a seed interrupted between the two steps is completed by the next one.
        let ingredients = state
            .call(&SeedIngredients {
                merchant_id,
                merchant_email: merchant.email.clone(),
                ingredients: seeds,
            })
            .await?;
        let by_name: HashMap<&str, &IngredientLevel> =
            ingredients.iter().map(|i| (i.name.as_str(), i)).collect();
        if let Some((missing, _)) = burger_catalogue::RECIPE
            .iter()
            .find(|(name, _)| !by_name.contains_key(name))
        {
            return Err(ApiError::internal(anyhow::anyhow!(
                "the stock service did not seed {missing}"
            )));
        }
        let txn = state.db.begin().await?;
        let recipe: Vec<larder_contract::events::IngredientAmount> = burger_catalogue::RECIPE
            .iter()
            .map(|(name, amount)| larder_contract::events::IngredientAmount {
                ingredient_id: by_name[name].id,
                amount: *amount,
            })
            .collect();
        let product = store::upsert_product_with_recipe(
            &txn,
            merchant_id,
            burger_catalogue::PRODUCT,
            burger_catalogue::PRODUCT_PRICE_CENTS,
            &recipe,
        )
        .await?;
        txn.commit().await?;
        state.catalogue.clear();

        let recipe = burger_catalogue::RECIPE
            .iter()
            .map(|(name, amount)| {
                let ingredient = by_name[name];
                RecipeLine {
                    ingredient_id: ingredient.id,
                    ingredient: ingredient.name.clone(),
                    amount: *amount,
                    unit: ingredient.unit.clone(),
                }
            })
            .collect();
        Ok(Json(Catalogue {
            products: vec![Product {
                id: product.id,
                name: product.name,
                price_cents: product.price_cents,
                currency: merchant.currency,
                recipe,
            }],
            ingredients: ingredients.into_iter().map(Ingredient::from).collect(),
        }))
    }
}
