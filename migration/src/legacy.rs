//! The upgrade from the single-schema layout: every table in `public`, one shared `outbox` and
//! `inbox`, and `public.seaql_migrations` holding the seven [`LEGACY_MIGRATIONS`].
//!
//! [`crate::provision`] runs it inside its transaction, before the services' migrators:
//! 1. each table moves to its owner's schema (`ALTER TABLE .. SET SCHEMA`, then `OWNER TO` the
//!    service's role; indexes, constraints and identity sequences follow);
//! 2. each schema gets its `seaql_migrations` with the service's baseline recorded as applied,
//!    and its own `outbox`, `inbox` and notify trigger, created as the service's role;
//! 3. unpublished outbox rows go to the outbox of the service that produces their subject, and
//!    inbox rows to the inbox of the service whose consumer recorded them (a namespace prefix,
//!    `t1a2b.` or `t1a2b-`, is allowed);
//! 4. the legacy `outbox`, `inbox`, `seaql_migrations` and `outbox_notify()` are dropped.
//!
//! After the migrators ran, [`backfill_shipment_facts`] copies each order's shipment id and
//! times from the delivery schema onto the order (the order service no longer reads them there).

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement};

use crate::Service;
use crate::database::{quote_ident, quote_literal};
use crate::outbox_inbox;
use crate::provision::{ServiceRole, as_service_role, reset_role};

/// The migrations of the single-schema layout, all of which must be applied to upgrade it.
pub const LEGACY_MIGRATIONS: [&str; 7] = [
    "m20261123_000001_create_catalogue",
    "m20261123_000002_create_orders",
    "m20261123_000003_create_stock",
    "m20261123_000004_create_shipments",
    "m20261123_000005_create_notifications",
    "m20261123_000006_create_outbox_inbox",
    "m20261123_000007_add_shipment_correlation_id",
];

/// The tables each service owns (SPEC §2), in an order that moves referenced tables first.
pub fn tables_of(service: Service) -> &'static [&'static str] {
    match service {
        Service::Order => &[
            "merchants",
            "users",
            "products",
            "recipe_lines",
            "orders",
            "order_lines",
            "order_status_history",
        ],
        Service::Stock => &["ingredients", "stock_movements"],
        Service::Delivery => &["shipments"],
        Service::Notification => &["notifications"],
    }
}

/// What the upgrade moved and copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    /// Tables moved out of `public`.
    pub tables_moved: usize,
    /// Unpublished outbox rows copied, per service.
    pub outbox_rows: BTreeMap<Service, u64>,
    /// Inbox rows copied, per service.
    pub inbox_rows: BTreeMap<Service, u64>,
    /// Consumers of inbox rows no service claims; their rows were dropped.
    pub unknown_consumers: Vec<String>,
    /// Orders given their shipment id and times from the legacy shipments.
    pub orders_backfilled: u64,
}

/// The service that publishes `subject` (`orders.created`, or `t1a2b.orders.created`).
pub fn owner_of_subject(subject: &str) -> Option<Service> {
    fn unprefixed(subject: &str) -> Option<Service> {
        match subject {
            "orders.created" | "orders.cancelled" => Some(Service::Order),
            "orders.confirmed" | "orders.rejected" | "stock.low" => Some(Service::Stock),
            _ if subject.starts_with("delivery.") && subject.len() > "delivery.".len() => {
                Some(Service::Delivery)
            }
            _ => None,
        }
    }
    unprefixed(subject).or_else(|| {
        let (namespace, rest) = subject.split_once('.')?;
        is_namespace(namespace).then(|| unprefixed(rest)).flatten()
    })
}

/// The service whose consumer recorded an inbox row (`stock-orders-created`, or
/// `t1a2b-stock-orders-created`).
pub fn owner_of_consumer(consumer: &str) -> Option<Service> {
    fn unprefixed(consumer: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|service| {
            consumer
                .strip_prefix(service.name())
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('-'))
        })
    }
    unprefixed(consumer).or_else(|| {
        let (namespace, rest) = consumer.split_once('-')?;
        is_namespace(namespace).then(|| unprefixed(rest)).flatten()
    })
}

/// A NATS namespace: lowercase letters and digits, starting with a letter.
fn is_namespace(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// Whether the database has the single-schema layout to upgrade. Errors when it has something
/// else in `public.seaql_migrations`, or the new layout too.
pub(crate) async fn detect(txn: &DatabaseTransaction) -> Result<bool, DbErr> {
    let present = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('public.seaql_migrations') IS NOT NULL AS present",
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "present"))
        .transpose()?
        .unwrap_or(false);
    if !present {
        return Ok(false);
    }
    let applied: Vec<String> = txn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT version FROM public.seaql_migrations ORDER BY version",
        ))
        .await?
        .iter()
        .map(|row| row.try_get("", "version"))
        .collect::<Result<_, _>>()?;
    if applied != LEGACY_MIGRATIONS {
        return Err(DbErr::Custom(format!(
            "public.seaql_migrations holds {applied:?}, not the seven migrations of the \
             single-schema layout: upgrade with the release that wrote them first"
        )));
    }
    for service in Service::ALL {
        let migrated = txn
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT to_regclass({}) IS NOT NULL AS present",
                    quote_literal(&format!("{}.seaql_migrations", service.quoted_schema()))
                ),
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "present"))
            .transpose()?
            .unwrap_or(false);
        if migrated {
            return Err(DbErr::Custom(format!(
                "both layouts are present: public.seaql_migrations and {}.seaql_migrations; \
                 refusing to merge them",
                service.quoted_schema()
            )));
        }
    }
    Ok(true)
}

/// Steps 1 to 4 of the module documentation.
pub(crate) async fn adopt(
    txn: &DatabaseTransaction,
    roles: &[ServiceRole],
) -> Result<Adopted, DbErr> {
    let mut adopted = Adopted::default();

    // 1. Tables to their schemas, owned by their service's role.
    for role in roles {
        let (schema, owner) = (role.service.quoted_schema(), quote_ident(&role.role));
        for table in tables_of(role.service) {
            let table = quote_ident(table);
            txn.execute_unprepared(&format!(
                "ALTER TABLE public.{table} SET SCHEMA {schema}; \
                 ALTER TABLE {schema}.{table} OWNER TO {owner}"
            ))
            .await?;
            adopted.tables_moved += 1;
        }
    }

    // 2. Each schema's migration history and its own outbox and inbox, as its role.
    for role in roles {
        as_service_role(txn, role).await?;
        role.service.install_migration_table(txn).await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO seaql_migrations (version, applied_at) \
             VALUES ($1, extract(epoch FROM now())::bigint)",
            [role.service.baseline_migration().into()],
        ))
        .await?;
        txn.execute_unprepared(&outbox_inbox::up(role.service.outbox_channel()))
            .await?;
        reset_role(txn).await?;
    }

    // 3. Rows in flight to their owners.
    let subjects = distinct(
        txn,
        "SELECT DISTINCT subject AS value FROM public.outbox WHERE published_at IS NULL",
    )
    .await?;
    let mut by_service: BTreeMap<Service, Vec<String>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for subject in subjects {
        match owner_of_subject(&subject) {
            Some(service) => by_service.entry(service).or_default().push(subject),
            None => unknown.push(subject),
        }
    }
    if !unknown.is_empty() {
        return Err(DbErr::Custom(format!(
            "unpublished outbox rows with subjects no service publishes: {unknown:?}; \
             publish or delete them, then run `larder migrate` again"
        )));
    }
    for (service, subjects) in by_service {
        let copied = txn
            .execute_unprepared(&format!(
                "INSERT INTO {}.outbox (id, subject, payload, headers, created_at, published_at) \
                 SELECT id, subject, payload, headers, created_at, published_at FROM public.outbox \
                 WHERE published_at IS NULL AND subject IN ({})",
                service.quoted_schema(),
                literal_list(&subjects)
            ))
            .await?
            .rows_affected();
        adopted.outbox_rows.insert(service, copied);
    }

    let consumers = distinct(txn, "SELECT DISTINCT consumer AS value FROM public.inbox").await?;
    let mut by_service: BTreeMap<Service, Vec<String>> = BTreeMap::new();
    for consumer in consumers {
        match owner_of_consumer(&consumer) {
            Some(service) => by_service.entry(service).or_default().push(consumer),
            None => {
                tracing::warn!(
                    consumer,
                    "inbox rows of a consumer no service owns: dropped"
                );
                adopted.unknown_consumers.push(consumer);
            }
        }
    }
    for (service, consumers) in by_service {
        let copied = txn
            .execute_unprepared(&format!(
                "INSERT INTO {}.inbox (consumer, event_id, processed_at) \
                 SELECT consumer, event_id, processed_at FROM public.inbox WHERE consumer IN ({})",
                service.quoted_schema(),
                literal_list(&consumers)
            ))
            .await?
            .rows_affected();
        adopted.inbox_rows.insert(service, copied);
    }

    // 4. The shared plumbing goes (dropping the outbox drops its trigger).
    txn.execute_unprepared(
        "DROP TABLE public.outbox; DROP TABLE public.inbox; DROP TABLE public.seaql_migrations; \
         DROP FUNCTION public.outbox_notify()",
    )
    .await?;
    tracing::info!(?adopted, "upgraded the single-schema layout");
    Ok(adopted)
}

/// Copies each order's shipment id and times from the delivery schema, where the order has none
/// yet. Returns the orders updated.
pub(crate) async fn backfill_shipment_facts(txn: &DatabaseTransaction) -> Result<u64, DbErr> {
    Ok(txn
        .execute_unprepared(
            "UPDATE \"order\".orders o \
             SET shipment_id = s.id, dispatched_at = s.dispatched_at, delivered_at = s.delivered_at \
             FROM delivery.shipments s \
             WHERE s.order_id = o.id AND o.shipment_id IS NULL",
        )
        .await?
        .rows_affected())
}

async fn distinct(txn: &DatabaseTransaction, sql: &str) -> Result<Vec<String>, DbErr> {
    txn.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await?
        .iter()
        .map(|row| row.try_get("", "value"))
        .collect()
}

fn literal_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote_literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_belong_to_their_producer() {
        let cases = [
            ("orders.created", Some(Service::Order)),
            ("orders.cancelled", Some(Service::Order)),
            ("orders.confirmed", Some(Service::Stock)),
            ("orders.rejected", Some(Service::Stock)),
            ("stock.low", Some(Service::Stock)),
            ("delivery.dispatched", Some(Service::Delivery)),
            ("delivery.delivered", Some(Service::Delivery)),
            ("t1a2b.orders.created", Some(Service::Order)),
            ("t1a2b.stock.low", Some(Service::Stock)),
            ("t1a2b.delivery.delivered", Some(Service::Delivery)),
            ("delivery.", None),
            ("orders.shipped", None),
            ("T1.orders.created", None),
            ("a.b.orders.created", None),
            ("dlq.stock-orders-created", None),
        ];
        for (subject, owner) in cases {
            assert_eq!(owner_of_subject(subject), owner, "{subject}");
        }
    }

    #[test]
    fn consumers_belong_to_their_service() {
        let cases = [
            ("order-orders-confirmed", Some(Service::Order)),
            ("order-delivery", Some(Service::Order)),
            ("stock-orders-created", Some(Service::Stock)),
            ("delivery-orders-cancelled", Some(Service::Delivery)),
            ("notification-stock-low", Some(Service::Notification)),
            ("t1a2b-order-orders-rejected", Some(Service::Order)),
            ("t1a2b-stock-orders-cancelled", Some(Service::Stock)),
            ("orders-created", None),
            ("order-", None),
            ("billing-orders-created", None),
            ("x-y-stock-orders-created", None),
        ];
        for (consumer, owner) in cases {
            assert_eq!(owner_of_consumer(consumer), owner, "{consumer}");
        }
    }

    #[test]
    fn every_legacy_table_has_one_owner() {
        let mut all: Vec<&str> = Service::ALL
            .into_iter()
            .flat_map(|s| tables_of(s).iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 11);
    }
}
