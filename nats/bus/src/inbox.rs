//! The consumer inbox (SPEC §5 rule 1): a consumer records the envelope id of each event it
//! handles in the same transaction as the effects, so a redelivery changes nothing.
//!
//! The id is the envelope's, not the transport's: a replayed dead letter or a re-published event
//! carries a new `Nats-Msg-Id` but is still recognised.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

/// Whether the event was new to this consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// First time: apply the effects in this transaction.
    New,
    /// Already handled: apply nothing, ack.
    Duplicate,
}

/// Records one event for `consumer` in the caller's transaction.
pub async fn record(
    db: &impl ConnectionTrait,
    consumer: &str,
    event_id: Uuid,
) -> Result<Recorded, DbErr> {
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [consumer.into(), event_id.into()],
        ))
        .await?;
    Ok(if result.rows_affected() == 1 {
        Recorded::New
    } else {
        Recorded::Duplicate
    })
}

/// Records a batch of events and returns the ids that were new. Ids are sorted and deduplicated
/// first: concurrent transactions then take the inbox's index locks in the same order and cannot
/// deadlock on overlapping batches. One statement whatever the batch's size (the ids as one array
/// parameter), so a connection prepares and plans it once.
pub async fn record_all(
    db: &impl ConnectionTrait,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut ids = event_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO inbox (consumer, event_id) \
         SELECT $1, e.id FROM unnest($2::uuid[]) WITH ORDINALITY AS e(id, n) ORDER BY e.n \
         ON CONFLICT DO NOTHING RETURNING event_id",
        [consumer.into(), ids.into()],
    ))
    .await?
    .iter()
    .map(|row| row.try_get("", "event_id"))
    .collect()
}
