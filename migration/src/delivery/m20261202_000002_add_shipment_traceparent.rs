//! A shipment keeps the W3C `traceparent` of the confirmation that created it, so the timer's
//! later steps (dispatched, delivered) continue the order's trace.

use sea_orm_migration::prelude::*;

sql_migration!();

const UP: &str = "ALTER TABLE shipments ADD traceparent TEXT;";
const DOWN: &str = "ALTER TABLE shipments DROP COLUMN traceparent;";
