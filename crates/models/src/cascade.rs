//! Liquidation cascades: the fixed point of shock -> liquidations -> impact ->
//! more liquidations.
//!
//! Input: a [`LiquidationMap`] (per price level, the notional that would be
//! liquidated when the mark reaches that level, longs below the mark and shorts
//! above it; the core's exact map converted to floats by the caller) and a
//! [`Depth`] (the square-root law of [`crate::gap::ImpactModel`], or a configured
//! book: cumulative notional that moves the price by a given fraction).
//!
//! A shock `s` (a fraction, in the map's direction) moves the price to
//! `mark (1 -/+ s)`; every level the move has reached is liquidated; liquidating
//! notional `L` moves the price a further `I(L)` against it, multiplicatively as
//! the stress lab applies impact: the total move is `m = 1 - (1 - s)(1 - I(L(m)))`
//! (down; up: `(1 + s)(1 + I(L(m))) - 1`). `L` and `I` are non-decreasing, so the
//! iteration `m_0 = s`, `m_{k+1} = g(L(m_k))` rises to the least fixed point; `L`
//! is a step function, so each round either reaches a new level or stops: at
//! most `levels + 1` rounds. **Amplification** = final move / shock. A **cliff**
//! is a shock at which the final move jumps: the amplification curve over a grid
//! of shocks rises by more than a threshold between two neighbouring shocks.
//!
//! One-shot model: all of `L` meets the book at once. The stress lab applies
//! impact step by step (a minute's liquidations at a time, with backstop makers
//! in between), so the model is a forecast of the lab, not a copy of it.

use crate::error::{non_negative, positive, ModelError, Result};
use crate::gap::ImpactModel;
use serde::{Deserialize, Serialize};

/// One price level of a liquidation map.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MapLevel {
    /// Mark price at which these positions are liquidated.
    pub price: f64,
    /// Notional liquidated there, quote units at that price.
    pub notional: f64,
}

/// A market's liquidation map in floats: `down` holds the longs' levels (below
/// the mark), `up` the shorts' (above it), each in any order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LiquidationMap {
    pub mark: f64,
    pub down: Vec<MapLevel>,
    pub up: Vec<MapLevel>,
}

/// Direction of a shock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Down,
    Up,
}

/// How much a liquidation of notional `L` moves the price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Depth {
    /// `Y sigma_daily sqrt(L / V)`; the model's `daily_volume` in quote units.
    SquareRoot(ImpactModel),
    /// A configured book: `(move fraction, cumulative notional)` points, both
    /// strictly increasing from `(0, 0)` (implied); linear in between, the last
    /// segment extended beyond the last point.
    Book(Vec<(f64, f64)>),
}

impl Depth {
    /// Checks the book's points.
    pub fn validate(&self) -> Result<()> {
        let Depth::Book(points) = self else { return Ok(()) };
        if points.is_empty() || points.len() > 10_000 {
            return Err(ModelError::InvalidParameter { name: "depth_book", reason: "needs 1..=10,000 points".into() });
        }
        let mut last = (0.0, 0.0);
        for &(mv, notional) in points {
            positive("depth_book.move", mv)?;
            positive("depth_book.notional", notional)?;
            if mv <= last.0 || notional <= last.1 {
                return Err(ModelError::InvalidParameter {
                    name: "depth_book",
                    reason: format!("points must increase in both move and notional, ({mv}, {notional}) does not"),
                });
            }
            last = (mv, notional);
        }
        Ok(())
    }

    /// Price move (fraction) from liquidating `notional`.
    pub fn impact(&self, notional: f64) -> f64 {
        let q = notional.max(0.0);
        match self {
            Depth::SquareRoot(model) => model.impact_fraction(q),
            Depth::Book(points) => {
                let mut prev = (0.0, 0.0);
                for (i, &(mv, depth)) in points.iter().enumerate() {
                    if q <= depth || i + 1 == points.len() {
                        return prev.0 + (mv - prev.0) * (q - prev.1) / (depth - prev.1);
                    }
                    prev = (mv, depth);
                }
                0.0
            }
        }
    }
}

/// Settings of [`cascade`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CascadeConfig {
    /// Largest total move (the price cannot fall below `mark (1 - max_move)`).
    pub max_move: f64,
}

impl Default for CascadeConfig {
    fn default() -> Self {
        CascadeConfig { max_move: 0.99 }
    }
}

/// The fixed point of one shock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cascade {
    pub shock: f64,
    /// Total move at the fixed point (fraction of the mark).
    pub final_move: f64,
    /// `final_move / shock`.
    pub amplification: f64,
    /// Notional liquidated at the fixed point.
    pub liquidated_notional: f64,
    /// Iterations until nothing new was liquidated.
    pub rounds: usize,
}

/// Notional of the levels a move of `m` reaches.
fn reached(map: &LiquidationMap, direction: Direction, m: f64) -> f64 {
    let eps = 1e-12 * map.mark;
    match direction {
        Direction::Down => {
            let p = map.mark * (1.0 - m);
            map.down.iter().filter(|l| l.price >= p - eps).map(|l| l.notional).sum()
        }
        Direction::Up => {
            let p = map.mark * (1.0 + m);
            map.up.iter().filter(|l| l.price <= p + eps).map(|l| l.notional).sum()
        }
    }
}

fn total_move(direction: Direction, shock: f64, impact: f64, max_move: f64) -> f64 {
    let m = match direction {
        Direction::Down => 1.0 - (1.0 - shock) * (1.0 - impact.min(1.0)),
        Direction::Up => (1.0 + shock) * (1.0 + impact) - 1.0,
    };
    m.min(max_move)
}

fn check_map(map: &LiquidationMap) -> Result<()> {
    positive("map.mark", map.mark)?;
    for l in map.down.iter().chain(&map.up) {
        positive("map.price", l.price)?;
        non_negative("map.notional", l.notional)?;
    }
    Ok(())
}

/// The cascade a `shock` (fraction > 0) in `direction` sets off.
pub fn cascade(
    map: &LiquidationMap,
    depth: &Depth,
    direction: Direction,
    shock: f64,
    config: &CascadeConfig,
) -> Result<Cascade> {
    check_map(map)?;
    depth.validate()?;
    positive("shock", shock)?;
    let max_move = config.max_move;
    if !(max_move > 0.0 && max_move <= 1.0) {
        return Err(ModelError::InvalidParameter {
            name: "max_move",
            reason: format!("must be in (0, 1], {max_move}"),
        });
    }
    let levels = match direction {
        Direction::Down => map.down.len(),
        Direction::Up => map.up.len(),
    };
    let mut m = shock.min(max_move);
    let mut liquidated = reached(map, direction, m);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= levels + 2, "a cascade round that reaches no new level is the fixed point");
        let next = total_move(direction, shock, depth.impact(liquidated), max_move).max(m);
        let next_liquidated = reached(map, direction, next);
        m = next;
        if next_liquidated <= liquidated {
            break;
        }
        liquidated = next_liquidated;
    }
    Ok(Cascade { shock, final_move: m, amplification: m / shock, liquidated_notional: liquidated, rounds })
}

/// A shock at which the cascade's final move jumps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cliff {
    /// The smallest shock of the grid past the jump.
    pub shock: f64,
    /// Price the shock reaches (the level that sets the cascade off).
    pub trigger_price: f64,
    /// Price the cascade ends at.
    pub final_price: f64,
    pub amplification_before: f64,
    pub amplification_after: f64,
}

/// Cascades over a grid of shocks `step, 2 step, .., max_shock`, and the cliffs:
/// neighbouring shocks whose final moves differ by more than `jump` (a fraction
/// of the mark) beyond the shock's own step.
pub fn cliffs(
    map: &LiquidationMap,
    depth: &Depth,
    direction: Direction,
    step: f64,
    max_shock: f64,
    jump: f64,
) -> Result<(Vec<Cascade>, Vec<Cliff>)> {
    positive("step", step)?;
    positive("max_shock", max_shock)?;
    positive("jump", jump)?;
    let n = (max_shock / step).round() as usize;
    if n == 0 || n > 10_000 {
        return Err(ModelError::InvalidParameter { name: "max_shock", reason: "needs 1..=10,000 grid steps".into() });
    }
    let config = CascadeConfig::default();
    let curve: Vec<Cascade> =
        (1..=n).map(|k| cascade(map, depth, direction, k as f64 * step, &config)).collect::<Result<_>>()?;
    let sign = if direction == Direction::Down { -1.0 } else { 1.0 };
    let found = curve
        .windows(2)
        .filter(|w| w[1].final_move - w[0].final_move > step + jump)
        .map(|w| Cliff {
            shock: w[1].shock,
            trigger_price: map.mark * (1.0 + sign * w[1].shock),
            final_price: map.mark * (1.0 + sign * w[1].final_move),
            amplification_before: w[0].amplification,
            amplification_after: w[1].amplification,
        })
        .collect();
    Ok((curve, found))
}

/// Share of the map's notional (one direction) within `within` of the mark:
/// how concentrated the nearby liquidations are (0 for an empty side).
pub fn near_share(map: &LiquidationMap, direction: Direction, within: f64) -> f64 {
    let side = match direction {
        Direction::Down => &map.down,
        Direction::Up => &map.up,
    };
    let total: f64 = side.iter().map(|l| l.notional).sum();
    if total <= 0.0 {
        return 0.0;
    }
    reached(map, direction, within) / total
}

#[cfg(test)]
mod tests;
