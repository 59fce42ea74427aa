//! The merchant commands stock serves over NATS request/reply (service `stock`): seed, list and
//! restock ingredients. The order API calls them; this service is the only writer of its tables.

use larder_bus::Namespace;
use larder_bus::push::Pusher;
use larder_bus::service::{CommandService, ServiceError};
use larder_contract::commands::{
    IngredientLevel, ListIngredients, Refusal, RestockIngredient, SeedIngredients,
};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

use entities::ingredients;

use crate::domain;
use crate::handlers::announce_levels_changed;
use crate::store::{self, RestockError, SeedError};

/// Starts the `stock` service with its three endpoints.
pub async fn serve(
    client: &async_nats::Client,
    namespace: &Namespace,
    db: DatabaseConnection,
    pushes: Pusher,
) -> Result<CommandService, ServiceError> {
    let mut service = CommandService::start(
        client,
        namespace,
        larder_contract::commands::services::STOCK,
        "Larder stock: ingredient levels, seed and restock",
        env!("CARGO_PKG_VERSION"),
    )
    .await?;
    let seeding = db.clone();
    let seeded = pushes.clone();
    service
        .serve(move |command: SeedIngredients| {
            let (db, pushes) = (seeding.clone(), seeded.clone());
            async move {
                let merchant_id = command.merchant_id;
                let levels = seed(&db, command).await?;
                announce_levels_changed(&pushes, vec![merchant_id]).await;
                Ok(levels)
            }
        })
        .await?;
    let listing = db.clone();
    service
        .serve(move |command: ListIngredients| {
            let db = listing.clone();
            async move { list(&db, command).await }
        })
        .await?;
    service
        .serve(move |command: RestockIngredient| {
            let (db, pushes) = (db.clone(), pushes.clone());
            async move {
                let merchant_id = command.merchant_id;
                let level = restock(&db, command).await?;
                announce_levels_changed(&pushes, vec![merchant_id]).await;
                Ok(level)
            }
        })
        .await?;
    Ok(service)
}

/// The seeds are checked by the store, before it writes anything: a refusal names the first
/// ingredient that is not valid (422).
pub async fn seed(
    db: &DatabaseConnection,
    command: SeedIngredients,
) -> Result<Vec<IngredientLevel>, Refusal> {
    let seeded = async {
        let txn = db.begin().await?;
        let rows = store::seed_ingredients(
            &txn,
            command.merchant_id,
            &command.merchant_email,
            &command.ingredients,
        )
        .await?;
        txn.commit().await?;
        Ok::<_, SeedError>(rows)
    }
    .await
    .map_err(|error| match error {
        SeedError::Invalid(invalid) => Refusal::invalid(invalid.to_string()),
        SeedError::Database(e) => failed(e),
    })?;
    Ok(seeded.into_iter().map(level_view).collect())
}

pub async fn list(
    db: &DatabaseConnection,
    command: ListIngredients,
) -> Result<Vec<IngredientLevel>, Refusal> {
    let rows = store::list_ingredients(db, command.merchant_id)
        .await
        .map_err(failed)?;
    Ok(rows.into_iter().map(level_view).collect())
}

pub async fn restock(
    db: &DatabaseConnection,
    command: RestockIngredient,
) -> Result<IngredientLevel, Refusal> {
    let txn = db.begin().await.map_err(failed)?;
    let row = store::restock(
        &txn,
        command.merchant_id,
        command.ingredient_id,
        command.amount,
    )
    .await
    .map_err(|error| match error {
        RestockError::NotFound => {
            Refusal::not_found(format!("no ingredient {}", command.ingredient_id))
        }
        // The amount's own words ("must be a positive amount in the ingredient's unit"): the
        // order API shows them under the field `amount`.
        RestockError::InvalidAmount(invalid) => Refusal::invalid(invalid.to_string()),
        RestockError::Database(e) => failed(e),
    })?;
    txn.commit().await.map_err(failed)?;
    Ok(level_view(row))
}

fn level_view(row: ingredients::Model) -> IngredientLevel {
    IngredientLevel {
        percent: domain::percent(row.stock, row.reference_level),
        id: row.id,
        name: row.name,
        unit: row.unit,
        stock: row.stock,
        reference_level: row.reference_level,
        low_stock_alerted: row.low_stock_alerted,
    }
}

fn failed(error: DbErr) -> Refusal {
    tracing::error!(%error, "a merchant command failed");
    Refusal::internal()
}
