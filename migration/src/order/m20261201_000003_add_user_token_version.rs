//! Access tokens carry their user's token version (`ver`); raising it revokes every token issued
//! before: a token can be revoked.

use sea_orm_migration::prelude::*;

sql_migration!();

const UP: &str = "ALTER TABLE users ADD token_version BIGINT NOT NULL DEFAULT 0;";
const DOWN: &str = "ALTER TABLE users DROP COLUMN token_version;";
