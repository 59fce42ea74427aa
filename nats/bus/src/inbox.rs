//! The consumer inbox (SPEC §5 rule 1): a consumer records the envelope id of each event it
//! handles in the same transaction as the effects, so a redelivery changes nothing.
//!
//! The id is the envelope's, not the transport's: a replayed dead letter or a re-published event
//! carries a new `Nats-Msg-Id` but is still recognised.

use std::collections::HashSet;
use std::time::Duration;

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

/// Rows per INSERT: far below PostgreSQL's 65 535 parameters per statement.
const CHUNK: usize = 1_000;

/// Records a batch of events and returns the ids that were new. Ids are sorted and deduplicated
/// first: concurrent transactions then take the inbox's index locks in the same order and cannot
/// deadlock on overlapping batches.
pub async fn record_all(
    db: &impl ConnectionTrait,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let mut ids = event_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut new = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        // One VALUES row per id: ($1, $2), ($1, $3), ...
        let values = (0..chunk.len())
            .map(|i| format!("($1, ${})", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut params = Vec::with_capacity(chunk.len() + 1);
        params.push(consumer.into());
        params.extend(chunk.iter().map(|id| (*id).into()));
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "INSERT INTO inbox (consumer, event_id) VALUES {values} \
                     ON CONFLICT DO NOTHING RETURNING event_id"
                ),
                params,
            ))
            .await?;
        for row in rows {
            new.insert(row.try_get::<Uuid>("", "event_id")?);
        }
    }
    Ok(new)
}

/// How long an inbox row must be kept, given the streams' max age (`NATS_MAX_AGE_SECS`). An
/// event handled at `t` was published before `t`, so its stream copy (a redelivery, a producer's
/// re-publish) is gone by `t + max_age`; a dead letter of that copy, the one way it can come back
/// later, is replayable for at most another `max_age`. After both, its row guards nothing.
pub fn retention(stream_max_age: Duration) -> Duration {
    stream_max_age.saturating_mul(2)
}

/// Deletes the rows processed more than `keep` ago and returns how many went: without it the
/// table grows with every event a service ever recorded.
pub async fn prune(db: &impl ConnectionTrait, keep: Duration) -> Result<u64, DbErr> {
    let result = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1)",
            [keep.as_secs_f64().into()],
        ))
        .await?;
    Ok(result.rows_affected())
}
