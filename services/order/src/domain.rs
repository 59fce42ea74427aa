//! The order's rules as plain types and functions: validation of a new order, pricing from the
//! catalogue, and the status machine (SPEC §3 validation, §5 rule 4). No database, no HTTP.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many lines per order.
pub const MAX_LINES: usize = 100;
/// Quantity of one product per order, inclusive.
pub const MAX_QUANTITY: i64 = 10_000;

/// Where an order is: the stored vocabulary (an active enum of the `orders` entity). The moves
/// between statuses are the functions below.
pub use entities::orders::OrderStatus;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("an order cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: OrderStatus,
    pub to: OrderStatus,
}

/// What to do with an event that wants to move an order to a status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Move the order.
    Apply,
    /// A late or duplicate event: acknowledge it and change nothing.
    Ignore,
    /// The event arrived before the one it follows (dispatched before confirmed): retry later.
    NotYet,
}

/// SPEC §5 rule 4: pending -> confirmed | rejected | cancelled; confirmed -> dispatched |
/// cancelled; dispatched -> delivered. Nothing moves back. The statuses an order can be in for a
/// move to `to` to be legal.
pub fn predecessors(to: OrderStatus) -> &'static [OrderStatus] {
    use OrderStatus::*;
    match to {
        Pending => &[],
        Confirmed | Rejected => &[Pending],
        Dispatched => &[Confirmed],
        Delivered => &[Dispatched],
        Cancelled => &[Pending, Confirmed],
    }
}

pub fn can_become(from: OrderStatus, to: OrderStatus) -> bool {
    predecessors(to).contains(&from)
}

pub fn advance(from: OrderStatus, to: OrderStatus) -> Result<OrderStatus, IllegalTransition> {
    if can_become(from, to) {
        Ok(to)
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// No event moves an order out of a final status.
pub fn is_final(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Rejected | OrderStatus::Delivered | OrderStatus::Cancelled
    )
}

/// How far along the happy path the order is; the branches (rejected, cancelled) are final.
fn rank(status: OrderStatus) -> u8 {
    use OrderStatus::*;
    match status {
        Pending => 0,
        Confirmed => 1,
        Dispatched => 2,
        Delivered => 3,
        Rejected | Cancelled => 4,
    }
}

/// Whether an event moving an order in `current` to `to` applies now, is stale, or came too
/// early.
pub fn settle(current: OrderStatus, to: OrderStatus) -> Settle {
    use OrderStatus::*;
    if can_become(current, to) {
        Settle::Apply
    } else if !is_final(current)
        && rank(current) < rank(to)
        && matches!(to, Confirmed | Dispatched | Delivered)
    {
        Settle::NotYet
    } else {
        Settle::Ignore
    }
}

/// How a cancel request for an order in a given status goes (SPEC §5 rule 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancellation {
    /// Cancelled already: nothing to do, the answer is the same as the first time.
    AlreadyCancelled,
    /// A shipment may be on its way, even for an order this service still sees pending (stock
    /// may have confirmed it, and delivery dispatched it, before the confirmation arrives here):
    /// delivery decides. Only when it drops the undispatched shipment (or remembers that the
    /// order has none, so none is ever made) is the order cancelled; stock then releases
    /// whatever it reserved, or never reserves.
    AskDelivery,
    /// Too late (dispatched, delivered) or nothing to cancel (rejected).
    Refused,
}

/// What a cancel request does to an order in `current`. Which statuses may be cancelled is the
/// transition rule's to say ([`can_become`]), not this function's.
pub fn cancellation(current: OrderStatus) -> Cancellation {
    if current == OrderStatus::Cancelled {
        Cancellation::AlreadyCancelled
    } else if can_become(current, OrderStatus::Cancelled) {
        Cancellation::AskDelivery
    } else {
        Cancellation::Refused
    }
}

/// Whether stock has told this service that it reserved the order's ingredients, which the
/// order's `orders.cancelled` passes on (`release_stock`). A pending order may hold a
/// reservation this service has not heard of yet; stock releases whatever it finds anyway.
pub fn reservation_confirmed(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Confirmed | OrderStatus::Dispatched | OrderStatus::Delivered
    )
}

/// A problem with one field of a request, named the way the client wrote it
/// (`products[2].quantity`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A line as the client sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestedLine {
    pub product_id: i64,
    pub quantity: i64,
}

/// A valid order request: 1 to 100 distinct products, each quantity in 1..=10 000, duplicate
/// product lines merged. Once you hold one, it is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidOrder {
    /// product id -> quantity, sorted by product id.
    lines: BTreeMap<i64, i64>,
}

impl ValidOrder {
    pub fn parse(lines: &[RequestedLine]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if lines.is_empty() {
            errors.push(FieldError::new(
                "products",
                "must contain at least one product",
            ));
        }
        if lines.len() > MAX_LINES {
            errors.push(FieldError::new(
                "products",
                format!("at most {MAX_LINES} lines per order, got {}", lines.len()),
            ));
        }
        let mut merged: BTreeMap<i64, i64> = BTreeMap::new();
        for (i, line) in lines.iter().enumerate() {
            if line.product_id <= 0 {
                errors.push(FieldError::new(
                    format!("products[{i}].product_id"),
                    "must be a positive product id",
                ));
            }
            if !(1..=MAX_QUANTITY).contains(&line.quantity) {
                errors.push(FieldError::new(
                    format!("products[{i}].quantity"),
                    format!(
                        "must be between 1 and {MAX_QUANTITY}, got {}",
                        line.quantity
                    ),
                ));
                continue;
            }
            *merged.entry(line.product_id).or_default() += line.quantity;
        }
        for (product_id, quantity) in &merged {
            if *quantity > MAX_QUANTITY {
                errors.push(FieldError::new(
                    "products",
                    format!(
                        "product {product_id} appears in several lines adding up to {quantity}, above {MAX_QUANTITY}"
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self { lines: merged })
        } else {
            Err(errors)
        }
    }

    pub fn product_ids(&self) -> Vec<i64> {
        self.lines.keys().copied().collect()
    }

    pub fn lines(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.lines.iter().map(|(id, quantity)| (*id, *quantity))
    }

    /// A canonical text of the request, stored with an idempotency key: the same key with
    /// another fingerprint is another body (SPEC §3: 422).
    pub fn fingerprint(&self) -> String {
        self.lines
            .iter()
            .map(|(id, quantity)| format!("{id}x{quantity}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What pricing needs to know of a product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogueProduct {
    pub id: i64,
    pub merchant_id: i64,
    pub name: String,
    pub price_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: i64,
    pub product_name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    pub line_total_cents: i64,
}

/// An order priced from the catalogue, never from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedOrder {
    pub merchant_id: i64,
    pub lines: Vec<PricedLine>,
    pub total_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<i64>),
    #[error("an order goes to one merchant; these products belong to merchants {0:?}")]
    MixedMerchants(Vec<i64>),
}

/// Prices every line with the catalogue's price. All products must exist and belong to one
/// merchant.
pub fn price(
    order: &ValidOrder,
    catalogue: &HashMap<i64, CatalogueProduct>,
) -> Result<PricedOrder, PricingError> {
    let unknown: Vec<i64> = order
        .product_ids()
        .into_iter()
        .filter(|id| !catalogue.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        return Err(PricingError::UnknownProducts(unknown));
    }
    let merchants: BTreeSet<i64> = order
        .product_ids()
        .iter()
        .map(|id| catalogue[id].merchant_id)
        .collect();
    if merchants.len() > 1 {
        return Err(PricingError::MixedMerchants(
            merchants.into_iter().collect(),
        ));
    }
    let lines: Vec<PricedLine> = order
        .lines()
        .map(|(product_id, quantity)| {
            let product = &catalogue[&product_id];
            PricedLine {
                product_id,
                product_name: product.name.clone(),
                quantity,
                unit_price_cents: product.price_cents,
                // 10 000 x a price in cents stays far inside i64.
                line_total_cents: product.price_cents * quantity,
            }
        })
        .collect();
    Ok(PricedOrder {
        merchant_id: *merchants.first().expect("a valid order has a product"),
        total_cents: lines.iter().map(|l| l.line_total_cents).sum(),
        lines,
    })
}

/// The catalogue `POST /order/seed` creates (SPEC §3).
/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// A merchant's display name, 1 to this many characters.
pub const MAX_MERCHANT_NAME_CHARS: usize = 100;

/// Whether `email` has the shape of an address: something, `@`, a domain with a dot; no
/// whitespace or control characters; at most [`MAX_EMAIL_CHARS`]. Deliverability is the mail
/// server's business.
pub fn is_email_address(email: &str) -> bool {
    email.chars().count() <= MAX_EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// A merchant as sign-up creates it (README "Merchant sign-up"): a name of its own, the address
/// its low-stock alerts go to, and the ISO 4217 currency of its prices. Once you hold one, it is
/// valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMerchant {
    pub name: String,
    pub alert_email: String,
    pub currency: String,
}

impl NewMerchant {
    /// Trims the name and the address; names every field that is wrong, as the client wrote it.
    pub fn parse(name: &str, alert_email: &str, currency: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = name.trim();
        let chars = name.chars().count();
        if name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        } else if !(1..=MAX_MERCHANT_NAME_CHARS).contains(&chars) {
            errors.push(FieldError::new(
                "name",
                format!("must be 1 to {MAX_MERCHANT_NAME_CHARS} characters"),
            ));
        }
        let alert_email = alert_email.trim();
        if !is_email_address(alert_email) {
            errors.push(FieldError::new(
                "alert_email",
                "must be an email address like alerts@example.com",
            ));
        }
        // The database's own check (`^[A-Z]{3}$`), said first as a 422.
        if !(currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase())) {
            errors.push(FieldError::new(
                "currency",
                "must be an ISO 4217 code: three capital letters such as EUR",
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                name: name.to_owned(),
                alert_email: alert_email.to_owned(),
                currency: currency.to_owned(),
            })
        } else {
            Err(errors)
        }
    }
}

pub mod burger_catalogue {
    /// (name, unit, level in base units)
    pub const INGREDIENTS: [(&str, &str, i64); 3] = [
        ("Beef", "g", 20_000),
        ("Cheese", "g", 5_000),
        ("Onion", "g", 1_000),
    ];
    pub const PRODUCT: &str = "Burger";
    pub const PRODUCT_PRICE_CENTS: i64 = 899;
    /// (ingredient, amount per burger in base units)
    pub const RECIPE: [(&str, i64); 3] = [("Beef", 150), ("Cheese", 30), ("Onion", 20)];
}

#[cfg(test)]
mod tests {
    use sea_orm::Iterable as _;

    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn delivery_decides_every_cancel_that_could_still_stop_a_shipment() {
        use Cancellation::*;
        let cases = [
            (OrderStatus::Pending, AskDelivery),
            (OrderStatus::Confirmed, AskDelivery),
            (OrderStatus::Cancelled, AlreadyCancelled),
            (OrderStatus::Rejected, Refused),
            (OrderStatus::Dispatched, Refused),
            (OrderStatus::Delivered, Refused),
        ];
        for (status, expected) in cases {
            assert_eq!(cancellation(status), expected, "{status}");
        }
    }

    #[test]
    fn a_cancel_is_asked_for_exactly_the_statuses_that_may_become_cancelled() {
        for status in OrderStatus::iter() {
            assert_eq!(
                cancellation(status) == Cancellation::AskDelivery,
                can_become(status, OrderStatus::Cancelled),
                "{status}"
            );
        }
    }

    #[test]
    fn stock_has_confirmed_a_reservation_for_a_confirmed_or_later_order() {
        let cases = [
            (Pending, false),
            (Confirmed, true),
            (Rejected, false),
            (Dispatched, true),
            (Delivered, true),
            (Cancelled, false),
        ];
        for (status, expected) in cases {
            assert_eq!(reservation_confirmed(status), expected, "{status}");
        }
    }

    fn line(product_id: i64, quantity: i64) -> RequestedLine {
        RequestedLine {
            product_id,
            quantity,
        }
    }

    #[test]
    fn status_moves_only_forward() {
        let legal = [
            (Pending, Confirmed),
            (Pending, Rejected),
            (Pending, Cancelled),
            (Confirmed, Dispatched),
            (Confirmed, Cancelled),
            (Dispatched, Delivered),
        ];
        for from in OrderStatus::iter() {
            for to in OrderStatus::iter() {
                assert_eq!(
                    advance(from, to).is_ok(),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn late_duplicate_and_early_events_are_told_apart() {
        let cases = [
            (Pending, Confirmed, Settle::Apply),
            (Confirmed, Confirmed, Settle::Ignore), // duplicate
            (Dispatched, Confirmed, Settle::Ignore), // late
            (Cancelled, Confirmed, Settle::Ignore), // cancelled first
            (Pending, Dispatched, Settle::NotYet),  // dispatched overtook confirmed
            (Pending, Delivered, Settle::NotYet),
            (Confirmed, Delivered, Settle::NotYet),
            (Rejected, Dispatched, Settle::Ignore),
            (Cancelled, Dispatched, Settle::Ignore),
            (Delivered, Dispatched, Settle::Ignore),
            (Dispatched, Cancelled, Settle::Ignore),
        ];
        for (from, to, expected) in cases {
            assert_eq!(settle(from, to), expected, "{from} -> {to}");
        }
    }

    #[test]
    fn invalid_orders_name_every_bad_field() {
        let cases: Vec<(Vec<RequestedLine>, Vec<&str>)> = vec![
            (vec![], vec!["products"]),
            (vec![line(1, 0)], vec!["products[0].quantity"]),
            (vec![line(1, 10_001)], vec!["products[0].quantity"]),
            (vec![line(1, -5)], vec!["products[0].quantity"]),
            (
                vec![line(0, 1), line(2, 0)],
                vec!["products[0].product_id", "products[1].quantity"],
            ),
            ((1..=101).map(|i| line(i, 1)).collect(), vec!["products"]),
            (vec![line(1, 6_000), line(1, 5_000)], vec!["products"]),
        ];
        for (lines, fields) in cases {
            let errors = ValidOrder::parse(&lines).expect_err("should be invalid");
            let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(named, fields, "for {lines:?}");
        }
    }

    #[test]
    fn duplicate_lines_are_merged_and_the_fingerprint_ignores_order() {
        let a = ValidOrder::parse(&[line(2, 1), line(1, 2), line(2, 3)]).unwrap();
        let b = ValidOrder::parse(&[line(1, 2), line(2, 4)]).unwrap();
        assert_eq!(a.lines().collect::<Vec<_>>(), vec![(1, 2), (2, 4)]);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), "1x2,2x4");
        assert!(
            ValidOrder::parse(&[line(1, 10_000)]).is_ok(),
            "10 000 is allowed"
        );
    }

    fn catalogue() -> HashMap<i64, CatalogueProduct> {
        [(1, 7, 899), (2, 7, 250), (3, 8, 100)]
            .into_iter()
            .map(|(id, merchant_id, price_cents)| {
                (
                    id,
                    CatalogueProduct {
                        id,
                        merchant_id,
                        name: format!("p{id}"),
                        price_cents,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn prices_come_from_the_catalogue() {
        let order = ValidOrder::parse(&[line(1, 2), line(2, 3)]).unwrap();
        let priced = price(&order, &catalogue()).unwrap();
        assert_eq!(priced.merchant_id, 7);
        assert_eq!(priced.total_cents, 2 * 899 + 3 * 250);
        assert_eq!(priced.lines[0].line_total_cents, 1798);
    }

    #[test]
    fn unknown_products_and_mixed_merchants_are_refused() {
        let unknown = ValidOrder::parse(&[line(1, 1), line(42, 1), line(43, 1)]).unwrap();
        assert_eq!(
            price(&unknown, &catalogue()),
            Err(PricingError::UnknownProducts(vec![42, 43]))
        );
        let mixed = ValidOrder::parse(&[line(1, 1), line(3, 1)]).unwrap();
        assert_eq!(
            price(&mixed, &catalogue()),
            Err(PricingError::MixedMerchants(vec![7, 8]))
        );
    }

    #[test]
    fn a_merchant_sign_up_names_each_bad_field() {
        let ok = NewMerchant::parse("  Corner Deli ", " alerts@deli.example ", "GBP").unwrap();
        assert_eq!(
            (
                ok.name.as_str(),
                ok.alert_email.as_str(),
                ok.currency.as_str()
            ),
            ("Corner Deli", "alerts@deli.example", "GBP")
        );
        let cases = [
            (("", "a@b.example", "EUR"), "name"),
            (
                (
                    &*"x".repeat(MAX_MERCHANT_NAME_CHARS + 1),
                    "a@b.example",
                    "EUR",
                ),
                "name",
            ),
            (("Deli\u{0}", "a@b.example", "EUR"), "name"),
            (("Deli", "not-an-address", "EUR"), "alert_email"),
            (("Deli", "a@b.example", "eur"), "currency"),
            (("Deli", "a@b.example", "EURO"), "currency"),
        ];
        for ((name, email, currency), field) in cases {
            let errors = NewMerchant::parse(name, email, currency).unwrap_err();
            assert_eq!(
                errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
                vec![field],
                "{name:?} {email:?} {currency:?}"
            );
        }
    }

    #[test]
    fn email_addresses_need_a_local_part_and_a_dotted_domain() {
        for good in ["a@b.example", "first.last+tag@mail.example.com"] {
            assert!(is_email_address(good), "{good}");
        }
        for bad in [
            "",
            "a@b",
            "@b.example",
            "a b@c.example",
            "a@b@c.example",
            "a@b.example\n",
        ] {
            assert!(!is_email_address(bad), "{bad:?}");
        }
    }
}
