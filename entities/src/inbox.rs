//! `inbox`: the events a consumer has processed, so a redelivery is skipped; each consumer has
//! one.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "inbox")]
pub struct Model {
    /// The consumer's durable name.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub consumer: String,
    /// The envelope's id, not the transport's.
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    pub processed_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
