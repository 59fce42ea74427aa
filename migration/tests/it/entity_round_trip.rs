//! Every entity inserts and reads back through the real schema, as the role of the service that
//! owns it: proof that `entities` and the migrations agree on names, types and nullability, and
//! that the unqualified entity names resolve in each service's `search_path`.

use chrono::{Duration, Utc};
use entities::prelude::*;
use entities::{
    inbox, ingredients, merchants, notifications, order_lines, order_status_history, orders,
    outbox, products, recipe_lines, shipments, stock_movements, users,
};
use migration::Service;
use migration::sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use migration::testing::TestDatabase;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn every_entity_round_trips_through_the_schema() {
    let test_db = TestDatabase::new().await;
    let order_db = test_db.connect(Service::Order).await;
    let stock_db = test_db.connect(Service::Stock).await;
    let delivery_db = test_db.connect(Service::Delivery).await;
    let notification_db = test_db.connect(Service::Notification).await;
    let db = &order_db;
    let now = Utc::now().fixed_offset();

    // Catalogue: columns with defaults (ids, created_at, currency) are left to the database.
    let merchant = merchants::ActiveModel {
        name: Set("Bistro".to_owned()),
        email: Set("chef@bistro.test".to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert merchant");
    assert_eq!(merchant.currency, "EUR");
    assert_eq!(
        Merchants::find_by_id(merchant.id)
            .one(db)
            .await
            .expect("select"),
        Some(merchant.clone())
    );

    let staff = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set("staff@bistro.test".to_owned()),
        password_hash: Set("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        role: Set("merchant".to_owned()),
        merchant_id: Set(Some(merchant.id)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert merchant user");
    assert_eq!(
        Users::find_by_id(staff.id).one(db).await.expect("select"),
        Some(staff)
    );

    let customer = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set("ann@example.test".to_owned()),
        password_hash: Set("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        role: Set("customer".to_owned()),
        merchant_id: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert customer");
    assert_eq!(
        Users::find_by_id(customer.id)
            .one(db)
            .await
            .expect("select"),
        Some(customer.clone())
    );

    let product = products::ActiveModel {
        merchant_id: Set(merchant.id),
        name: Set("Burger".to_owned()),
        price_cents: Set(1250),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert product");
    assert_eq!(
        Products::find_by_id(product.id)
            .one(db)
            .await
            .expect("select"),
        Some(product.clone())
    );

    // Stock
    let db = &stock_db;
    let ingredient = ingredients::ActiveModel {
        merchant_id: Set(merchant.id),
        name: Set("Beef".to_owned()),
        unit: Set("g".to_owned()),
        stock: Set(5000),
        reference_level: Set(5000),
        merchant_email: Set(merchant.email.clone()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert ingredient");
    assert!(!ingredient.low_stock_alerted, "alerts start armed");
    assert_eq!(
        Ingredients::find_by_id(ingredient.id)
            .one(db)
            .await
            .expect("select"),
        Some(ingredient.clone())
    );

    let db = &order_db;
    let recipe_line = recipe_lines::ActiveModel {
        product_id: Set(product.id),
        ingredient_id: Set(ingredient.id),
        amount: Set(150),
    }
    .insert(db)
    .await
    .expect("insert recipe line");
    assert_eq!(
        RecipeLines::find_by_id((product.id, ingredient.id))
            .one(db)
            .await
            .expect("select"),
        Some(recipe_line)
    );

    // Orders
    let order = orders::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(customer.id),
        merchant_id: Set(merchant.id),
        status: Set(orders::OrderStatus::Rejected),
        total_cents: Set(2500),
        currency: Set("EUR".to_owned()),
        idempotency_key: Set(Some("key-1".to_owned())),
        request_hash: Set(Some("sha256:abc".to_owned())),
        rejection: Set(Some(
            json!({"shortages": [{"ingredient_id": ingredient.id, "missing": 100}]}),
        )),
        correlation_id: Set(Some("req-1".to_owned())),
        shipment_id: Set(Some(Uuid::new_v4())),
        dispatched_at: Set(Some(now)),
        delivered_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert order");
    assert_eq!(
        Orders::find_by_id(order.id).one(db).await.expect("select"),
        Some(order.clone())
    );

    let line = order_lines::ActiveModel {
        order_id: Set(order.id),
        product_id: Set(product.id),
        product_name: Set(product.name.clone()),
        quantity: Set(2),
        unit_price_cents: Set(1250),
        line_total_cents: Set(2500),
    }
    .insert(db)
    .await
    .expect("insert order line");
    assert_eq!(
        OrderLines::find_by_id((order.id, product.id))
            .one(db)
            .await
            .expect("select"),
        Some(line)
    );

    let history = order_status_history::ActiveModel {
        order_id: Set(order.id),
        status: Set(orders::OrderStatus::Pending),
        note: Set(Some("created".to_owned())),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert status history");
    assert_eq!(
        OrderStatusHistory::find_by_id(history.id)
            .one(db)
            .await
            .expect("select"),
        Some(history)
    );

    let db = &stock_db;
    let movement = stock_movements::ActiveModel {
        order_id: Set(Some(order.id)),
        ingredient_id: Set(ingredient.id),
        delta: Set(-300),
        reason: Set(stock_movements::Reason::Reserve),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert stock movement");
    assert_eq!(
        StockMovements::find_by_id(movement.id)
            .one(db)
            .await
            .expect("select"),
        Some(movement)
    );

    // Delivery
    let db = &delivery_db;
    let shipment = shipments::ActiveModel {
        id: Set(Uuid::new_v4()),
        order_id: Set(order.id),
        status: Set(shipments::ShipmentStatus::Dispatched),
        next_step_at: Set(Some(now + Duration::seconds(30))),
        dispatched_at: Set(Some(now)),
        delivered_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert shipment");
    assert_eq!(
        Shipments::find_by_id(shipment.id)
            .one(db)
            .await
            .expect("select"),
        Some(shipment)
    );

    // Notification
    let db = &notification_db;
    let notification = notifications::ActiveModel {
        event_id: Set(Uuid::new_v4()),
        ingredient_id: Set(ingredient.id),
        ingredient_name: Set(ingredient.name.clone()),
        recipient: Set(merchant.email.clone()),
        status: Set(notifications::NotificationStatus::Sent),
        attempts: Set(1),
        last_error: Set(None),
        sent_at: Set(Some(now)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert notification");
    assert_eq!(
        Notifications::find_by_id(notification.id)
            .one(db)
            .await
            .expect("select"),
        Some(notification)
    );

    // Outbox and inbox: each service has its own.
    let db = &order_db;
    let message = outbox::ActiveModel {
        id: Set(Uuid::new_v4()),
        subject: Set("orders.created".to_owned()),
        payload: Set(json!({"order_id": order.id})),
        headers: Set(json!({"Larder-Correlation-Id": "req-1"})),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert outbox message");
    assert_eq!(message.published_at, None);
    assert_eq!(
        Outbox::find_by_id(message.id)
            .one(db)
            .await
            .expect("select"),
        Some(message)
    );

    let db = &stock_db;
    let processed = inbox::ActiveModel {
        consumer: Set("stock-orders-created".to_owned()),
        event_id: Set(Uuid::new_v4()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert inbox row");
    assert_eq!(
        Inbox::find_by_id((processed.consumer.clone(), processed.event_id))
            .one(db)
            .await
            .expect("select"),
        Some(processed)
    );
}
