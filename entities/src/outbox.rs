//! `outbox`: events written in the same transaction as the change they announce, published by
//! the relay; each service has one in its own schema. An insert sends `NOTIFY larder_outbox_<schema>`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    /// Published as Nats-Msg-Id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub subject: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    /// A flat JSON object: header name -> string value.
    #[sea_orm(column_type = "JsonBinary")]
    pub headers: Json,
    /// `clock_timestamp()` at insert.
    pub created_at: DateTimeWithTimeZone,
    /// `None` until the relay published it.
    pub published_at: Option<DateTimeWithTimeZone>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
