//! Subjects, lower dotted, without the namespace prefix (SPEC §4). The streams that capture
//! them and the consumers that follow them are the bus's (`larder_bus::topology`).

pub const ORDERS_CREATED: &str = "orders.created";
pub const ORDERS_CONFIRMED: &str = "orders.confirmed";
pub const ORDERS_REJECTED: &str = "orders.rejected";
pub const ORDERS_CANCELLED: &str = "orders.cancelled";
pub const STOCK_LOW: &str = "stock.low";
pub const DELIVERY_DISPATCHED: &str = "delivery.dispatched";
pub const DELIVERY_DELIVERED: &str = "delivery.delivered";
pub const DELIVERY_CANCELLED: &str = "delivery.cancelled";
/// Every delivery event: one consumer of the order service follows them all, in order.
pub const DELIVERY_ALL: &str = "delivery.>";

/// `dlq.<consumer>`: where a consumer's dead letters go.
pub fn dead_letter(durable: &str) -> String {
    format!("dlq.{durable}")
}
