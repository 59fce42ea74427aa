//! `notifications` queries: one row per `stock.low` event id, pending -> sent | failed.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use entities::notifications;
use larder_contract::Envelope;
use larder_contract::events::StockLow;

use crate::domain::NotificationStatus;

/// Inserts the event's row as `pending` unless it exists (`notifications_event_id_key`), and
/// returns the row's status. Never waits for a row being sent elsewhere: `ON CONFLICT DO
/// NOTHING` takes no row lock and the read is a plain snapshot.
pub async fn insert_pending(
    db: &impl ConnectionTrait,
    event: &Envelope<StockLow>,
) -> Result<NotificationStatus, DbErr> {
    let row = notifications::ActiveModel {
        event_id: Set(event.id),
        ingredient_id: Set(event.data.ingredient_id),
        ingredient_name: Set(event.data.ingredient.clone()),
        recipient: Set(event.data.merchant_email.clone()),
        status: Set(NotificationStatus::Pending),
        merchant_id: Set(Some(event.data.merchant_id)),
        unit: Set(Some(event.data.unit.clone())),
        level: Set(Some(event.data.level)),
        reference_level: Set(Some(event.data.reference_level)),
        percent: Set(Some(event.data.percent)),
        ..Default::default()
    };
    notifications::Entity::insert(row)
        .on_conflict_do_nothing_on([notifications::Column::EventId])
        .exec_without_returning(db)
        .await?;
    let row = find_by_event(db, event.id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("notification of event {}", event.id)))?;
    Ok(row.status)
}

/// Locks the event's row (`FOR UPDATE`) for the rest of the transaction and returns its status.
/// Two instances handling the same event at once (a redelivery after an ack timeout) take
/// turns: the second sees `sent` and sends nothing.
pub async fn lock_for_sending(
    txn: &DatabaseTransaction,
    event_id: Uuid,
) -> Result<NotificationStatus, DbErr> {
    let row = notifications::Entity::find()
        .filter(notifications::Column::EventId.eq(event_id))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("notification of event {event_id}")))?;
    Ok(row.status)
}

/// The SMTP server accepted the email.
pub async fn mark_sent(db: &impl ConnectionTrait, event_id: Uuid) -> Result<(), DbErr> {
    notifications::Entity::update_many()
        .col_expr(
            notifications::Column::Status,
            Expr::value(NotificationStatus::Sent),
        )
        .col_expr(notifications::Column::SentAt, Expr::current_timestamp())
        .col_expr(
            notifications::Column::Attempts,
            Expr::col(notifications::Column::Attempts).add(1),
        )
        .col_expr(
            notifications::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(notifications::Column::EventId.eq(event_id))
        .exec(db)
        .await?;
    Ok(())
}

/// One more attempt that did not send; `failed` when it was the last one. A row already `sent`
/// is left alone.
pub async fn record_failure(
    db: &impl ConnectionTrait,
    event_id: Uuid,
    error: &str,
    last_attempt: bool,
) -> Result<(), DbErr> {
    let status = if last_attempt {
        NotificationStatus::Failed
    } else {
        NotificationStatus::Pending
    };
    notifications::Entity::update_many()
        .col_expr(notifications::Column::Status, Expr::value(status))
        .col_expr(
            notifications::Column::Attempts,
            Expr::col(notifications::Column::Attempts).add(1),
        )
        .col_expr(notifications::Column::LastError, Expr::value(error))
        .filter(notifications::Column::EventId.eq(event_id))
        .filter(notifications::Column::Status.ne(NotificationStatus::Sent))
        .exec(db)
        .await?;
    Ok(())
}

/// The notification of one event, if it has been seen.
pub async fn find_by_event(
    db: &impl ConnectionTrait,
    event_id: Uuid,
) -> Result<Option<notifications::Model>, DbErr> {
    notifications::Entity::find()
        .filter(notifications::Column::EventId.eq(event_id))
        .one(db)
        .await
}

/// The merchant's newest `limit` notifications, newest first (`notifications_merchant_idx`).
pub async fn list_for_merchant(
    db: &impl ConnectionTrait,
    merchant_id: i64,
    limit: u64,
) -> Result<Vec<notifications::Model>, DbErr> {
    notifications::Entity::find()
        .filter(notifications::Column::MerchantId.eq(merchant_id))
        .order_by_desc(notifications::Column::CreatedAt)
        .order_by_desc(notifications::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
