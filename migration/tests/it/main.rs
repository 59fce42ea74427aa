//! The schemas against a real PostgreSQL: each test owns a fresh `larder_t_<uuid>` database and
//! roles of its own (`migration::testing::TestDatabase`), so the tests run in parallel.

mod constraints;
mod entity_round_trip;
mod helpers;
mod legacy;
mod migrate;
mod outbox_notify;
mod permissions;
