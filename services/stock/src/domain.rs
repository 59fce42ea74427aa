//! The stock rules, as plain functions over plain values: what an order needs, whether it can
//! have it, when a low-stock alert fires and when a restock re-arms it (SPEC §5 rules 2 and 3).
//!
//! Amounts are `i64` in the ingredient's base unit (g, ml, pcs) and every sum or product is
//! checked: an overflow is a rejection, never a panic or a wrap-around. What a merchant command
//! brings in (a restock amount, a seed's unit and level) becomes an [`Amount`], a [`Unit`], a
//! [`Seed`] once, where it enters the service; past that, it is valid by type.
//!
//! A batch of events is planned here too, in memory, from what the store loaded:
//! [`ReservationBatch`] decides which orders are confirmed or rejected against the levels the
//! orders before them left, and which alerts fire; [`ReleaseBatch`] what each cancelled order
//! gives back. The store locks, loads, asks, and writes the plan.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use larder_contract::commands::IngredientSeed;
use larder_contract::events::{IngredientAmount, OrderCreated, OrderedLine, Shortage};
use uuid::Uuid;

/// One ingredient's stock as the rules see it (a row of `ingredients`, locked for the transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    /// The ingredient's name, for shortages.
    pub name: String,
    /// Never negative.
    pub stock: i64,
    /// 100 %: the level at the last seed or restock; > 0.
    pub reference_level: i64,
    /// True once `stock.low` was emitted, until a restock re-arms it.
    pub low_stock_alerted: bool,
}

/// What an order takes, per ingredient: ascending ingredient id, every amount > 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reservation {
    pub amounts: Vec<IngredientAmount>,
}

/// Every ingredient the order could not have, ascending ingredient id. Data, not an error to log:
/// it becomes the `orders.rejected` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortages(pub Vec<Shortage>);

/// An ingredient that just fell below half its reference level: the data of one `stock.low`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowStock {
    pub ingredient_id: i64,
    pub level: i64,
    pub reference_level: i64,
    pub percent: i64,
}

/// Why an `orders.created` can never be processed, whatever the stock: the consumer dead-letters it
/// (the order service validates orders, so this is a bug or a forged event, not a customer error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrder {
    #[error("the order has no lines")]
    NoLines,
    #[error("product {product_id} has quantity {quantity}; it must be positive")]
    NonPositiveQuantity { product_id: i64, quantity: i64 },
    #[error(
        "product {product_id} needs {amount} of ingredient {ingredient_id}; amounts cannot be negative"
    )]
    NegativeAmount {
        product_id: i64,
        ingredient_id: i64,
        amount: i64,
    },
}

/// Checks what the stock rules take for granted: at least one line, positive quantities, no
/// negative recipe amounts.
pub fn validate_order(order: &OrderCreated) -> Result<(), InvalidOrder> {
    if order.lines.is_empty() {
        return Err(InvalidOrder::NoLines);
    }
    for line in &order.lines {
        if line.quantity <= 0 {
            return Err(InvalidOrder::NonPositiveQuantity {
                product_id: line.product_id,
                quantity: line.quantity,
            });
        }
        if let Some(negative) = line.recipe.iter().find(|r| r.amount < 0) {
            return Err(InvalidOrder::NegativeAmount {
                product_id: line.product_id,
                ingredient_id: negative.ingredient_id,
                amount: negative.amount,
            });
        }
    }
    Ok(())
}

/// What the order needs per ingredient: recipe amount x quantity, summed over the lines
/// (duplicate product lines included). `None` for an ingredient whose total overflows `i64`.
pub fn required_amounts(lines: &[OrderedLine]) -> BTreeMap<i64, Option<i64>> {
    let mut required: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for line in lines {
        for recipe in &line.recipe {
            let total = required.entry(recipe.ingredient_id).or_insert(Some(0));
            *total = total
                .and_then(|sum| recipe.amount.checked_mul(line.quantity).map(|a| (sum, a)))
                .and_then(|(sum, amount)| sum.checked_add(amount));
        }
    }
    required
}

/// SPEC §5 rule 2: all or nothing. The order gets every ingredient it needs, or a shortage for
/// each one it cannot have (with what it needs and what there is). `levels` holds the order's
/// merchant's ingredients only: an id missing from it is short with 0 available. A total that
/// overflows is short too, its `required` saturated at `i64::MAX`.
pub fn plan_reservation(
    lines: &[OrderedLine],
    levels: &HashMap<i64, Level>,
) -> Result<Reservation, Shortages> {
    let mut amounts = Vec::new();
    let mut shortages = Vec::new();
    for (ingredient_id, required) in required_amounts(lines) {
        let level = levels.get(&ingredient_id);
        let available = level.map_or(0, |l| l.stock);
        match required {
            // A zero amount takes nothing, whatever the ingredient.
            Some(0) => {}
            Some(required) if level.is_some() && required <= available => {
                amounts.push(IngredientAmount {
                    ingredient_id,
                    amount: required,
                });
            }
            _ => shortages.push(Shortage {
                ingredient_id,
                ingredient: level.map_or_else(
                    || format!("unknown ingredient {ingredient_id}"),
                    |l| l.name.clone(),
                ),
                required: required.unwrap_or(i64::MAX),
                available,
            }),
        }
    }
    if shortages.is_empty() {
        Ok(Reservation { amounts })
    } else {
        Err(Shortages(shortages))
    }
}

/// Takes a planned reservation out of `levels` and returns the low-stock alerts it fires,
/// marking those ingredients alerted. The plan was made against these same levels, so every
/// amount is there; were one not, the level would go negative and the database's
/// `ingredients_stock_non_negative` check would refuse the whole transaction.
pub fn apply_reservation(
    levels: &mut HashMap<i64, Level>,
    reservation: &Reservation,
) -> Vec<LowStock> {
    let mut alerts = Vec::new();
    for IngredientAmount {
        ingredient_id,
        amount,
    } in &reservation.amounts
    {
        let Some(level) = levels.get_mut(ingredient_id) else {
            continue;
        };
        let before = level.stock;
        let after = before.saturating_sub(*amount);
        level.stock = after;
        if fires_low_stock(
            level.low_stock_alerted,
            before,
            after,
            level.reference_level,
        ) {
            level.low_stock_alerted = true;
            alerts.push(LowStock {
                ingredient_id: *ingredient_id,
                level: after,
                reference_level: level.reference_level,
                percent: percent(after, level.reference_level),
            });
        }
    }
    alerts
}

/// SPEC §5 rule 3: the level crosses from at or above 50 % of the reference to below it.
/// Exactly 50 % is not below.
pub fn crosses_low_stock(before: i64, after: i64, reference: i64) -> bool {
    at_or_above_half(before, reference) && !at_or_above_half(after, reference)
}

/// SPEC §5 rule 3, with the alert state: a crossing fires unless the ingredient has already
/// alerted and no restock has re-armed it since.
pub fn fires_low_stock(already_alerted: bool, before: i64, after: i64, reference: i64) -> bool {
    !already_alerted && crosses_low_stock(before, after, reference)
}

/// SPEC §5 rule 3's threshold: the level is at or above 50 % of the reference (exactly half
/// counts). In `i128`, so no level overflows the doubling. The one place that says "half":
/// the crossing, the re-arming and [`percent`] below 50 all agree with it.
pub fn at_or_above_half(level: i64, reference: i64) -> bool {
    i128::from(level) * 2 >= i128::from(reference)
}

/// Whole percent of the reference level, rounded down (`floor(level * 100 / reference)`); 0 for
/// a reference that is not positive. The one computation of the percent: the level lists and
/// every `stock.low` carry this value, and no other service recomputes it.
pub fn percent(level: i64, reference: i64) -> i64 {
    if reference <= 0 {
        return 0;
    }
    let percent = (i128::from(level) * 100).div_euclid(i128::from(reference));
    i64::try_from(percent).unwrap_or(if percent < 0 { i64::MIN } else { i64::MAX })
}

impl Level {
    /// SPEC §3 restock: adds `amount`; raises the reference to the new level when above it;
    /// re-arms the alert iff the new level is at or above 50 % of the (possibly raised) reference.
    /// Below that, the alert state stays as it was: a restock that leaves the level low does not
    /// make room for a second alert.
    pub fn restocked(&self, amount: Amount) -> Result<Level, LevelOverflow> {
        let stock = self.stock.checked_add(amount.get()).ok_or(LevelOverflow)?;
        let reference_level = self.reference_level.max(stock);
        Ok(Level {
            name: self.name.clone(),
            stock,
            reference_level,
            low_stock_alerted: self.low_stock_alerted && !at_or_above_half(stock, reference_level),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// What merchant commands bring in: units, amounts, seeds

/// The base unit an ingredient is counted in; every amount of it is a whole number of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Grams,
    Millilitres,
    Pieces,
}

/// A unit name that is not `g`, `ml` or `pcs`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the unit must be g, ml or pcs, not {0:?}")]
pub struct UnknownUnit(pub String);

impl Unit {
    pub const ALL: [Unit; 3] = [Self::Grams, Self::Millilitres, Self::Pieces];

    /// The name stored in `ingredients.unit` and carried by the events and commands.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Grams => "g",
            Self::Millilitres => "ml",
            Self::Pieces => "pcs",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Unit {
    type Err = UnknownUnit;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|unit| unit.as_str() == s)
            .ok_or_else(|| UnknownUnit(s.to_owned()))
    }
}

/// A positive amount of an ingredient, in its base unit: what a restock adds, what a seed sets.
/// Once you hold one, it is positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

/// An amount that is zero or negative. The message is the one a client sees for the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must be a positive amount in the ingredient's unit")]
pub struct NotPositive(pub i64);

impl Amount {
    pub fn parse(value: i64) -> Result<Self, NotPositive> {
        if value > 0 {
            Ok(Self(value))
        } else {
            Err(NotPositive(value))
        }
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

/// A level that would not fit in an `i64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the new level would overflow")]
pub struct LevelOverflow;

/// Why a restock cannot be added, whichever ingredient it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRestock {
    #[error(transparent)]
    NotPositive(#[from] NotPositive),
    #[error(transparent)]
    Overflow(#[from] LevelOverflow),
}

/// One ingredient to seed, checked: a known unit and a positive level.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub name: String,
    pub unit: Unit,
    /// The level to set, which becomes the reference level (100 %).
    pub level: Amount,
}

/// Why an ingredient cannot be seeded as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSeed {
    #[error("the seed level of {name} must be positive, not {level}")]
    NotPositive { name: String, level: i64 },
    #[error("the unit of {name} must be g, ml or pcs, not {unit:?}")]
    UnknownUnit { name: String, unit: String },
}

impl Seed {
    pub fn parse(seed: &IngredientSeed) -> Result<Self, InvalidSeed> {
        let level =
            Amount::parse(seed.level).map_err(|NotPositive(level)| InvalidSeed::NotPositive {
                name: seed.name.clone(),
                level,
            })?;
        let unit = seed
            .unit
            .parse()
            .map_err(|UnknownUnit(unit)| InvalidSeed::UnknownUnit {
                name: seed.name.clone(),
                unit,
            })?;
        Ok(Self {
            name: seed.name.clone(),
            unit,
            level,
        })
    }

    /// Every seed checked, or the first that is not valid.
    pub fn parse_all(seeds: &[IngredientSeed]) -> Result<Vec<Self>, InvalidSeed> {
        seeds.iter().map(Self::parse).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Movements

/// Why a stock movement happened: an active enum of the `stock_movements` entity.
pub use entities::stock_movements::Reason;

/// One entry of the audit trail: the movements of an ingredient sum to its stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    /// The order that caused it; none for a seed or a restock.
    pub order_id: Option<Uuid>,
    pub ingredient_id: i64,
    /// Negative for a reservation, positive for everything else.
    pub delta: i64,
    pub reason: Reason,
}

// ---------------------------------------------------------------------------------------------
// Batches

/// SPEC §5 rule 1, within a batch: the entries to handle are those whose event the inbox took as
/// new, and of those only the first for each order. Every other entry is a duplicate: a
/// redelivery, the same event twice in the batch, or another event for an order the batch
/// already handles. `entries` are (event id, order id) in stream order; returns the indices of
/// the entries to handle, ascending.
pub fn first_new_per_order(
    entries: impl IntoIterator<Item = (Uuid, Uuid)>,
    new_events: &HashSet<Uuid>,
) -> Vec<usize> {
    let mut unclaimed = new_events.clone();
    let mut seen_orders = HashSet::new();
    entries
        .into_iter()
        .enumerate()
        .filter(|(_, (event_id, order_id))| {
            unclaimed.remove(event_id) && seen_orders.insert(*order_id)
        })
        .map(|(i, _)| i)
        .collect()
}

/// An ingredient's level and whose it is: an order only ever sees its own merchant's stock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantLevel {
    pub merchant_id: i64,
    pub ingredient_id: i64,
    pub level: Level,
}

/// What becomes of one `orders.created` of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservationOutcome {
    /// Every ingredient reserved; the alerts are the `stock.low`s this order fires.
    Confirmed {
        reservation: Reservation,
        alerts: Vec<LowStock>,
    },
    /// Something was short: nothing reserved.
    Rejected(Shortages),
    /// Handled before (this event, or another for the same order): nothing to do.
    Duplicate,
    /// Cancelled before stock saw it: nothing reserved, nothing emitted.
    Cancelled,
}

/// The decisions on a batch of `orders.created`, for the store to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservationPlan {
    /// One per entry of the batch, in batch order.
    pub outcomes: Vec<ReservationOutcome>,
    /// The new level and alert state of every ingredient a confirmed order took from.
    pub levels: BTreeMap<i64, Level>,
}

/// A batch of `orders.created` on its way to a [`ReservationPlan`]. The store learns the facts
/// in the order it may lock them, and tells the batch each in turn:
///
/// 1. [`ReservationBatch::new`]: which events were not decided before (the others drop out);
/// 2. [`ReservationBatch::skip`]: which of the remaining orders were cancelled before, or have
///    reserved already;
/// 3. [`ReservationBatch::plan`]: the levels of [`ReservationBatch::ingredient_ids`], locked.
#[derive(Clone, Debug)]
pub struct ReservationBatch<'a> {
    orders: Vec<&'a OrderCreated>,
    /// `None` while the order is still to be planned.
    decided: Vec<Option<ReservationOutcome>>,
}

impl<'a> ReservationBatch<'a> {
    /// `orders` with their event ids, in stream order; `new_events` the ids the inbox does not
    /// hold.
    pub fn new(
        orders: impl IntoIterator<Item = (Uuid, &'a OrderCreated)>,
        new_events: &HashSet<Uuid>,
    ) -> Self {
        let (event_ids, orders): (Vec<Uuid>, Vec<&OrderCreated>) = orders.into_iter().unzip();
        let mut decided = vec![Some(ReservationOutcome::Duplicate); orders.len()];
        let entries = event_ids.into_iter().zip(orders.iter().map(|o| o.order_id));
        for i in first_new_per_order(entries, new_events) {
            decided[i] = None;
        }
        Self { orders, decided }
    }

    /// The orders still to plan, ascending.
    pub fn open_orders(&self) -> BTreeSet<Uuid> {
        self.open().map(|(_, order)| order.order_id).collect()
    }

    /// Whether any order is still to plan.
    pub fn has_open(&self) -> bool {
        self.open().next().is_some()
    }

    /// Settles the orders cancelled before stock saw them (nothing reserved, nothing emitted)
    /// and those another event has reserved already (a duplicate: reserving again would only
    /// trip the unique index).
    pub fn skip(&mut self, cancelled: &HashSet<Uuid>, already_reserved: &HashSet<Uuid>) {
        for (decided, order) in self.decided.iter_mut().zip(&self.orders) {
            if decided.is_some() {
                continue;
            }
            if cancelled.contains(&order.order_id) {
                *decided = Some(ReservationOutcome::Cancelled);
            } else if already_reserved.contains(&order.order_id) {
                *decided = Some(ReservationOutcome::Duplicate);
            }
        }
    }

    /// Every ingredient the open orders' recipes name, ascending: the rows to lock.
    pub fn ingredient_ids(&self) -> BTreeSet<i64> {
        self.open()
            .flat_map(|(_, order)| &order.lines)
            .flat_map(|line| &line.recipe)
            .map(|r| r.ingredient_id)
            .collect()
    }

    /// SPEC §5 rules 2 and 3: evaluates the open orders in batch order, each against the levels
    /// the orders before it left: all or nothing per order, one `stock.low` per crossing (the
    /// alerted flag it sets stops a second one, in this batch or a later one).
    pub fn plan(self, levels: impl IntoIterator<Item = MerchantLevel>) -> ReservationPlan {
        let mut by_merchant: HashMap<i64, HashMap<i64, Level>> = HashMap::new();
        for MerchantLevel {
            merchant_id,
            ingredient_id,
            level,
        } in levels
        {
            by_merchant
                .entry(merchant_id)
                .or_default()
                .insert(ingredient_id, level);
        }
        let mut changed: BTreeMap<i64, i64> = BTreeMap::new();
        let outcomes = self
            .decided
            .into_iter()
            .zip(&self.orders)
            .map(|(decided, order)| {
                decided.unwrap_or_else(|| {
                    let levels = by_merchant.entry(order.merchant_id).or_default();
                    match plan_reservation(&order.lines, levels) {
                        Ok(reservation) => {
                            let alerts = apply_reservation(levels, &reservation);
                            for taken in &reservation.amounts {
                                changed.insert(taken.ingredient_id, order.merchant_id);
                            }
                            ReservationOutcome::Confirmed {
                                reservation,
                                alerts,
                            }
                        }
                        Err(shortages) => ReservationOutcome::Rejected(shortages),
                    }
                })
            })
            .collect();
        let levels = changed
            .into_iter()
            .filter_map(|(ingredient_id, merchant_id)| {
                let level = by_merchant.get(&merchant_id)?.get(&ingredient_id)?;
                Some((ingredient_id, level.clone()))
            })
            .collect();
        ReservationPlan { outcomes, levels }
    }

    fn open(&self) -> impl Iterator<Item = (usize, &'a OrderCreated)> + '_ {
        self.decided
            .iter()
            .zip(&self.orders)
            .enumerate()
            .filter(|(_, (decided, _))| decided.is_none())
            .map(|(i, (_, order))| (i, *order))
    }
}

/// What becomes of one `orders.cancelled` of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Puts back these amounts: what the order reserved and has not had back, in the order it
    /// reserved them.
    Release(Vec<IngredientAmount>),
    /// The order reserved nothing (not seen yet, or rejected): remember it cancelled, so its
    /// `orders.created`, if it comes later, reserves nothing.
    NothingReserved,
    /// Handled before (this event, another for the same order, or everything is back already).
    Duplicate,
}

/// A batch of `orders.cancelled` on its way to its outcomes: [`ReleaseBatch::new`] with what the
/// inbox took as new, then [`ReleaseBatch::plan`] with the movements of
/// [`ReleaseBatch::open_orders`], loaded under their locks.
#[derive(Clone, Debug)]
pub struct ReleaseBatch {
    /// The order of each entry, `None` for a duplicate.
    orders: Vec<Option<Uuid>>,
}

impl ReleaseBatch {
    /// `entries` are (event id, order id) in stream order.
    pub fn new(entries: &[(Uuid, Uuid)], new_events: &HashSet<Uuid>) -> Self {
        let mut orders = vec![None; entries.len()];
        for i in first_new_per_order(entries.iter().copied(), new_events) {
            orders[i] = Some(entries[i].1);
        }
        Self { orders }
    }

    /// The orders to release, ascending.
    pub fn open_orders(&self) -> BTreeSet<Uuid> {
        self.orders.iter().flatten().copied().collect()
    }

    /// Exactly what each order reserved goes back, at most once: its `reserve` movements,
    /// negated, except for the ingredients a `release` movement already gave back. `movements`
    /// are the orders' movements in the order they were written; other reasons are ignored.
    ///
    /// No low-stock rule applies: re-arming an alert is a restock rule only (SPEC §3, §5 rule 3).
    pub fn plan(self, movements: &[Movement]) -> Vec<ReleaseOutcome> {
        self.orders
            .into_iter()
            .map(|order_id| {
                let Some(order_id) = order_id else {
                    return ReleaseOutcome::Duplicate;
                };
                let of_order = |reason| {
                    movements
                        .iter()
                        .filter(move |m| m.order_id == Some(order_id) && m.reason == reason)
                };
                let released: HashSet<i64> =
                    of_order(Reason::Release).map(|m| m.ingredient_id).collect();
                let mut reserved = of_order(Reason::Reserve).peekable();
                if reserved.peek().is_none() {
                    return ReleaseOutcome::NothingReserved;
                }
                let back: Vec<IngredientAmount> = reserved
                    .filter(|m| !released.contains(&m.ingredient_id))
                    .map(|m| IngredientAmount {
                        ingredient_id: m.ingredient_id,
                        amount: -m.delta,
                    })
                    .collect();
                if back.is_empty() {
                    ReleaseOutcome::Duplicate
                } else {
                    ReleaseOutcome::Release(back)
                }
            })
            .collect()
    }
}

/// Why a release cannot be put back into the levels; the levels were locked for it, so either
/// is a broken invariant, not a retryable condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error("ingredient {0} is not among the locked levels")]
    UnknownIngredient(i64),
    #[error("releasing {amount} of ingredient {ingredient_id} overflows its level")]
    Overflow { ingredient_id: i64, amount: i64 },
}

/// Adds the released amounts back to `levels`. Alert states stay as they are (see
/// [`ReleaseBatch::plan`]).
pub fn put_back<'a>(
    levels: &mut BTreeMap<i64, Level>,
    released: impl IntoIterator<Item = &'a IngredientAmount>,
) -> Result<(), ReleaseError> {
    for &IngredientAmount {
        ingredient_id,
        amount,
    } in released
    {
        let level = levels
            .get_mut(&ingredient_id)
            .ok_or(ReleaseError::UnknownIngredient(ingredient_id))?;
        level.stock = level
            .stock
            .checked_add(amount)
            .ok_or(ReleaseError::Overflow {
                ingredient_id,
                amount,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEEF: i64 = 1;
    const CHEESE: i64 = 2;
    const ONION: i64 = 3;

    fn level(name: &str, stock: i64, reference_level: i64) -> Level {
        Level {
            name: name.into(),
            stock,
            reference_level,
            low_stock_alerted: false,
        }
    }

    fn burger_stock() -> HashMap<i64, Level> {
        HashMap::from([
            (BEEF, level("Beef", 20_000, 20_000)),
            (CHEESE, level("Cheese", 5_000, 5_000)),
            (ONION, level("Onion", 1_000, 1_000)),
        ])
    }

    fn burgers(quantity: i64) -> OrderedLine {
        OrderedLine {
            product_id: 10,
            quantity,
            recipe: vec![
                IngredientAmount {
                    ingredient_id: BEEF,
                    amount: 150,
                },
                IngredientAmount {
                    ingredient_id: CHEESE,
                    amount: 30,
                },
                IngredientAmount {
                    ingredient_id: ONION,
                    amount: 20,
                },
            ],
        }
    }

    fn amounts(pairs: &[(i64, i64)]) -> Vec<IngredientAmount> {
        pairs
            .iter()
            .map(|&(ingredient_id, amount)| IngredientAmount {
                ingredient_id,
                amount,
            })
            .collect()
    }

    #[test]
    fn crossing_is_from_at_or_above_half_to_strictly_below() {
        // (before, after, reference, fires, why)
        let cases = [
            (1_000, 500, 1_000, false, "exactly at 50 % is not below"),
            (1_000, 499, 1_000, true, "crossing inside one order"),
            (500, 499, 1_000, true, "from exactly 50 % to below"),
            (499, 300, 1_000, false, "already below"),
            (1_000, 0, 1_000, true, "to zero"),
            (1_000, 1_000, 1_000, false, "no change"),
            (3, 1, 5, true, "odd reference: 60 % to 20 %"),
            (3, 2, 5, true, "odd reference: 2 * 2 < 5 is below half"),
            (
                i64::MAX,
                0,
                i64::MAX,
                true,
                "huge values do not overflow the doubling",
            ),
        ];
        for (before, after, reference, fires, why) in cases {
            assert_eq!(
                crosses_low_stock(before, after, reference),
                fires,
                "{why}: {before} -> {after} of {reference}"
            );
        }
    }

    #[test]
    fn an_alerted_ingredient_never_fires_again() {
        assert!(fires_low_stock(false, 1_000, 400, 1_000));
        assert!(!fires_low_stock(true, 1_000, 400, 1_000));
    }

    #[test]
    fn percent_rounds_down() {
        let cases = [
            (500, 1_000, 50),
            (499, 1_000, 49),
            (0, 1_000, 0),
            (1, 3, 33),
            (2, 3, 66),
            (1_000, 1_000, 100),
            (5, 0, 0),
        ];
        for (level, reference, expected) in cases {
            assert_eq!(
                percent(level, reference),
                expected,
                "{level} of {reference}"
            );
        }
    }

    #[test]
    fn reservations_take_recipe_times_quantity_and_alert_on_crossing() {
        struct Case {
            why: &'static str,
            lines: Vec<OrderedLine>,
            levels: HashMap<i64, Level>,
            reserved: Vec<IngredientAmount>,
            alerts: Vec<i64>,
        }
        let onion_at = |stock| {
            let mut levels = burger_stock();
            levels.insert(ONION, level("Onion", stock, 1_000));
            levels
        };
        let cases = [
            Case {
                why: "25 burgers leave onion at exactly 50 %: no alert",
                lines: vec![burgers(25)],
                levels: burger_stock(),
                reserved: amounts(&[(BEEF, 3_750), (CHEESE, 750), (ONION, 500)]),
                alerts: vec![],
            },
            Case {
                why: "26 burgers cross onion inside one order",
                lines: vec![burgers(26)],
                levels: burger_stock(),
                reserved: amounts(&[(BEEF, 3_900), (CHEESE, 780), (ONION, 520)]),
                alerts: vec![ONION],
            },
            Case {
                why: "two ingredients crossing in the same order alert both",
                lines: vec![burgers(50)],
                levels: HashMap::from([
                    (BEEF, level("Beef", 10_000, 20_000)),
                    (CHEESE, level("Cheese", 5_000, 5_000)),
                    (ONION, level("Onion", 1_000, 1_000)),
                ]),
                reserved: amounts(&[(BEEF, 7_500), (CHEESE, 1_500), (ONION, 1_000)]),
                alerts: vec![BEEF, ONION],
            },
            Case {
                why: "already below half: no alert",
                lines: vec![burgers(1)],
                levels: onion_at(400),
                reserved: amounts(&[(BEEF, 150), (CHEESE, 30), (ONION, 20)]),
                alerts: vec![],
            },
            Case {
                why: "duplicate product lines are summed",
                lines: vec![burgers(2), burgers(3)],
                levels: burger_stock(),
                reserved: amounts(&[(BEEF, 750), (CHEESE, 150), (ONION, 100)]),
                alerts: vec![],
            },
        ];
        for mut case in cases {
            let reservation = plan_reservation(&case.lines, &case.levels)
                .unwrap_or_else(|s| panic!("{}: unexpected shortages {s:?}", case.why));
            assert_eq!(reservation.amounts, case.reserved, "{}", case.why);
            let before = case.levels.clone();
            let alerts = apply_reservation(&mut case.levels, &reservation);
            let alerted: Vec<i64> = alerts.iter().map(|a| a.ingredient_id).collect();
            assert_eq!(alerted, case.alerts, "{}", case.why);
            for IngredientAmount {
                ingredient_id,
                amount,
            } in &reservation.amounts
            {
                assert_eq!(
                    case.levels[ingredient_id].stock,
                    before[ingredient_id].stock - amount,
                    "{}: level of {ingredient_id}",
                    case.why
                );
            }
            for id in case.alerts {
                assert!(case.levels[&id].low_stock_alerted, "{}: {id}", case.why);
            }
        }
    }

    #[test]
    fn the_alert_fires_once_across_orders() {
        let mut levels = burger_stock();
        let mut fired = Vec::new();
        for _ in 0..50 {
            let reservation = plan_reservation(&[burgers(1)], &levels).expect("enough for 50");
            fired.extend(apply_reservation(&mut levels, &reservation));
        }
        assert_eq!(
            fired,
            vec![LowStock {
                ingredient_id: ONION,
                level: 480,
                reference_level: 1_000,
                percent: 48,
            }]
        );
        assert_eq!(levels[&ONION].stock, 0);
        assert_eq!(
            plan_reservation(&[burgers(1)], &levels),
            Err(Shortages(vec![Shortage {
                ingredient_id: ONION,
                ingredient: "Onion".into(),
                required: 20,
                available: 0,
            }]))
        );
    }

    #[test]
    fn shortages_list_every_short_ingredient_and_reserve_nothing() {
        let cases = [
            (
                "two short ingredients, with required and available",
                vec![burgers(60)],
                vec![
                    Shortage {
                        ingredient_id: CHEESE,
                        ingredient: "Cheese".into(),
                        required: 1_800,
                        available: 1_000,
                    },
                    Shortage {
                        ingredient_id: ONION,
                        ingredient: "Onion".into(),
                        required: 1_200,
                        available: 1_000,
                    },
                ],
            ),
            (
                "an ingredient unknown to the merchant is short with 0 available",
                vec![OrderedLine {
                    product_id: 11,
                    quantity: 2,
                    recipe: amounts(&[(BEEF, 10), (99, 5)]),
                }],
                vec![Shortage {
                    ingredient_id: 99,
                    ingredient: "unknown ingredient 99".into(),
                    required: 10,
                    available: 0,
                }],
            ),
            (
                "an overflowing total is a rejection, not a panic",
                vec![OrderedLine {
                    product_id: 12,
                    quantity: i64::MAX,
                    recipe: amounts(&[(ONION, 2)]),
                }],
                vec![Shortage {
                    ingredient_id: ONION,
                    ingredient: "Onion".into(),
                    required: i64::MAX,
                    available: 1_000,
                }],
            ),
            (
                "an overflowing sum of lines is a rejection too",
                vec![
                    OrderedLine {
                        product_id: 12,
                        quantity: i64::MAX,
                        recipe: amounts(&[(ONION, 1)]),
                    },
                    OrderedLine {
                        product_id: 13,
                        quantity: 1,
                        recipe: amounts(&[(ONION, 1)]),
                    },
                ],
                vec![Shortage {
                    ingredient_id: ONION,
                    ingredient: "Onion".into(),
                    required: i64::MAX,
                    available: 1_000,
                }],
            ),
        ];
        let mut levels = burger_stock();
        levels.insert(CHEESE, level("Cheese", 1_000, 5_000));
        for (why, lines, expected) in cases {
            assert_eq!(
                plan_reservation(&lines, &levels),
                Err(Shortages(expected)),
                "{why}"
            );
        }
    }

    #[test]
    fn a_recipe_amount_of_zero_reserves_nothing_of_that_ingredient() {
        let lines = [OrderedLine {
            product_id: 14,
            quantity: 3,
            recipe: amounts(&[(BEEF, 0), (ONION, 1)]),
        }];
        let reservation = plan_reservation(&lines, &burger_stock()).unwrap();
        assert_eq!(reservation.amounts, amounts(&[(ONION, 3)]));
    }

    #[test]
    fn orders_that_can_never_work_are_invalid() {
        let order = |lines| OrderCreated {
            order_id: uuid::Uuid::nil(),
            merchant_id: 1,
            customer_id: uuid::Uuid::nil(),
            lines,
        };
        let cases = [
            (vec![], Err(InvalidOrder::NoLines)),
            (
                vec![burgers(0)],
                Err(InvalidOrder::NonPositiveQuantity {
                    product_id: 10,
                    quantity: 0,
                }),
            ),
            (
                vec![burgers(1), burgers(-2)],
                Err(InvalidOrder::NonPositiveQuantity {
                    product_id: 10,
                    quantity: -2,
                }),
            ),
            (
                vec![OrderedLine {
                    product_id: 15,
                    quantity: 1,
                    recipe: amounts(&[(ONION, -1)]),
                }],
                Err(InvalidOrder::NegativeAmount {
                    product_id: 15,
                    ingredient_id: ONION,
                    amount: -1,
                }),
            ),
            (vec![burgers(1)], Ok(())),
        ];
        for (lines, expected) in cases {
            let why = format!("{lines:?}");
            assert_eq!(validate_order(&order(lines)), expected, "{why}");
        }
    }

    #[test]
    fn restocks_raise_the_reference_and_rearm_only_at_half_or_more() {
        let alerted = |stock, reference| Level {
            low_stock_alerted: true,
            ..level("Onion", stock, reference)
        };
        // (why, before, amount, after)
        let cases = [
            (
                "restock back to exactly 50 % re-arms",
                alerted(300, 1_000),
                200,
                alerted(500, 1_000).with_alerted(false),
            ),
            (
                "restock that stays below does not re-arm",
                alerted(100, 1_000),
                300,
                alerted(400, 1_000),
            ),
            (
                "restock above the reference raises it and re-arms",
                alerted(0, 1_000),
                1_500,
                alerted(1_500, 1_500).with_alerted(false),
            ),
            (
                "restock of an ingredient that never alerted stays armed",
                level("Onion", 800, 1_000),
                100,
                level("Onion", 900, 1_000),
            ),
        ];
        for (why, before, amount, expected) in cases {
            let amount = Amount::parse(amount).expect("a positive amount");
            assert_eq!(before.restocked(amount), Ok(expected), "{why}");
        }
        assert_eq!(
            level("Onion", i64::MAX, 1).restocked(Amount::parse(1).unwrap()),
            Err(LevelOverflow)
        );
    }

    #[test]
    fn half_is_one_threshold_for_crossing_rearming_and_percent() {
        for reference in [1, 2, 3, 5, 999, 1_000, 1_001] {
            for level in 0..=reference * 2 {
                assert_eq!(
                    at_or_above_half(level, reference),
                    percent(level, reference) >= 50,
                    "{level} of {reference}"
                );
            }
        }
        assert!(at_or_above_half(i64::MAX, i64::MAX), "no overflow");
    }

    #[test]
    fn amounts_are_positive_and_units_are_g_ml_or_pcs() {
        let amounts = [
            (1, Ok(1)),
            (500, Ok(500)),
            (i64::MAX, Ok(i64::MAX)),
            (0, Err(NotPositive(0))),
            (-5, Err(NotPositive(-5))),
            (i64::MIN, Err(NotPositive(i64::MIN))),
        ];
        for (value, expected) in amounts {
            assert_eq!(Amount::parse(value).map(Amount::get), expected, "{value}");
        }
        assert_eq!(
            NotPositive(0).to_string(),
            "must be a positive amount in the ingredient's unit",
            "the words a client sees under `amount`"
        );
        for unit in Unit::ALL {
            assert_eq!(unit.as_str().parse::<Unit>(), Ok(unit));
            assert_eq!(unit.to_string(), unit.as_str());
        }
        for unknown in ["kg", "G", "", "pc", " g"] {
            assert_eq!(
                unknown.parse::<Unit>(),
                Err(UnknownUnit(unknown.into())),
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn seeds_need_a_positive_level_and_a_known_unit() {
        let seed = |unit: &str, level| IngredientSeed {
            name: "Salt".into(),
            unit: unit.into(),
            level,
        };
        let cases = [
            (
                seed("g", 5),
                Ok(Seed {
                    name: "Salt".into(),
                    unit: Unit::Grams,
                    level: Amount(5),
                }),
            ),
            (
                seed("pcs", 1),
                Ok(Seed {
                    name: "Salt".into(),
                    unit: Unit::Pieces,
                    level: Amount(1),
                }),
            ),
            (
                seed("g", 0),
                Err("the seed level of Salt must be positive, not 0"),
            ),
            (
                seed("kg", 5),
                Err("the unit of Salt must be g, ml or pcs, not \"kg\""),
            ),
            (
                seed("kg", -1),
                Err("the seed level of Salt must be positive, not -1"),
            ),
        ];
        for (given, expected) in cases {
            let parsed = Seed::parse(&given).map_err(|e| e.to_string());
            assert_eq!(parsed, expected.map_err(str::to_owned), "{given:?}");
        }
        assert!(Seed::parse_all(&[seed("g", 1), seed("l", 1)]).is_err());
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn a_batch_handles_each_new_order_once() {
        // (why, entries as (event, order), new events, indices handled)
        let cases = [
            ("all new", vec![(1, 10), (2, 20)], vec![1, 2], vec![0, 1]),
            (
                "a redelivery is skipped",
                vec![(1, 10), (2, 20)],
                vec![2],
                vec![1],
            ),
            (
                "the same event twice in the batch counts once",
                vec![(1, 10), (1, 10)],
                vec![1],
                vec![0],
            ),
            (
                "another event for an order already in the batch is a duplicate",
                vec![(1, 10), (2, 10), (3, 30)],
                vec![1, 2, 3],
                vec![0, 2],
            ),
            (
                "a redelivered event does not shadow a new one for the same order",
                vec![(1, 10), (2, 10)],
                vec![2],
                vec![1],
            ),
            ("nothing new", vec![(1, 10)], vec![], vec![]),
        ];
        for (why, entries, new_events, expected) in cases {
            let entries = entries.into_iter().map(|(e, o)| (id(e), id(o)));
            let new_events = new_events.into_iter().map(id).collect();
            assert_eq!(first_new_per_order(entries, &new_events), expected, "{why}");
        }
    }

    const MERCHANT: i64 = 7;
    const OTHER_MERCHANT: i64 = 8;

    fn created(order: u128, merchant_id: i64, lines: Vec<OrderedLine>) -> OrderCreated {
        OrderCreated {
            order_id: id(order),
            merchant_id,
            customer_id: Uuid::nil(),
            lines,
        }
    }

    fn merchant_levels(merchant_id: i64, levels: HashMap<i64, Level>) -> Vec<MerchantLevel> {
        levels
            .into_iter()
            .map(|(ingredient_id, level)| MerchantLevel {
                merchant_id,
                ingredient_id,
                level,
            })
            .collect()
    }

    /// What a test expects of one order of a batch.
    #[derive(Debug, PartialEq)]
    enum Expect {
        /// Confirmed, firing alerts for these ingredients.
        Confirmed(Vec<i64>),
        /// Rejected, short of these ingredients.
        Rejected(Vec<i64>),
        Duplicate,
        Cancelled,
    }

    fn expectation(outcome: &ReservationOutcome) -> Expect {
        match outcome {
            ReservationOutcome::Confirmed { alerts, .. } => {
                Expect::Confirmed(alerts.iter().map(|a| a.ingredient_id).collect())
            }
            ReservationOutcome::Rejected(Shortages(short)) => {
                Expect::Rejected(short.iter().map(|s| s.ingredient_id).collect())
            }
            ReservationOutcome::Duplicate => Expect::Duplicate,
            ReservationOutcome::Cancelled => Expect::Cancelled,
        }
    }

    #[test]
    fn a_batch_is_planned_order_by_order_against_what_the_earlier_ones_left() {
        struct Case {
            why: &'static str,
            /// (event, order) in stream order; event n is new unless listed in `redelivered`.
            orders: Vec<(u128, OrderCreated)>,
            redelivered: Vec<u128>,
            cancelled: Vec<u128>,
            already_reserved: Vec<u128>,
            levels: Vec<MerchantLevel>,
            expected: Vec<Expect>,
            /// The written levels: (ingredient, stock, alerted), ascending id.
            written: Vec<(i64, i64, bool)>,
        }
        let ours = |levels| merchant_levels(MERCHANT, levels);
        let onion_at = |stock, alerted| {
            let mut levels = burger_stock();
            levels.insert(
                ONION,
                Level {
                    low_stock_alerted: alerted,
                    ..level("Onion", stock, 1_000)
                },
            );
            ours(levels)
        };
        let burger_order = |n, quantity| (n, created(n, MERCHANT, vec![burgers(quantity)]));
        use Expect::*;
        let cases = [
            Case {
                why: "enough for everyone: all confirmed, levels summed",
                orders: vec![burger_order(1, 2), burger_order(2, 3)],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: ours(burger_stock()),
                expected: vec![Confirmed(vec![]), Confirmed(vec![])],
                written: vec![
                    (BEEF, 19_250, false),
                    (CHEESE, 4_850, false),
                    (ONION, 900, false),
                ],
            },
            Case {
                why: "a shortage rejects only that order; the next one still gets its stock",
                orders: vec![burger_order(1, 60), burger_order(2, 1)],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: ours(burger_stock()),
                expected: vec![Rejected(vec![ONION]), Confirmed(vec![])],
                written: vec![
                    (BEEF, 19_850, false),
                    (CHEESE, 4_970, false),
                    (ONION, 980, false),
                ],
            },
            Case {
                why: "all or nothing per order: short of onion, it takes no beef or cheese",
                orders: vec![burger_order(1, 10)],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: onion_at(199, true),
                expected: vec![Rejected(vec![ONION])],
                written: vec![],
            },
            Case {
                why: "orders are served in stream order: the first takes the last onion",
                orders: vec![burger_order(1, 25), burger_order(2, 1)],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: onion_at(500, true),
                expected: vec![Confirmed(vec![]), Rejected(vec![ONION])],
                written: vec![
                    (BEEF, 16_250, false),
                    (CHEESE, 4_250, false),
                    (ONION, 0, true),
                ],
            },
            Case {
                why: "a crossing alerts once; a second crossing in the same batch does not",
                orders: vec![burger_order(1, 26), burger_order(2, 10), burger_order(3, 1)],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: ours(burger_stock()),
                expected: vec![Confirmed(vec![ONION]), Confirmed(vec![]), Confirmed(vec![])],
                written: vec![
                    (BEEF, 14_450, false),
                    (CHEESE, 3_890, false),
                    (ONION, 260, true),
                ],
            },
            Case {
                why: "two orders of the batch take beef below half: only the first alerts",
                orders: vec![
                    (
                        1,
                        created(
                            1,
                            MERCHANT,
                            vec![OrderedLine {
                                product_id: 20,
                                quantity: 1,
                                recipe: amounts(&[(BEEF, 10_001)]),
                            }],
                        ),
                    ),
                    (
                        2,
                        created(
                            2,
                            MERCHANT,
                            vec![OrderedLine {
                                product_id: 20,
                                quantity: 1,
                                recipe: amounts(&[(BEEF, 1)]),
                            }],
                        ),
                    ),
                ],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: ours(burger_stock()),
                expected: vec![Confirmed(vec![BEEF]), Confirmed(vec![])],
                written: vec![(BEEF, 9_998, true)],
            },
            Case {
                why: "an ingredient already alerted does not alert again",
                orders: vec![burger_order(1, 6)],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: onion_at(600, true),
                expected: vec![Confirmed(vec![])],
                written: vec![
                    (BEEF, 19_100, false),
                    (CHEESE, 4_820, false),
                    (ONION, 480, true),
                ],
            },
            Case {
                why: "duplicates and cancelled orders are skipped and take nothing",
                orders: vec![
                    burger_order(1, 50),                           // redelivered
                    (2, created(20, MERCHANT, vec![burgers(50)])), // cancelled
                    (3, created(30, MERCHANT, vec![burgers(50)])), // reserved before
                    (4, created(40, MERCHANT, vec![burgers(1)])),  // planned
                    (5, created(40, MERCHANT, vec![burgers(50)])), // same order again
                    (4, created(40, MERCHANT, vec![burgers(50)])), // same event again
                ],
                redelivered: vec![1],
                cancelled: vec![20],
                already_reserved: vec![30],
                levels: ours(burger_stock()),
                expected: vec![
                    Duplicate,
                    Cancelled,
                    Duplicate,
                    Confirmed(vec![]),
                    Duplicate,
                    Duplicate,
                ],
                written: vec![
                    (BEEF, 19_850, false),
                    (CHEESE, 4_970, false),
                    (ONION, 980, false),
                ],
            },
            Case {
                why: "an order sees only its own merchant's stock",
                orders: vec![(1, created(1, OTHER_MERCHANT, vec![burgers(1)]))],
                redelivered: vec![],
                cancelled: vec![],
                already_reserved: vec![],
                levels: ours(burger_stock()),
                expected: vec![Rejected(vec![BEEF, CHEESE, ONION])],
                written: vec![],
            },
        ];
        for case in cases {
            let new_events: HashSet<Uuid> = case
                .orders
                .iter()
                .map(|(event, _)| *event)
                .filter(|event| !case.redelivered.contains(event))
                .map(id)
                .collect();
            let mut batch = ReservationBatch::new(
                case.orders.iter().map(|(event, order)| (id(*event), order)),
                &new_events,
            );
            let to_set = |ids: &[u128]| ids.iter().copied().map(id).collect::<HashSet<_>>();
            batch.skip(&to_set(&case.cancelled), &to_set(&case.already_reserved));
            let plan = batch.plan(case.levels);
            let outcomes: Vec<Expect> = plan.outcomes.iter().map(expectation).collect();
            assert_eq!(outcomes, case.expected, "{}", case.why);
            let written: Vec<(i64, i64, bool)> = plan
                .levels
                .iter()
                .map(|(id, l)| (*id, l.stock, l.low_stock_alerted))
                .collect();
            assert_eq!(written, case.written, "{}: written levels", case.why);
        }
    }

    #[test]
    fn a_planned_alert_carries_the_level_reference_and_percent_after_the_order() {
        let order = created(1, MERCHANT, vec![burgers(26)]);
        let batch = ReservationBatch::new([(id(1), &order)], &HashSet::from([id(1)]));
        let plan = batch.plan(merchant_levels(MERCHANT, burger_stock()));
        let [
            ReservationOutcome::Confirmed {
                reservation,
                alerts,
            },
        ] = &plan.outcomes[..]
        else {
            panic!("one confirmed order: {plan:?}");
        };
        assert_eq!(
            reservation.amounts,
            amounts(&[(BEEF, 3_900), (CHEESE, 780), (ONION, 520)])
        );
        assert_eq!(
            alerts,
            &[LowStock {
                ingredient_id: ONION,
                level: 480,
                reference_level: 1_000,
                percent: 48,
            }]
        );
    }

    #[test]
    fn the_batch_asks_for_the_locks_of_what_it_still_has_to_plan() {
        let orders = [
            created(1, MERCHANT, vec![burgers(1)]),
            created(
                2,
                MERCHANT,
                vec![OrderedLine {
                    product_id: 20,
                    quantity: 1,
                    recipe: amounts(&[(99, 1)]),
                }],
            ),
            created(
                3,
                MERCHANT,
                vec![OrderedLine {
                    product_id: 21,
                    quantity: 1,
                    recipe: amounts(&[(98, 1)]),
                }],
            ),
        ];
        let mut batch = ReservationBatch::new(
            orders.iter().enumerate().map(|(i, o)| (id(i as u128), o)),
            &HashSet::from([id(0), id(1), id(2)]),
        );
        assert_eq!(batch.open_orders(), BTreeSet::from([id(1), id(2), id(3)]));
        batch.skip(&HashSet::from([id(2)]), &HashSet::new());
        assert!(batch.has_open());
        assert_eq!(batch.open_orders(), BTreeSet::from([id(1), id(3)]));
        assert_eq!(
            batch.ingredient_ids(),
            BTreeSet::from([BEEF, CHEESE, ONION, 98]),
            "not the cancelled order's ingredient 99"
        );
        batch.skip(&HashSet::from([id(1)]), &HashSet::from([id(3)]));
        assert!(!batch.has_open());
        assert!(batch.ingredient_ids().is_empty());
    }

    fn movement(order: u128, ingredient_id: i64, delta: i64, reason: Reason) -> Movement {
        Movement {
            order_id: Some(id(order)),
            ingredient_id,
            delta,
            reason,
        }
    }

    #[test]
    fn a_cancelled_order_gets_back_exactly_what_it_reserved_once() {
        use Reason::{Release, Reserve};
        let back = |pairs: &[(i64, i64)]| ReleaseOutcome::Release(amounts(pairs));
        let movements = vec![
            Movement {
                order_id: None,
                ingredient_id: BEEF,
                delta: 20_000,
                reason: Reason::Seed,
            },
            movement(10, BEEF, -150, Reserve),
            movement(10, ONION, -20, Reserve),
            movement(20, BEEF, -300, Reserve),
            movement(30, BEEF, -150, Reserve),
            movement(30, ONION, -20, Reserve),
            movement(30, BEEF, 150, Release),
            movement(40, CHEESE, -30, Reserve),
            movement(40, CHEESE, 30, Release),
        ];
        // (why, entries as (event, order), new events, outcomes)
        let cases = [
            (
                "what it reserved, as it reserved it, and nothing of another order",
                vec![(1, 10)],
                vec![1],
                vec![back(&[(BEEF, 150), (ONION, 20)])],
            ),
            (
                "an order that reserved nothing is remembered cancelled",
                vec![(1, 50)],
                vec![1],
                vec![ReleaseOutcome::NothingReserved],
            ),
            (
                "a partial release gives back only the rest",
                vec![(1, 30)],
                vec![1],
                vec![back(&[(ONION, 20)])],
            ),
            (
                "everything back already: a duplicate",
                vec![(1, 40)],
                vec![1],
                vec![ReleaseOutcome::Duplicate],
            ),
            (
                "a redelivery gives back nothing",
                vec![(1, 10)],
                vec![],
                vec![ReleaseOutcome::Duplicate],
            ),
            (
                "a second cancellation of the order in the batch gives back nothing",
                vec![(1, 10), (2, 10)],
                vec![1, 2],
                vec![back(&[(BEEF, 150), (ONION, 20)]), ReleaseOutcome::Duplicate],
            ),
            (
                "each order of the batch its own",
                vec![(1, 20), (2, 10)],
                vec![1, 2],
                vec![back(&[(BEEF, 300)]), back(&[(BEEF, 150), (ONION, 20)])],
            ),
        ];
        for (why, entries, new_events, expected) in cases {
            let entries: Vec<(Uuid, Uuid)> =
                entries.into_iter().map(|(e, o)| (id(e), id(o))).collect();
            let new_events = new_events.into_iter().map(id).collect();
            let batch = ReleaseBatch::new(&entries, &new_events);
            assert_eq!(batch.clone().plan(&movements), expected, "{why}");
        }
    }

    #[test]
    fn putting_back_adds_to_the_levels_and_leaves_the_alert_alone() {
        let alerted = Level {
            low_stock_alerted: true,
            ..level("Onion", 400, 1_000)
        };
        let mut levels = BTreeMap::from([(BEEF, level("Beef", 100, 20_000)), (ONION, alerted)]);
        put_back(&mut levels, &amounts(&[(BEEF, 150), (ONION, 600)])).unwrap();
        assert_eq!(levels[&BEEF].stock, 250);
        assert_eq!(
            (levels[&ONION].stock, levels[&ONION].low_stock_alerted),
            (1_000, true),
            "back at 100 %, still alerted: re-arming is a restock's job"
        );
        assert_eq!(
            put_back(&mut levels, &amounts(&[(CHEESE, 1)])),
            Err(ReleaseError::UnknownIngredient(CHEESE))
        );
        assert_eq!(
            put_back(&mut levels, &amounts(&[(BEEF, i64::MAX)])),
            Err(ReleaseError::Overflow {
                ingredient_id: BEEF,
                amount: i64::MAX,
            })
        );
    }

    impl Level {
        fn with_alerted(self, low_stock_alerted: bool) -> Self {
            Self {
                low_stock_alerted,
                ..self
            }
        }
    }
}
