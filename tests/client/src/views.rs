//! The bodies the API takes and answers, as in `openapi.json` (the server's own types are in
//! `services/order/src/api`; this crate does not depend on the server). Times are RFC 3339
//! strings. Unknown response fields are ignored, so a newer server still decodes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `POST /auth/login`'s answer.
#[derive(Clone, Debug, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: String,
    pub expires_in: i64,
}

/// An account, as `POST /auth/register` answers it.
#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// `customer` or `merchant`.
    pub role: String,
    #[serde(default)]
    pub merchant_id: Option<i64>,
}

/// `POST /order/seed`'s answer: the merchant's products and ingredients.
#[derive(Clone, Debug, Deserialize)]
pub struct Catalogue {
    pub products: Vec<Product>,
    pub ingredients: Vec<Ingredient>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub recipe: Vec<RecipeLine>,
}

/// How much of an ingredient one unit of a product takes.
#[derive(Clone, Debug, Deserialize)]
pub struct RecipeLine {
    pub ingredient_id: i64,
    pub ingredient: String,
    /// In the ingredient's base unit.
    pub amount: i64,
    pub unit: String,
}

/// An ingredient and its level, as `GET /ingredients` and the seed show it.
#[derive(Clone, Debug, Deserialize)]
pub struct Ingredient {
    pub id: i64,
    pub name: String,
    /// `g`, `ml` or `pcs`.
    pub unit: String,
    pub stock: i64,
    pub reference_level: i64,
    pub percent: i64,
    pub alert: String,
}

/// `POST /order`'s body.
#[derive(Clone, Debug, Serialize)]
pub struct NewOrder {
    pub products: Vec<NewOrderLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NewOrderLine {
    pub product_id: i64,
    pub quantity: i64,
}

impl NewOrder {
    /// An order of `quantity` of one product.
    pub fn of(product_id: i64, quantity: i64) -> Self {
        Self {
            products: vec![NewOrderLine {
                product_id,
                quantity,
            }],
        }
    }
}

/// Only the id of an order answer: what a caller that wants nothing else decodes.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct OrderId {
    pub id: Uuid,
}

/// An order as the API shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct Order {
    pub id: Uuid,
    /// `pending`, `confirmed`, `rejected`, `dispatched`, `delivered` or `cancelled`.
    pub status: String,
    pub customer_id: Uuid,
    pub merchant_id: i64,
    pub total_cents: i64,
    pub currency: String,
    pub lines: Vec<OrderLine>,
    /// Oldest first.
    pub history: Vec<StatusChange>,
    #[serde(default)]
    pub rejection: Option<Rejection>,
    #[serde(default)]
    pub shipment: Option<Shipment>,
    pub created_at: String,
    pub updated_at: String,
}

impl Order {
    /// The statuses of its history, oldest first.
    pub fn statuses(&self) -> Vec<&str> {
        self.history.iter().map(|h| h.status.as_str()).collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct OrderLine {
    pub product_id: i64,
    pub product_name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StatusChange {
    pub status: String,
    pub at: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Rejection {
    pub shortages: Vec<ShortageView>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ShortageView {
    pub ingredient_id: i64,
    pub ingredient: String,
    pub required: i64,
    pub available: i64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Shipment {
    pub id: Uuid,
    pub status: String,
    #[serde(default)]
    pub dispatched_at: Option<String>,
    #[serde(default)]
    pub delivered_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_new_order_is_the_body_post_order_takes() {
        assert_eq!(
            serde_json::to_value(NewOrder::of(7, 2)).unwrap(),
            json!({ "products": [{ "product_id": 7, "quantity": 2 }] })
        );
    }

    #[test]
    fn an_order_decodes_with_or_without_its_optional_parts() {
        let id = Uuid::new_v4();
        let mut order = json!({
            "id": id, "status": "rejected", "customer_id": Uuid::new_v4(), "merchant_id": 1,
            "total_cents": 1798, "currency": "EUR",
            "lines": [{ "product_id": 1, "product_name": "Burger", "quantity": 2,
                        "unit_price_cents": 899, "line_total_cents": 1798 }],
            "history": [{ "status": "pending", "at": "2026-01-01T00:00:00Z" },
                        { "status": "rejected", "at": "2026-01-01T00:00:01Z", "note": "short" }],
            "rejection": { "shortages": [{ "ingredient_id": 1, "ingredient": "Beef",
                                           "required": 300, "available": 100 }] },
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:01Z",
            "a_field_of_a_newer_server": true
        });
        let decoded: Order = serde_json::from_value(order.clone()).unwrap();
        assert_eq!(decoded.id, id);
        assert_eq!(decoded.rejection.unwrap().shortages[0].available, 100);
        assert!(decoded.shipment.is_none());

        order.as_object_mut().unwrap().remove("rejection");
        let decoded: Order = serde_json::from_value(order).unwrap();
        assert!(decoded.rejection.is_none());
        assert_eq!(decoded.history[1].note.as_deref(), Some("short"));
    }
}
