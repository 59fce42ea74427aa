//! The order service keeps the shipment facts it learns from `delivery.*` events on the order
//! itself, instead of reading the delivery service's table (SPEC §2: data another service needs
//! travels in events).

use sea_orm_migration::prelude::*;

sql_migration!();

const UP: &str = r#"
ALTER TABLE orders
    ADD shipment_id   UUID NULL,
    ADD dispatched_at TIMESTAMPTZ NULL,
    ADD delivered_at  TIMESTAMPTZ NULL;
"#;

const DOWN: &str = r#"
ALTER TABLE orders
    DROP COLUMN shipment_id,
    DROP COLUMN dispatched_at,
    DROP COLUMN delivered_at;
"#;
