//! How every handler commits a batch: all of it in one transaction, and if that fails, each item
//! in a transaction of its own, so one bad item never sinks the others while a healthy batch
//! costs one commit.

use std::fmt::Display;
use std::future::Future;

use sea_orm::{ConnectionTrait, DbErr};

/// Applies `apply` to all of `items` at once; if that fails (and there is more than one item),
/// to each item alone. One result per item, in order. `apply` must answer one result per item it
/// is given, in order: anything else is a bug in the caller, and panics.
pub async fn all_else_each<'a, T, R, E, F, Fut>(items: &'a [T], apply: F) -> Vec<Result<R, E>>
where
    F: Fn(&'a [T]) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>>,
    E: Display,
{
    let one_per_item = |results: &Vec<R>, expected: usize| {
        assert_eq!(
            results.len(),
            expected,
            "a batch must answer one result per item"
        );
    };
    match apply(items).await {
        Ok(results) => {
            one_per_item(&results, items.len());
            results.into_iter().map(Ok).collect()
        }
        Err(error) if items.len() <= 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, items = items.len(), "batch failed; one transaction per item");
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                let result = apply(std::slice::from_ref(item)).await.map(|results| {
                    one_per_item(&results, 1);
                    results.into_iter().next().expect("one result")
                });
                results.push(result);
            }
            results
        }
    }
}

/// Has PostgreSQL plan the rest of the caller's transaction for the arguments each statement is
/// given, instead of reusing a cached generic plan. Call it before batch statements that join a
/// batch to a table that keeps growing (`… FROM jsonb_to_recordset($1) WHERE t.id = v.id AND
/// t.id = ANY($2)`, `id IN (…)`).
///
/// Every statement is prepared once per connection, and after five executions PostgreSQL may
/// settle on a generic plan, made without the arguments, and keep it for the connection's life.
/// Made while the table was small (a fresh database, whose statistics are never gathered when
/// autovacuum is off), that plan is a hash join over a sequential scan of the whole table, and
/// it goes on reading every row of the table for each batch as the table grows. A custom plan
/// sees how many ids the batch has (give them as an array: the planner cannot count the rows of
/// a JSON argument) and how large the table is now, and looks the rows up by index; it costs a
/// planning per statement, once per batch. Not for a claim ordered by an index with a `LIMIT`:
/// planned for its arguments it may fetch and sort every match instead of stopping at the limit.
///
/// It lasts until the transaction ends or [`plan_as_cached`]. Foreign-key checks are statements
/// too, one per inserted row: insert rows with foreign keys after [`plan_as_cached`], or their
/// checks are planned again row by row.
pub async fn plan_for_arguments(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    set_local(txn, "plan_cache_mode = force_custom_plan").await
}

/// Ends [`plan_for_arguments`] for the rest of the transaction: cached plans again.
pub async fn plan_as_cached(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    set_local(txn, "plan_cache_mode = auto").await
}

/// Until [`scans_allowed`] or the end of the transaction, the planner reads no table whole where
/// an index can answer: for looking a batch's ids up in a table that grows with every order.
///
/// With no statistics on such a table (a server without autovacuum never gathers them), the
/// planner takes each id to match 0.5 % of the rows. A generic plan cached while the table held a
/// few hundred rows then scans it for every batch, for the connection's life; a plan made for a
/// batch of hundreds of ids scans it too, even when made for its arguments. Each id matches a
/// handful of rows at most, so a probe of the index per id is right at any size; the statements
/// keep whichever plan PostgreSQL caches or makes, only never a sequential scan.
pub async fn probe_by_index(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    set_local(txn, "enable_seqscan = off").await
}

/// Ends [`probe_by_index`] for the rest of the transaction.
pub async fn scans_allowed(txn: &impl ConnectionTrait) -> Result<(), DbErr> {
    set_local(txn, "enable_seqscan = on").await
}

/// Sets a planner setting for the rest of the caller's transaction (outside a transaction,
/// `SET LOCAL` would change nothing).
async fn set_local(txn: &impl ConnectionTrait, setting: &str) -> Result<(), DbErr> {
    txn.execute_unprepared(&format!("SET LOCAL {setting}"))
        .await
        .map(drop)
}

/// A batch's rows as the JSON text a statement reads with `jsonb_to_recordset($1::jsonb)`,
/// written straight from typed rows, not built as `serde_json::Value` trees first (each tree is
/// allocated node by node, cloned when sea-orm binds it, and dropped twice).
pub fn json_rows<T: serde::Serialize>(rows: &[T]) -> Result<String, DbErr> {
    serde_json::to_string(rows).map_err(|e| DbErr::Custom(format!("encode batch rows: {e}")))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Fails any batch holding a negative number; answers the doubles otherwise.
    async fn double(calls: &RefCell<Vec<Vec<i32>>>, items: &[i32]) -> Result<Vec<i32>, String> {
        calls.borrow_mut().push(items.to_vec());
        if items.iter().any(|&i| i < 0) {
            return Err(format!("{items:?} holds a negative"));
        }
        Ok(items.iter().map(|i| i * 2).collect())
    }

    #[tokio::test]
    async fn a_healthy_batch_is_applied_once() {
        let calls = RefCell::new(Vec::new());
        let results = all_else_each(&[1, 2, 3], |items| double(&calls, items)).await;
        assert_eq!(results, vec![Ok(2), Ok(4), Ok(6)]);
        assert_eq!(calls.into_inner(), vec![vec![1, 2, 3]]);
    }

    #[tokio::test]
    async fn a_failed_batch_is_applied_item_by_item_and_only_the_bad_item_fails() {
        let calls = RefCell::new(Vec::new());
        let results = all_else_each(&[1, -2, 3], |items| double(&calls, items)).await;
        assert_eq!(results[0], Ok(2));
        assert!(results[1].is_err());
        assert_eq!(results[2], Ok(6));
        assert_eq!(
            calls.into_inner(),
            vec![vec![1, -2, 3], vec![1], vec![-2], vec![3]]
        );
    }

    #[tokio::test]
    async fn a_single_item_that_fails_is_not_tried_twice() {
        let calls = RefCell::new(Vec::new());
        let results = all_else_each(&[-1], |items| double(&calls, items)).await;
        assert!(results[0].is_err());
        assert_eq!(calls.into_inner().len(), 1);
    }
}
