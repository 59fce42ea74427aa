//! The order service's orders, their lines and their status history (SPEC §2).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}

const UP: &str = r#"
CREATE TABLE orders (
    id              UUID PRIMARY KEY,
    customer_id     UUID NOT NULL REFERENCES users (id),
    merchant_id     BIGINT NOT NULL REFERENCES merchants (id),
    status          TEXT NOT NULL CONSTRAINT orders_status_check CHECK (status IN
                        ('pending', 'confirmed', 'rejected', 'dispatched', 'delivered', 'cancelled')),
    total_cents     BIGINT NOT NULL CONSTRAINT orders_total_cents_check CHECK (total_cents >= 0),
    currency        TEXT NOT NULL CONSTRAINT orders_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    idempotency_key TEXT NULL,
    -- Hash of the request body: tells a replay from a different body under the same key.
    request_hash    TEXT NULL,
    -- The shortages when the order was rejected.
    rejection       JSONB NULL,
    correlation_id  TEXT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- SPEC §2: idempotency key unique per customer (NULL keys never collide).
    CONSTRAINT orders_customer_idempotency_key UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX orders_customer_id_created_at_idx ON orders (customer_id, created_at DESC);
CREATE INDEX orders_merchant_id_created_at_idx ON orders (merchant_id, created_at DESC);
CREATE INDEX orders_status_idx ON orders (status);

CREATE TABLE order_lines (
    order_id         UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id       BIGINT NOT NULL REFERENCES products (id),
    -- Name and price as they were when the order was placed.
    product_name     TEXT NOT NULL,
    quantity         INT NOT NULL
                     CONSTRAINT order_lines_quantity_check CHECK (quantity BETWEEN 1 AND 10000),
    unit_price_cents BIGINT NOT NULL
                     CONSTRAINT order_lines_unit_price_cents_check CHECK (unit_price_cents >= 0),
    line_total_cents BIGINT NOT NULL
                     CONSTRAINT order_lines_line_total_cents_check CHECK (line_total_cents >= 0),
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE order_status_history (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id UUID NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    status   TEXT NOT NULL CONSTRAINT order_status_history_status_check CHECK (status IN
                 ('pending', 'confirmed', 'rejected', 'dispatched', 'delivered', 'cancelled')),
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    note     TEXT NULL
);
CREATE INDEX order_status_history_order_id_id_idx ON order_status_history (order_id, id);
"#;

const DOWN: &str = r#"
DROP TABLE order_status_history;
DROP TABLE order_lines;
DROP TABLE orders;
"#;
