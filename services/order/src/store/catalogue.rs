//! The catalogue: products and their recipes, per merchant.

use std::collections::HashMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use entities::{merchants, products, recipe_lines};
use larder_contract::events::IngredientAmount;

use crate::domain::CatalogueProduct;

/// The products among `ids`, for pricing.
pub async fn find_products(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<HashMap<i64, CatalogueProduct>, DbErr> {
    let rows = products::Entity::find()
        .filter(products::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|p| {
            (
                p.id,
                CatalogueProduct {
                    id: p.id,
                    merchant_id: p.merchant_id,
                    name: p.name,
                    price_cents: p.price_cents,
                },
            )
        })
        .collect())
}

/// The recipe of one unit of each product, for the `orders.created` event.
pub async fn find_recipes(
    db: &impl ConnectionTrait,
    product_ids: &[i64],
) -> Result<HashMap<i64, Vec<IngredientAmount>>, DbErr> {
    let rows = recipe_lines::Entity::find()
        .filter(recipe_lines::Column::ProductId.is_in(product_ids.iter().copied()))
        .order_by_asc(recipe_lines::Column::IngredientId)
        .all(db)
        .await?;
    let mut recipes: HashMap<i64, Vec<IngredientAmount>> = HashMap::new();
    for row in rows {
        recipes
            .entry(row.product_id)
            .or_default()
            .push(IngredientAmount {
                ingredient_id: row.ingredient_id,
                amount: row.amount,
            });
    }
    Ok(recipes)
}

/// Creates or updates the product (by merchant and name) and replaces its recipe.
pub async fn upsert_product_with_recipe(
    db: &impl ConnectionTrait,
    merchant_id: i64,
    name: &str,
    price_cents: i64,
    recipe: &[IngredientAmount],
) -> Result<products::Model, DbErr> {
    let product = products::Entity::insert(products::ActiveModel {
        merchant_id: Set(merchant_id),
        name: Set(name.to_owned()),
        price_cents: Set(price_cents),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([products::Column::MerchantId, products::Column::Name])
            .update_column(products::Column::PriceCents)
            .to_owned(),
    )
    .exec_with_returning(db)
    .await?;
    recipe_lines::Entity::delete_many()
        .filter(recipe_lines::Column::ProductId.eq(product.id))
        .exec(db)
        .await?;
    let lines = recipe.iter().map(|r| recipe_lines::ActiveModel {
        product_id: Set(product.id),
        ingredient_id: Set(r.ingredient_id),
        amount: Set(r.amount),
    });
    recipe_lines::Entity::insert_many(lines)
        .exec_without_returning(db)
        .await?;
    Ok(product)
}

/// Products on offer, by merchant then id (at most `limit`), each with its merchant.
pub async fn list_offers(
    db: &impl ConnectionTrait,
    merchant_id: Option<i64>,
    limit: u64,
) -> Result<Vec<(products::Model, merchants::Model)>, DbErr> {
    let mut query = products::Entity::find().find_also_related(merchants::Entity);
    if let Some(merchant_id) = merchant_id {
        query = query.filter(products::Column::MerchantId.eq(merchant_id));
    }
    Ok(query
        .order_by_asc(products::Column::MerchantId)
        .order_by_asc(products::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(product, merchant)| Some((product, merchant?)))
        .collect())
}
