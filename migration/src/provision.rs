//! What `larder migrate` does, as the admin (a superuser or the database's owner): create the
//! database if missing; per service create or alter its login role (password from the service's
//! URL) and its schema, owned by that role, with nothing granted to anyone else; take `CREATE`
//! on `public` away from `PUBLIC`; adopt the single-schema layout if it finds one
//! ([`crate::legacy`]); and run each service's migrations as that service's role, so the role
//! owns every object of its schema. All of it in one transaction.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement,
    TransactionTrait,
};

use crate::Service;
use crate::database::{
    self, DatabaseConfig, PROVISION_LOCK_KEY, ServiceDatabases, quote_ident, quote_literal,
};
use crate::legacy::{self, Adopted};

/// A service's login role, as read from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRole {
    pub service: Service,
    pub role: String,
    pub password: Option<String>,
}

/// What [`provision`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// Set when the database had the single-schema layout and was upgraded.
    pub adopted: Option<Adopted>,
}

/// The four service roles named by `services`' URLs. Refuses a URL without a user, two services
/// sharing a role, or a service logging in as the admin: each would undo the separation.
pub fn service_roles(
    admin: &DatabaseConfig,
    services: &ServiceDatabases,
) -> Result<Vec<ServiceRole>, DbErr> {
    let admin_user = admin.user();
    let mut roles: Vec<ServiceRole> = Vec::with_capacity(Service::ALL.len());
    for service in Service::ALL {
        let config = services.config(service);
        let role = config.user().ok_or_else(|| {
            DbErr::Custom(format!(
                "{} names no user: each service logs in as its own role (e.g. {})",
                service.url_env(),
                service.default_role()
            ))
        })?;
        if admin_user.as_deref() == Some(role.as_str()) {
            return Err(DbErr::Custom(format!(
                "{} logs in as the admin role {role:?}: give the {service} service a role of its own",
                service.url_env()
            )));
        }
        if let Some(other) = roles.iter().find(|r| r.role == role) {
            return Err(DbErr::Custom(format!(
                "{} and {} both log in as {role:?}: each service needs a role of its own",
                other.service.url_env(),
                service.url_env()
            )));
        }
        roles.push(ServiceRole {
            service,
            role,
            password: config.password(),
        });
    }
    Ok(roles)
}

/// `larder migrate`: see the module documentation. Safe to run again, and to race: the work is
/// serialised by the advisory lock [`PROVISION_LOCK_KEY`] and every schema's migration lock.
pub async fn provision(
    admin: &DatabaseConfig,
    services: &ServiceDatabases,
) -> Result<Provisioned, DbErr> {
    let roles = service_roles(admin, services)?;
    let admin = DatabaseConfig {
        max_connections: 1,
        service: None,
        ..admin.clone()
    };
    database::create_database_if_missing(&admin).await?;
    let db = database::connect(&admin).await?;
    let outcome = provision_on(&db, &roles).await;
    let closed = db.close().await;
    let provisioned = outcome?;
    closed?;
    Ok(provisioned)
}

/// [`provision`] on an admin connection to an existing database.
pub async fn provision_on(
    db: &DatabaseConnection,
    roles: &[ServiceRole],
) -> Result<Provisioned, DbErr> {
    let txn = db.begin().await?;
    match provision_in(&txn, roles).await {
        Ok(provisioned) => {
            txn.commit().await?;
            Ok(provisioned)
        }
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(error = %rollback, "Failed to roll back a failed provisioning");
            }
            Err(e)
        }
    }
}

async fn provision_in(
    txn: &DatabaseTransaction,
    roles: &[ServiceRole],
) -> Result<Provisioned, DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [PROVISION_LOCK_KEY.into()],
    ))
    .await?;
    // The services' own startup migrations wait for this transaction, and it for them.
    for role in roles {
        database::lock_schema(txn, role.service).await?;
    }
    let superuser = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "rolsuper"))
        .transpose()?
        .unwrap_or(false);

    for role in roles {
        ensure_role(txn, role, superuser).await?;
        let (schema, owner) = (role.service.quoted_schema(), quote_ident(&role.role));
        txn.execute_unprepared(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}; \
             ALTER SCHEMA {schema} OWNER TO {owner}; \
             REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"
        ))
        .await?;
    }
    // PostgreSQL 15 does this by default; older servers and upgraded clusters may not.
    txn.execute_unprepared("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        .await?;

    let adopted = if legacy::detect(txn).await? {
        Some(legacy::adopt(txn, roles).await?)
    } else {
        None
    };

    for role in roles {
        as_service_role(txn, role).await?;
        role.service.migrate_up(txn).await?;
        reset_role(txn).await?;
    }

    let adopted = match adopted {
        Some(mut adopted) => {
            adopted.orders_backfilled = legacy::backfill_shipment_facts(txn).await?;
            Some(adopted)
        }
        None => None,
    };
    tracing::info!(
        roles = ?roles.iter().map(|r| r.role.as_str()).collect::<Vec<_>>(),
        upgraded = adopted.is_some(),
        "schemas provisioned and migrated"
    );
    Ok(Provisioned { adopted })
}

/// Creates the role, or brings an existing one back to LOGIN with the URL's password.
async fn ensure_role(
    txn: &DatabaseTransaction,
    role: &ServiceRole,
    admin_is_superuser: bool,
) -> Result<(), DbErr> {
    let existing = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
            [role.role.as_str().into()],
        ))
        .await?
        .map(|row| row.try_get::<bool>("", "rolsuper"))
        .transpose()?;
    if existing == Some(true) {
        return Err(DbErr::Custom(format!(
            "{} logs in as {:?}, a superuser: a service's role must be able to use only its schema",
            role.service.url_env(),
            role.role
        )));
    }
    let name = quote_ident(&role.role);
    let password = role
        .password
        .as_deref()
        .map_or_else(String::new, |p| format!(" PASSWORD {}", quote_literal(p)));
    let verb = if existing.is_some() {
        "ALTER"
    } else {
        "CREATE"
    };
    txn.execute_unprepared(&format!("{verb} ROLE {name} LOGIN{password}"))
        .await?;
    if !admin_is_superuser {
        // A database owner with CREATEROLE must be a member to hand objects to the role.
        txn.execute_unprepared(&format!("GRANT {name} TO CURRENT_USER"))
            .await?;
    }
    Ok(())
}

/// Until [`reset_role`]: acts as the service's role, on its schema alone.
pub(crate) async fn as_service_role(
    txn: &DatabaseTransaction,
    role: &ServiceRole,
) -> Result<(), DbErr> {
    txn.execute_unprepared(&format!(
        "SET LOCAL ROLE {}; SET LOCAL search_path = {}",
        quote_ident(&role.role),
        role.service.quoted_schema()
    ))
    .await?;
    Ok(())
}

pub(crate) async fn reset_role(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    txn.execute_unprepared("RESET ROLE; RESET search_path")
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(order: &str) -> ServiceDatabases {
        ServiceDatabases {
            order_url: order.to_owned(),
            ..ServiceDatabases::default()
        }
    }

    #[test]
    fn roles_come_from_the_urls() {
        let roles = service_roles(&DatabaseConfig::default(), &ServiceDatabases::default())
            .expect("the defaults are valid");
        let names: Vec<&str> = roles.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(
            names,
            [
                "larder_order",
                "larder_stock",
                "larder_delivery",
                "larder_notification"
            ]
        );
        assert_eq!(roles[0].password.as_deref(), Some("larder_order"));
    }

    #[test]
    fn a_shared_admin_or_missing_role_is_refused() {
        let admin = DatabaseConfig::default();
        for (url, expected) in [
            ("postgres://postgres@db/larder", "admin role"),
            ("postgres://larder_stock:x@db/larder", "both log in as"),
            ("postgres://db/larder", "names no user"),
        ] {
            let err = service_roles(&admin, &services(url)).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }
}
