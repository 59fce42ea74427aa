//! The order service's catalogue: merchants, users, products and their recipes (SPEC §2).

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
CREATE TABLE merchants (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Bootstrap is idempotent by name.
    name       TEXT NOT NULL CONSTRAINT merchants_name_key UNIQUE,
    -- Low-stock alerts go here.
    email      TEXT NOT NULL,
    currency   TEXT NOT NULL DEFAULT 'EUR'
               CONSTRAINT merchants_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL,
    -- argon2id PHC string.
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL
                  CONSTRAINT users_role_check CHECK (role IN ('customer', 'merchant')),
    merchant_id   BIGINT NULL REFERENCES merchants (id),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_merchant_has_merchant_id CHECK (role <> 'merchant' OR merchant_id IS NOT NULL)
);
-- SPEC §2: email unique, case-insensitive.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE products (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL CONSTRAINT products_price_cents_check CHECK (price_cents >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT products_merchant_id_name_key UNIQUE (merchant_id, name)
);

CREATE TABLE recipe_lines (
    product_id    BIGINT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    -- No foreign key: ingredients belong to the stock service.
    ingredient_id BIGINT NOT NULL,
    -- Per unit of product, in the ingredient's base unit.
    amount        BIGINT NOT NULL CONSTRAINT recipe_lines_amount_check CHECK (amount > 0),
    PRIMARY KEY (product_id, ingredient_id)
);
"#;

const DOWN: &str = r#"
DROP TABLE recipe_lines;
DROP TABLE products;
DROP TABLE users;
DROP TABLE merchants;
"#;
