//! The stock rules, as plain functions over plain values: what an order needs, whether it can
//! have it, when a low-stock alert fires and when a restock re-arms it (SPEC §5 rules 2 and 3).
//!
//! Amounts are `i64` in the ingredient's base unit (g, ml, pcs) and every sum or product is
//! checked: an overflow is a rejection, never a panic or a wrap-around.

use std::collections::{BTreeMap, HashMap};

use larder_contract::events::{IngredientAmount, OrderCreated, OrderedLine, Shortage};

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

/// A restock amount that cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRestock {
    #[error("amount must be positive")]
    NotPositive,
    #[error("the new level would overflow")]
    Overflow,
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
/// Exactly 50 % is not below. Computed in `i128`, so no level overflows the doubling.
pub fn crosses_low_stock(before: i64, after: i64, reference: i64) -> bool {
    let (before, after, reference) = (i128::from(before), i128::from(after), i128::from(reference));
    before * 2 >= reference && after * 2 < reference
}

/// SPEC §5 rule 3, with the alert state: a crossing fires unless the ingredient has already
/// alerted and no restock has re-armed it since.
pub fn fires_low_stock(already_alerted: bool, before: i64, after: i64, reference: i64) -> bool {
    !already_alerted && crosses_low_stock(before, after, reference)
}

/// Why an ingredient cannot be seeded as given: its level must be positive and its unit one of
/// `g`, `ml`, `pcs`.
pub fn invalid_seed(seed: &larder_contract::commands::IngredientSeed) -> Option<String> {
    if seed.level <= 0 {
        Some(format!(
            "the seed level of {} must be positive, not {}",
            seed.name, seed.level
        ))
    } else if !matches!(seed.unit.as_str(), "g" | "ml" | "pcs") {
        Some(format!(
            "the unit of {} must be g, ml or pcs, not {:?}",
            seed.name, seed.unit
        ))
    } else {
        None
    }
}

/// Whole percent of the reference level, rounded down (`floor(level * 100 / reference)`); 0 for
/// a reference that is not positive.
pub fn percent(level: i64, reference: i64) -> i64 {
    if reference <= 0 {
        return 0;
    }
    let percent = (i128::from(level) * 100).div_euclid(i128::from(reference));
    i64::try_from(percent).unwrap_or(if percent < 0 { i64::MIN } else { i64::MAX })
}

impl Level {
    /// SPEC §3 restock: adds `amount` (> 0); raises the reference to the new level when above it;
    /// re-arms the alert iff the new level is at or above 50 % of the (possibly raised) reference.
    /// Below that, the alert state stays as it was: a restock that leaves the level low does not
    /// make room for a second alert.
    pub fn restocked(&self, amount: i64) -> Result<Level, InvalidRestock> {
        if amount <= 0 {
            return Err(InvalidRestock::NotPositive);
        }
        let stock = self
            .stock
            .checked_add(amount)
            .ok_or(InvalidRestock::Overflow)?;
        let reference_level = self.reference_level.max(stock);
        let rearmed = i128::from(stock) * 2 >= i128::from(reference_level);
        Ok(Level {
            name: self.name.clone(),
            stock,
            reference_level,
            low_stock_alerted: self.low_stock_alerted && !rearmed,
        })
    }
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
            assert_eq!(before.restocked(amount), Ok(expected), "{why}");
        }
        assert_eq!(
            level("Onion", 1, 1).restocked(0),
            Err(InvalidRestock::NotPositive)
        );
        assert_eq!(
            level("Onion", 1, 1).restocked(-5),
            Err(InvalidRestock::NotPositive)
        );
        assert_eq!(
            level("Onion", i64::MAX, 1).restocked(1),
            Err(InvalidRestock::Overflow)
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
