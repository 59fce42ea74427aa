//! SPEC §2's invariant of the stock, checked from outside the service (tests, `larder bench`):
//! the movements of every ingredient add up to its level, and no level is negative.

use std::fmt;

use migration::Service;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// An ingredient that breaks the invariant (one that breaks both parts is listed twice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inconsistency {
    /// Below zero: more was reserved than there was.
    Negative { ingredient: String, stock: i64 },
    /// The level is not what its movements add up to.
    Drift {
        ingredient: String,
        stock: i64,
        moved: i64,
    },
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Negative { ingredient, stock } => {
                write!(f, "{ingredient}: stock {stock} is negative")
            }
            Self::Drift {
                ingredient,
                stock,
                moved,
            } => write!(
                f,
                "{ingredient}: level {stock} but movements add up to {moved}"
            ),
        }
    }
}

/// Every ingredient breaking the invariant, by ingredient id; empty when the stock is sound.
/// The tables are named with their schema, so that the stock role and an admin (whatever its
/// `search_path`) read the same ones.
pub async fn find_inconsistencies(db: &impl ConnectionTrait) -> Result<Vec<Inconsistency>, DbErr> {
    let schema = Service::Stock.quoted_schema();
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT i.name, i.stock, COALESCE(SUM(m.delta), 0)::BIGINT AS moved \
                 FROM {schema}.ingredients i \
                 LEFT JOIN {schema}.stock_movements m ON m.ingredient_id = i.id \
                 GROUP BY i.id ORDER BY i.id"
            ),
        ))
        .await?;
    let mut found = Vec::new();
    for row in rows {
        let ingredient: String = row.try_get("", "name")?;
        let stock: i64 = row.try_get("", "stock")?;
        let moved: i64 = row.try_get("", "moved")?;
        if stock < 0 {
            found.push(Inconsistency::Negative {
                ingredient: ingredient.clone(),
                stock,
            });
        }
        if stock != moved {
            found.push(Inconsistency::Drift {
                ingredient,
                stock,
                moved,
            });
        }
    }
    Ok(found)
}
