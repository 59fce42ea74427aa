//! An order's row is updated three times after its insert (confirmed, dispatched, delivered).
//! With an index on `status` every update wrote a new entry into each of the table's five
//! indexes; without it no indexed column changes, so PostgreSQL updates in place (a HOT update:
//! no index entry, and the old version is pruned from its page without a vacuum), given room on
//! the page, which the lower fill factor keeps. Nothing reads orders by status alone: listings are
//! per customer or merchant, whose indexes serve the status filter too.

use sea_orm_migration::prelude::*;

sql_migration!();

const UP: &str = "DROP INDEX orders_status_idx; ALTER TABLE orders SET (fillfactor = 70);";
const DOWN: &str =
    "ALTER TABLE orders RESET (fillfactor); CREATE INDEX orders_status_idx ON orders (status);";
