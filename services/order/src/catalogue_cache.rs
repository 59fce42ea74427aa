//! Products, prices and recipes kept in memory for a moment: every `POST /order` needs them, and
//! they only change when a merchant seeds. Entries live one second (another instance's seed is
//! seen within it); this instance's own seed clears the cache at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use larder_contract::events::IngredientAmount;
use sea_orm::{ConnectionTrait, DbErr};

use crate::domain::CatalogueProduct;
use crate::store;

/// What an order needs to know of one product.
#[derive(Clone, Debug)]
pub struct CatalogueEntry {
    pub product: CatalogueProduct,
    /// The merchant's currency.
    pub currency: String,
    /// One unit's ingredients.
    pub recipe: Vec<IngredientAmount>,
}

pub struct CatalogueCache {
    ttl: Duration,
    entries: RwLock<HashMap<i64, (Instant, Arc<CatalogueEntry>)>>,
}

impl Default for CatalogueCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl CatalogueCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The entries for `ids` that exist; unknown ids are simply absent.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        ids: &[i64],
    ) -> Result<HashMap<i64, Arc<CatalogueEntry>>, DbErr> {
        let now = Instant::now();
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let entries = self
                .entries
                .read()
                .expect("the catalogue cache lock is not poisoned");
            for id in ids {
                match entries.get(id) {
                    Some((loaded, entry)) if now.duration_since(*loaded) < self.ttl => {
                        found.insert(*id, entry.clone());
                    }
                    _ => missing.push(*id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let loaded = store::find_catalogue_entries(db, &missing).await?;
        let mut entries = self
            .entries
            .write()
            .expect("the catalogue cache lock is not poisoned");
        for (product, currency, recipe) in loaded {
            let entry = Arc::new(CatalogueEntry {
                product,
                currency,
                recipe,
            });
            entries.insert(entry.product.id, (now, entry.clone()));
            found.insert(entry.product.id, entry);
        }
        Ok(found)
    }

    /// Forget everything (after this instance changed the catalogue).
    pub fn clear(&self) {
        self.entries
            .write()
            .expect("the catalogue cache lock is not poisoned")
            .clear();
    }
}
