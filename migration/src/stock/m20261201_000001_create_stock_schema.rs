//! The stock service's schema: ingredients and their movements, the audit trail (SPEC §2), plus
//! the service's own outbox and inbox.

use crate::outbox_inbox::Baseline;
use crate::service::Service;

pub(crate) const MIGRATION: Baseline = Baseline::new(module_path!(), Service::Stock, UP, DOWN);

/// Unqualified names: the migrator runs with `search_path` = the `stock` schema only.
const UP: &str = r#"
CREATE TABLE ingredients (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- No foreign key: merchants belong to the order service.
    merchant_id       BIGINT NOT NULL,
    name              TEXT NOT NULL,
    unit              TEXT NOT NULL CONSTRAINT ingredients_unit_check CHECK (unit IN ('g', 'ml', 'pcs')),
    -- SPEC §2: stock is never negative, whatever the code does.
    stock             BIGINT NOT NULL CONSTRAINT ingredients_stock_non_negative CHECK (stock >= 0),
    -- 100 %: the level at the last seed or restock.
    reference_level   BIGINT NOT NULL
                      CONSTRAINT ingredients_reference_level_check CHECK (reference_level > 0),
    -- True once stock.low was emitted, until a restock re-arms it.
    low_stock_alerted BOOLEAN NOT NULL DEFAULT false,
    -- Where alerts go; copied from the catalogue at seed.
    merchant_email    TEXT NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ingredients_merchant_id_name_key UNIQUE (merchant_id, name)
);

CREATE TABLE stock_movements (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- NULL for seed and restock.
    order_id      UUID NULL,
    ingredient_id BIGINT NOT NULL REFERENCES ingredients (id),
    delta         BIGINT NOT NULL,
    reason        TEXT NOT NULL CONSTRAINT stock_movements_reason_check
                  CHECK (reason IN ('seed', 'reserve', 'release', 'restock')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- An order reserves, and releases, an ingredient at most once.
CREATE UNIQUE INDEX stock_movements_order_ingredient_reason_key
    ON stock_movements (order_id, ingredient_id, reason) WHERE order_id IS NOT NULL;
CREATE INDEX stock_movements_ingredient_id_idx ON stock_movements (ingredient_id);
"#;

const DOWN: &str = r#"
DROP TABLE stock_movements;
DROP TABLE ingredients;
"#;
