//! The stock service's event handlers: plain types (no state, no actor) that unpack a batch,
//! call the store in a transaction and answer one outcome per message after the commit.
//!
//! - [`reservations`]: `orders.created` -> reserve all or nothing, confirm or reject, alert.
//! - [`releases`]: `orders.cancelled` -> put back what the order reserved.

pub mod releases;
pub mod reservations;

pub use releases::ReleaseOrders;
pub use reservations::ReserveOrders;

use larder_bus::push::Pusher;
use larder_contract::push::{self, StockChanged};

/// Tells the merchants' live consoles their levels changed, after the commit; nothing when no
/// level did.
pub(crate) async fn announce_levels_changed(pushes: &Pusher, merchant_ids: Vec<i64>) {
    if merchant_ids.is_empty() {
        return;
    }
    let changed = StockChanged {
        merchant_ids: push::distinct(merchant_ids),
    };
    pushes.publish(push::STOCK_CHANGED, &changed).await;
}
