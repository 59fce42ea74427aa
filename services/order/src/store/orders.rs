//! Orders: the group-committed insert with its `orders.created`, reads, and the forward-only
//! status moves (SPEC §5 rule 4).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use entities::{merchants, order_lines, order_status_history, orders};
use larder_contract::events::IngredientAmount;

use larder_bus::batch::json_rows;

use super::catalogue::{find_products, find_recipes};
use crate::domain::{self, CatalogueProduct, OrderStatus, PricedOrder, Settle};

/// A new order, priced, ready to insert.
pub struct NewOrder {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub currency: String,
    pub priced: PricedOrder,
    pub idempotency_key: Option<String>,
    pub fingerprint: String,
    pub correlation_id: Option<String>,
}

/// One order of a group-committed batch, as the insert's `jsonb_to_recordset` reads it.
#[derive(serde::Serialize)]
struct OrderInput<'a> {
    id: Uuid,
    customer_id: Uuid,
    merchant_id: i64,
    total_cents: i64,
    currency: &'a str,
    idempotency_key: Option<&'a str>,
    request_hash: &'a str,
    correlation_id: Option<&'a str>,
    lines: Vec<LineInput<'a>>,
    event_id: Uuid,
    subject: &'a str,
    payload: &'a serde_json::value::RawValue,
    headers: &'a serde_json::value::RawValue,
    ord: usize,
}

/// One line of an [`OrderInput`].
#[derive(serde::Serialize)]
struct LineInput<'a> {
    product_id: i64,
    product_name: &'a str,
    quantity: i64,
    unit_price_cents: i64,
    line_total_cents: i64,
}

/// What inserting an order with an idempotency key found.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Created at this time (the first history entry's too).
    CreatedAt(DateTime<Utc>),
    /// The customer already used this key: the existing order and its request fingerprint.
    AlreadyExists {
        order_id: Uuid,
        fingerprint: Option<String>,
    },
}

/// Many orders, each with its lines, its first history entry and its `orders.created` outbox row,
/// in ONE statement: data-modifying CTEs commit together (SPEC §5 rule 1) in a single round trip
/// and a single commit, whatever the number of orders (the [`OrderWriter`] groups concurrent
/// requests into one call). Answers in the order of `orders`.
///
/// Race-free idempotency: the order insert is `ON CONFLICT ON CONSTRAINT
/// orders_customer_idempotency_key DO NOTHING` and the other inserts select from its result, so
/// an order whose key was already used writes nothing at all. Of concurrent statements with one
/// key exactly one inserts; the others wait on the unique index until it commits, and then read
/// the winner's order. Two orders with one key in the same batch: the first inserts.
///
/// [`OrderWriter`]: crate::order_writer::OrderWriter
pub async fn insert_orders_with_events(
    db: &impl ConnectionTrait,
    orders: &[(&NewOrder, &larder_bus::outbox::PreparedEvent)],
) -> Result<Vec<Inserted>, DbErr> {
    let input: Vec<OrderInput> = orders
        .iter()
        .enumerate()
        .map(|(ord, (order, event))| OrderInput {
            id: order.id,
            customer_id: order.customer_id,
            merchant_id: order.priced.merchant_id,
            total_cents: order.priced.total_cents,
            currency: &order.currency,
            idempotency_key: order.idempotency_key.as_deref(),
            request_hash: &order.fingerprint,
            correlation_id: order.correlation_id.as_deref(),
            lines: order
                .priced
                .lines
                .iter()
                .map(|l| LineInput {
                    product_id: l.product_id,
                    product_name: &l.product_name,
                    quantity: l.quantity,
                    unit_price_cents: l.unit_price_cents,
                    line_total_cents: l.line_total_cents,
                })
                .collect(),
            event_id: event.id,
            subject: &event.subject,
            payload: &event.payload,
            headers: &event.headers,
            ord,
        })
        .collect();
    // Sent as JSON text, written straight from these structs and the events' encoded JSON, never
    // built as a tree of `serde_json::Value`s: serde_json was about 30 % of larder's samples in
    // `perf`, most of it building, cloning, dropping and parsing such trees.
    let input = json_rows(&input)?;
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            // `ORDER BY ord` keeps the batch's insertion order, so outbox rows (and thus
            // `orders.created` events) follow the order in which requests arrived.
            "WITH input AS MATERIALIZED ( \
                 SELECT * FROM jsonb_to_recordset($1::jsonb) AS i( \
                     id UUID, customer_id UUID, merchant_id BIGINT, total_cents BIGINT, \
                     currency TEXT, idempotency_key TEXT, request_hash TEXT, correlation_id TEXT, \
                     lines JSONB, event_id UUID, subject TEXT, payload JSONB, headers JSONB, \
                     ord BIGINT)), \
             new_order AS ( \
                 INSERT INTO orders (id, customer_id, merchant_id, status, total_cents, currency, \
                                     idempotency_key, request_hash, correlation_id) \
                 SELECT id, customer_id, merchant_id, 'pending', total_cents, currency, \
                        idempotency_key, request_hash, correlation_id \
                 FROM input ORDER BY ord \
                 ON CONFLICT ON CONSTRAINT orders_customer_idempotency_key DO NOTHING \
                 RETURNING id, created_at), \
             new_lines AS ( \
                 INSERT INTO order_lines (order_id, product_id, product_name, quantity, \
                                          unit_price_cents, line_total_cents) \
                 SELECT new_order.id, l.product_id, l.product_name, l.quantity, \
                        l.unit_price_cents, l.line_total_cents \
                 FROM new_order JOIN input USING (id) \
                 CROSS JOIN jsonb_to_recordset(input.lines) AS l( \
                     product_id BIGINT, product_name TEXT, quantity INT, \
                     unit_price_cents BIGINT, line_total_cents BIGINT)), \
             new_history AS ( \
                 INSERT INTO order_status_history (order_id, status, at) \
                 SELECT id, 'pending', created_at FROM new_order), \
             new_event AS ( \
                 INSERT INTO outbox (id, subject, payload, headers) \
                 SELECT input.event_id, input.subject, input.payload, input.headers \
                 FROM new_order JOIN input USING (id) ORDER BY input.ord) \
             SELECT id, created_at FROM new_order",
            [input.into()],
        ))
        .await?;
    let mut created = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("", "id")?;
        let created_at: DateTime<chrono::FixedOffset> = row.try_get("", "created_at")?;
        created.insert(id, created_at.with_timezone(&Utc));
    }
    let mut answers = Vec::with_capacity(orders.len());
    for (order, _) in orders {
        answers.push(match created.get(&order.id) {
            Some(at) => Inserted::CreatedAt(*at),
            None => existing_order_for_key(db, order).await?,
        });
    }
    Ok(answers)
}

/// The order that already holds this order's idempotency key.
async fn existing_order_for_key(
    db: &impl ConnectionTrait,
    order: &NewOrder,
) -> Result<Inserted, DbErr> {
    let existing = orders::Entity::find()
        .filter(orders::Column::CustomerId.eq(order.customer_id))
        .filter(orders::Column::IdempotencyKey.eq(order.idempotency_key.as_deref()))
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("order for idempotency key".into()))?;
    Ok(Inserted::AlreadyExists {
        order_id: existing.id,
        fingerprint: existing.request_hash,
    })
}

/// Products with their merchant's currency and their recipe: what pricing and the
/// `orders.created` event need.
pub async fn find_catalogue_entries(
    db: &impl ConnectionTrait,
    ids: &[i64],
) -> Result<Vec<(CatalogueProduct, String, Vec<IngredientAmount>)>, DbErr> {
    let products = find_products(db, ids).await?;
    if products.is_empty() {
        return Ok(Vec::new());
    }
    let merchant_ids: Vec<i64> = products.values().map(|p| p.merchant_id).collect();
    let currencies: HashMap<i64, String> = merchants::Entity::find()
        .filter(merchants::Column::Id.is_in(merchant_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m.currency))
        .collect();
    let product_ids: Vec<i64> = products.keys().copied().collect();
    let mut recipes = find_recipes(db, &product_ids).await?;
    Ok(products
        .into_values()
        .map(|p| {
            let currency = currencies.get(&p.merchant_id).cloned().unwrap_or_default();
            let recipe = recipes.remove(&p.id).unwrap_or_default();
            (p, currency, recipe)
        })
        .collect())
}

async fn insert_history(
    db: &impl ConnectionTrait,
    order_id: Uuid,
    status: OrderStatus,
    note: Option<String>,
) -> Result<(), DbErr> {
    order_status_history::Entity::insert(order_status_history::ActiveModel {
        order_id: Set(order_id),
        status: Set(status),
        note: Set(note),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// An order with everything `GET /order/{id}` shows.
#[derive(Debug)]
pub struct OrderDetails {
    pub order: orders::Model,
    pub lines: Vec<order_lines::Model>,
    pub history: Vec<order_status_history::Model>,
    pub shipment: Option<ShipmentFacts>,
}

/// What the order service knows of its order's shipment, from the `delivery.*` events it
/// consumed (delivery's tables are delivery's alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShipmentFacts {
    pub id: Uuid,
    /// `dispatched`, `delivered` or `cancelled` (a shipment delivery dropped on a cancel).
    pub status: &'static str,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl ShipmentFacts {
    fn of(order: &orders::Model) -> Option<Self> {
        let id = order.shipment_id?;
        let dispatched_at = order.dispatched_at.map(|t| t.with_timezone(&Utc));
        let delivered_at = order.delivered_at.map(|t| t.with_timezone(&Utc));
        let status = match (dispatched_at, delivered_at) {
            (_, Some(_)) => "delivered",
            (Some(_), None) => "dispatched",
            (None, None) => "cancelled",
        };
        Some(Self {
            id,
            status,
            dispatched_at,
            delivered_at,
        })
    }
}

pub async fn find_order(
    db: &impl ConnectionTrait,
    order_id: Uuid,
) -> Result<Option<OrderDetails>, DbErr> {
    let Some(order) = orders::Entity::find_by_id(order_id).one(db).await? else {
        return Ok(None);
    };
    let lines = order_lines::Entity::find()
        .filter(order_lines::Column::OrderId.eq(order_id))
        .order_by_asc(order_lines::Column::ProductId)
        .all(db)
        .await?;
    let history = order_status_history::Entity::find()
        .filter(order_status_history::Column::OrderId.eq(order_id))
        .order_by_asc(order_status_history::Column::Id)
        .all(db)
        .await?;
    let shipment = ShipmentFacts::of(&order);
    Ok(Some(OrderDetails {
        order,
        lines,
        history,
        shipment,
    }))
}

/// The order's status changes after history entry `after`, oldest first; with `None`, only the
/// latest (the current status). Ids grow with each order's changes: its row lock serialises them.
pub async fn find_status_changes(
    db: &impl ConnectionTrait,
    order_id: Uuid,
    after: Option<i64>,
) -> Result<Vec<order_status_history::Model>, DbErr> {
    let query = order_status_history::Entity::find()
        .filter(order_status_history::Column::OrderId.eq(order_id));
    match after {
        Some(after) => {
            query
                .filter(order_status_history::Column::Id.gt(after))
                .order_by_asc(order_status_history::Column::Id)
                .all(db)
                .await
        }
        None => Ok(query
            .order_by_desc(order_status_history::Column::Id)
            .one(db)
            .await?
            .into_iter()
            .collect()),
    }
}

/// Order id -> merchant id, for the given orders that exist.
pub async fn merchants_of(
    db: &impl ConnectionTrait,
    order_ids: &[Uuid],
) -> Result<HashMap<Uuid, i64>, DbErr> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(orders::Entity::find()
        .filter(orders::Column::Id.is_in(order_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|o| (o.id, o.merchant_id))
        .collect())
}

/// The order row alone, unlocked.
pub async fn find_order_summary(
    db: &impl ConnectionTrait,
    order_id: Uuid,
) -> Result<Option<orders::Model>, DbErr> {
    orders::Entity::find_by_id(order_id).one(db).await
}

/// The order row, locked until the caller's transaction ends (a cancel serialises with the event
/// consumers on it).
pub async fn find_order_for_update(
    db: &impl ConnectionTrait,
    order_id: Uuid,
) -> Result<Option<orders::Model>, DbErr> {
    orders::Entity::find_by_id(order_id)
        .lock_exclusive()
        .one(db)
        .await
}

/// Whose orders a listing shows.
#[derive(Clone, Copy, Debug)]
pub enum OrderScope {
    Customer(Uuid),
    Merchant(i64),
}

/// One page of orders, newest first, and the total count.
pub async fn list_orders(
    db: &impl ConnectionTrait,
    scope: OrderScope,
    status: Option<OrderStatus>,
    page: u64,
    per_page: u64,
) -> Result<(Vec<orders::Model>, u64), DbErr> {
    let mut query = orders::Entity::find();
    query = match scope {
        OrderScope::Customer(id) => query.filter(orders::Column::CustomerId.eq(id)),
        OrderScope::Merchant(id) => query.filter(orders::Column::MerchantId.eq(id)),
    };
    if let Some(status) = status {
        query = query.filter(orders::Column::Status.eq(status.as_str()));
    }
    let total = query.clone().count(db).await?;
    let items = query
        .order_by_desc(orders::Column::CreatedAt)
        .order_by_desc(orders::Column::Id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .all(db)
        .await?;
    Ok((items, total))
}

/// Moves the order to `to` if its current status allows it (SPEC §5 rule 4), recording the
/// history; `rejection` is stored with a rejection. The row is locked (`FOR UPDATE`) so two
/// events for one order settle one after the other. Returns how the event settled.
pub async fn advance_order(
    db: &impl ConnectionTrait,
    order_id: Uuid,
    to: OrderStatus,
    rejection: Option<serde_json::Value>,
    note: Option<String>,
) -> Result<Option<(OrderStatus, Settle)>, DbErr> {
    let Some(order) = orders::Entity::find_by_id(order_id)
        .lock_exclusive()
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let current = order.status;
    let settle = domain::settle(current, to);
    if settle == Settle::Apply {
        let mut update = orders::Entity::update_many()
            .col_expr(orders::Column::Status, to.as_str().into())
            .col_expr(
                orders::Column::UpdatedAt,
                sea_orm::sea_query::Expr::current_timestamp(),
            );
        if let Some(rejection) = rejection {
            update = update.col_expr(orders::Column::Rejection, rejection.into());
        }
        update
            .filter(orders::Column::Id.eq(order_id))
            .exec(db)
            .await?;
        insert_history(db, order_id, to, note).await?;
    }
    Ok(Some((current, settle)))
}

/// One event's requested move, for [`advance_orders`].
#[derive(Clone, Debug)]
pub struct Move {
    pub order_id: Uuid,
    pub to: OrderStatus,
    pub rejection: Option<serde_json::Value>,
    pub note: Option<String>,
    /// What a `delivery.*` event says of the shipment, kept on the order when the move applies.
    pub shipment: Option<ShipmentFact>,
}

/// One delivery event's fact about an order's shipment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShipmentFact {
    pub shipment_id: Uuid,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Settles a batch of moves in the caller's transaction with four statements, whatever the batch
/// size: the orders are locked in id order (`FOR UPDATE`: concurrent batches serialise per order
/// and cannot deadlock), each move is settled in memory in batch order with
/// [`OrderStatus::settle`] (SPEC §5 rule 4: forward only), then the new statuses and the history
/// entries are written set-wise. No inbox row is kept: the forward-only rule makes a redelivered
/// or duplicated event a no-op by itself (the order is already there, so it is `Ignore`d), and a
/// move that came too early (`NotYet`) is simply delivered again.
///
/// Returns, per move in order, the status it found and how it settled (`None` for an unknown
/// order), and the merchant of every order found.
pub async fn advance_orders(db: &impl ConnectionTrait, moves: &[Move]) -> Result<Advanced, DbErr> {
    if moves.is_empty() {
        return Ok(Advanced::default());
    }
    // The lock and the update reach into a table that grows with every order: planned for their
    // arguments, not with a plan cached while it was small.
    larder_bus::batch::plan_for_arguments(db).await?;
    let mut ids: Vec<Uuid> = moves.iter().map(|m| m.order_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let locked = orders::Entity::find()
        .filter(orders::Column::Id.is_in(ids))
        .order_by_asc(orders::Column::Id)
        .lock_exclusive()
        .all(db)
        .await?;
    let mut current: HashMap<Uuid, OrderStatus> = HashMap::with_capacity(locked.len());
    for order in &locked {
        current.insert(order.id, order.status);
    }

    let mut results = Vec::with_capacity(moves.len());
    let mut history = Vec::new();
    let mut rejections: HashMap<Uuid, &serde_json::Value> = HashMap::new();
    let mut shipments: HashMap<Uuid, ShipmentFact> = HashMap::new();
    for m in moves {
        let Some(status) = current.get_mut(&m.order_id) else {
            results.push(None);
            continue;
        };
        let found = *status;
        let settle = domain::settle(found, m.to);
        if settle == Settle::Apply {
            *status = m.to;
            history.push(HistoryRow {
                n: history.len(),
                order_id: m.order_id,
                status: m.to.as_str(),
                note: m.note.as_deref(),
            });
            if let Some(rejection) = &m.rejection {
                rejections.insert(m.order_id, rejection);
            }
            if let Some(fact) = m.shipment {
                let known = shipments.entry(m.order_id).or_insert(fact);
                known.shipment_id = fact.shipment_id;
                known.dispatched_at = known.dispatched_at.or(fact.dispatched_at);
                known.delivered_at = known.delivered_at.or(fact.delivered_at);
            }
        }
        results.push(Some((found, settle)));
    }

    if !history.is_empty() {
        let changed: Vec<&orders::Model> = locked
            .iter()
            .filter(|o| Some(o.status) != current.get(&o.id).copied())
            .collect();
        let changed_ids: Vec<Uuid> = changed.iter().map(|o| o.id).collect();
        let changes: Vec<StatusChange> = changed
            .iter()
            .map(|o| {
                let shipment = shipments.get(&o.id);
                StatusChange {
                    id: o.id,
                    status: current[&o.id].as_str(),
                    rejection: rejections.get(&o.id).copied(),
                    shipment_id: shipment.map(|s| s.shipment_id),
                    dispatched_at: shipment.and_then(|s| s.dispatched_at),
                    delivered_at: shipment.and_then(|s| s.delivered_at),
                }
            })
            .collect();
        // `o.id = ANY($2)` lets the planner find the rows by primary key, as many as the array
        // holds: it cannot see into the JSON and, guessing its size, preferred scanning the whole
        // table (25 ms per batch at 40 000 orders, the bench's largest cost before this).
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE orders o SET status = c.status, updated_at = now(), \
                 rejection = COALESCE(c.rejection, o.rejection), \
                 shipment_id = COALESCE(c.shipment_id, o.shipment_id), \
                 dispatched_at = COALESCE(c.dispatched_at, o.dispatched_at), \
                 delivered_at = COALESCE(c.delivered_at, o.delivered_at) \
             FROM jsonb_to_recordset($1::jsonb) AS c(id UUID, status TEXT, rejection JSONB, \
                 shipment_id UUID, dispatched_at TIMESTAMPTZ, delivered_at TIMESTAMPTZ) \
             WHERE o.id = c.id AND o.id = ANY($2)",
            [json_rows(&changes)?.into(), changed_ids.into()],
        ))
        .await?;
        // One foreign-key check per history row: with their cached plans.
        larder_bus::batch::plan_as_cached(db).await?;
        // Inserted in batch order (`n`), so history ids follow the order of events.
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO order_status_history (order_id, status, note) \
             SELECT h.order_id, h.status, h.note \
             FROM jsonb_to_recordset($1::jsonb) AS h(n BIGINT, order_id UUID, status TEXT, note TEXT) \
             ORDER BY h.n",
            [json_rows(&history)?.into()],
        ))
        .await?;
    }
    Ok(Advanced {
        settled: results,
        merchants: locked.iter().map(|o| (o.id, o.merchant_id)).collect(),
    })
}

/// An order's new status and facts, as [`advance_orders`]' update reads them.
#[derive(serde::Serialize)]
struct StatusChange<'a> {
    id: Uuid,
    status: &'static str,
    rejection: Option<&'a serde_json::Value>,
    shipment_id: Option<Uuid>,
    dispatched_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
}

/// A history entry, as [`advance_orders`]' insert reads it; `n` keeps the batch's order.
#[derive(serde::Serialize)]
struct HistoryRow<'a> {
    n: usize,
    order_id: Uuid,
    status: &'static str,
    note: Option<&'a str>,
}

/// What [`advance_orders`] did.
#[derive(Debug, Default)]
pub struct Advanced {
    /// Per move, in order: the status it found and how it settled; `None` for an unknown order.
    pub settled: Vec<Option<(OrderStatus, Settle)>>,
    /// Order id -> merchant id, for the orders found.
    pub merchants: HashMap<Uuid, i64>,
}
