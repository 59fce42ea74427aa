//! A notification keeps what the alert said (merchant, unit, level, reference, percent), so the
//! merchant's console can list its alerts with their email status without asking stock.
//! Rows written before this have none of it (NULL).

use sea_orm_migration::prelude::*;

sql_migration!();

const UP: &str = "
ALTER TABLE notifications
    ADD merchant_id BIGINT,
    ADD unit TEXT,
    ADD level BIGINT,
    ADD reference_level BIGINT,
    ADD percent BIGINT;
CREATE INDEX notifications_merchant_idx ON notifications (merchant_id, created_at DESC);
";
const DOWN: &str = "
DROP INDEX notifications_merchant_idx;
ALTER TABLE notifications
    DROP COLUMN merchant_id,
    DROP COLUMN unit,
    DROP COLUMN level,
    DROP COLUMN reference_level,
    DROP COLUMN percent;
";
