//! The order service's schema as the single-schema layout had it: merchants, users, products,
//! recipe lines, orders, their lines and status history (SPEC §2), plus the service's own outbox
//! and inbox.

use crate::outbox_inbox::Baseline;
use crate::service::Service;

pub(crate) const MIGRATION: Baseline = Baseline::new(module_path!(), Service::Order, UP, DOWN);

/// Unqualified names: the migrator runs with `search_path` = the `order` schema only.
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
DROP TABLE recipe_lines;
DROP TABLE products;
DROP TABLE users;
DROP TABLE merchants;
"#;
