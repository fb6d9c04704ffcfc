//! MM phase-in: a `params` event that raises maintenance rates does not apply the raise to the
//! existing book at once. The market keeps *effective* tier rates (what maintenance margin, the
//! risk index, the scan and liquidation sizing read: `Market::params.tiers`) and moves them
//! linearly toward the *target* rates (what initial margin reads: `Market::target_params`) over
//! `mm_phase_in_ms` of engine time, in at most [`PHASE_IN_STEPS`] steps.
//!
//! The core has no clock: a step is a pure function of the `ts` of a clock-advancing event (not
//! a `params` event, not a price tick, which never moves the clock). The announcing event applies
//! no raise (the effective rate of a raised bracket stays where it was), so it liquidates nobody;
//! each step requeues the market's holders in the risk index. A lowering applies at once. A change
//! of tier basis, mode or brackets applies at once (there is no per-bracket path between two
//! different shapes).

use crate::config::{MarketParams, Tier};
use crate::engine::Engine;
use crate::state::MarketId;
use serde::{Deserialize, Serialize};

/// Most steps in one phase-in: the effective rates move every `mm_phase_in_ms / 32` ms, so a
/// phase-in requeues the market's holders at most 32 times.
pub const PHASE_IN_STEPS: u64 = 32;

/// A running phase-in of one market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseIn {
    /// The parameters the last `params` event set: the target tiers, and every other field as
    /// the effective parameters have it.
    pub target: MarketParams,
    /// The effective table when the phase-in began: per bracket min(current, target) of the MM
    /// and penalty rates (penalties stay there until the end).
    pub start: Vec<Tier>,
    pub start_ts: u64,
    pub end_ts: u64,
    /// Steps applied so far, 0..PHASE_IN_STEPS.
    pub steps: u64,
}

fn same_shape(a: &MarketParams, b: &MarketParams) -> bool {
    a.tier_basis == b.tier_basis
        && a.tier_mode == b.tier_mode
        && a.tiers.len() == b.tiers.len()
        && a.tiers.iter().zip(&b.tiers).all(|(x, y)| x.from_raw == y.from_raw)
}

/// Pure leaf: the effective parameters and phase-in after a `params` event at `ts` set `target`
/// on a market whose effective parameters are `current` (with `running`, its phase-in, if any).
pub fn plan(
    current: &MarketParams,
    running: Option<&PhaseIn>,
    target: MarketParams,
    ts: u64,
) -> (MarketParams, Option<PhaseIn>) {
    if target.mm_phase_in_ms == 0 || !same_shape(current, &target) {
        return (target, None);
    }
    if let Some(phase) = running.filter(|p| p.target.tiers == target.tiers) {
        // The same target again (an advisor repeating itself): the phase-in runs on unchanged.
        let effective = MarketParams { tiers: current.tiers.clone(), ..target.clone() };
        return (effective, Some(PhaseIn { target, ..phase.clone() }));
    }
    let start: Vec<Tier> = current
        .tiers
        .iter()
        .zip(&target.tiers)
        .map(|(c, t)| Tier {
            from_raw: t.from_raw,
            mm_rate: c.mm_rate.min(t.mm_rate),
            penalty_rate: c.penalty_rate.min(t.penalty_rate),
        })
        .collect();
    if start.iter().zip(&target.tiers).all(|(s, t)| s.mm_rate == t.mm_rate) {
        return (target, None); // nothing is raised
    }
    let effective = MarketParams { tiers: start.clone(), ..target.clone() };
    debug_assert_eq!(effective.validate(), Ok(()), "min of two valid tables is valid");
    let end_ts = ts.saturating_add(target.mm_phase_in_ms);
    (effective, Some(PhaseIn { target, start, start_ts: ts, end_ts, steps: 0 }))
}

/// Pure leaf shared by every phase (MM phase-ins here, collateral weight phases in
/// `asset_status`): the step due at engine time `ts` of a phase over [`start_ts`, `end_ts`] that
/// has applied `steps_done` steps, or `None` when none is due. Step k of [`PHASE_IN_STEPS`] is due
/// once k / STEPS of the span has passed; at or after the end it is the last step.
pub fn due_step(start_ts: u64, end_ts: u64, steps_done: u64, ts: u64) -> Option<u64> {
    if ts >= end_ts {
        return Some(PHASE_IN_STEPS);
    }
    let elapsed = u128::from(ts.saturating_sub(start_ts));
    let span = u128::from(end_ts.saturating_sub(start_ts)).max(1);
    let k = (elapsed * u128::from(PHASE_IN_STEPS) / span) as u64;
    (k > steps_done).then_some(k)
}

/// Pure leaf: the effective tiers of `phase` at engine time `ts` and the step count, or `None`
/// when no step is due. Step k of [`PHASE_IN_STEPS`] sets each MM rate to
/// start + floor((target - start) x k / STEPS), so it has moved at most (target - start) x
/// elapsed / phase_in (rounded down: toward the current requirement).
pub fn step(phase: &PhaseIn, ts: u64) -> Option<(Vec<Tier>, u64)> {
    let k = due_step(phase.start_ts, phase.end_ts, phase.steps, ts)?;
    if k == PHASE_IN_STEPS {
        return Some((phase.target.tiers.clone(), PHASE_IN_STEPS));
    }
    let tiers = phase
        .start
        .iter()
        .zip(&phase.target.tiers)
        .map(|(s, t)| {
            let raise = i128::from(t.mm_rate.raw() - s.mm_rate.raw());
            let moved = raise * i128::from(k) / i128::from(PHASE_IN_STEPS); // raise >= 0: floor
            Tier { mm_rate: crate::num::Rate::from_raw(s.mm_rate.raw() + moved as i64), ..*s }
        })
        .collect();
    Some((tiers, k))
}

impl Engine {
    /// Apply the phase-in steps due at engine time `ts` (after a clock-advancing event other
    /// than `params`), requeueing the holders of every market whose effective rates moved.
    pub(crate) fn step_phase_ins(&mut self, ts: u64) {
        if self.phase_ins == 0 {
            return;
        }
        for i in 0..self.markets.len() {
            let market = &mut self.markets[i];
            let Some(phase) = market.phase_in.as_deref_mut() else { continue };
            let Some((tiers, steps)) = step(phase, ts) else { continue };
            if steps >= PHASE_IN_STEPS {
                let phase = market.phase_in.take().expect("checked above");
                market.params = phase.target;
                self.phase_ins -= 1;
            } else {
                phase.steps = steps;
                market.params.tiers = tiers;
            }
            debug_assert_eq!(market.params.validate(), Ok(()), "every step is a valid table");
            self.risk.market_params_changed(MarketId(i as u16));
        }
    }

    /// Install the parameters a `params` event set on market `id` at `ts` (validated).
    pub(crate) fn set_target_params(&mut self, id: MarketId, target: MarketParams, ts: u64) {
        let market = &mut self.markets[id.0 as usize];
        let was_running = market.phase_in.is_some();
        let (effective, phase) = plan(&market.params, market.phase_in.as_deref(), target, ts);
        market.params = effective;
        market.phase_in = phase.map(Box::new);
        match (was_running, market.phase_in.is_some()) {
            (false, true) => self.phase_ins += 1,
            (true, false) => self.phase_ins -= 1,
            _ => {}
        }
        self.risk.market_params_changed(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::Rate;

    fn params_with(rates: &[i64], phase_in_ms: u64) -> MarketParams {
        let mut params = crate::Config::embedded_default().markets[0].params.clone();
        for (tier, rate) in params.tiers.iter_mut().zip(rates) {
            tier.mm_rate = Rate::from_raw(*rate);
        }
        params.mm_phase_in_ms = phase_in_ms;
        params
    }

    #[test]
    fn a_raise_starts_where_the_book_is_and_steps_are_bounded() {
        let current = params_with(&[2_500_000, 5_000_000, 10_000_000, 20_000_000], 64_000);
        let target = params_with(&[5_000_000, 4_000_000 + 1_000_000, 12_000_000, 20_000_000], 64_000);
        let (effective, phase) = plan(&current, None, target.clone(), 1_000);
        let phase = phase.expect("a raise phases in");
        assert_eq!(effective.tiers, current.tiers, "the announcing event applies no raise");
        assert_eq!(phase.end_ts, 65_000);
        assert_eq!(step(&phase, 2_999), None, "no step before 1/32 of the span");
        let (tiers, k) = step(&phase, 33_000).unwrap();
        assert_eq!(k, 16);
        assert_eq!(tiers[0].mm_rate, Rate::from_raw(3_750_000));
        assert_eq!(tiers[2].mm_rate, Rate::from_raw(11_000_000));
        for ts in (1_000..66_000).step_by(997) {
            if let Some((tiers, _)) = step(&phase, ts) {
                for ((t, s), g) in tiers.iter().zip(&phase.start).zip(&target.tiers) {
                    let elapsed = i128::from(ts.min(65_000) - 1_000);
                    let bound = i128::from(g.mm_rate.raw() - s.mm_rate.raw()) * elapsed / 64_000;
                    assert!(i128::from(t.mm_rate.raw() - s.mm_rate.raw()) <= bound, "bounded step at {ts}");
                }
            }
        }
        assert_eq!(step(&phase, 65_000).unwrap(), (target.tiers.clone(), PHASE_IN_STEPS));
    }

    #[test]
    fn lowering_and_shape_changes_apply_at_once() {
        let current = params_with(&[2_500_000, 5_000_000, 10_000_000, 20_000_000], 60_000);
        let lower = params_with(&[2_000_000, 5_000_000, 10_000_000, 20_000_000], 60_000);
        assert_eq!(plan(&current, None, lower.clone(), 0), (lower, None));
        let mut whole = params_with(&[5_000_000, 5_000_000, 10_000_000, 20_000_000], 60_000);
        whole.tier_mode = crate::config::TierMode::Whole;
        assert_eq!(plan(&current, None, whole.clone(), 0), (whole, None));
        let immediate = params_with(&[5_000_000, 5_000_000, 10_000_000, 20_000_000], 0);
        assert_eq!(plan(&current, None, immediate.clone(), 0), (immediate, None));
    }

    #[test]
    fn repeating_the_target_keeps_the_phase_in_running() {
        let current = params_with(&[2_500_000, 5_000_000, 10_000_000, 20_000_000], 60_000);
        let target = params_with(&[5_000_000, 5_000_000, 10_000_000, 20_000_000], 60_000);
        let (effective, phase) = plan(&current, None, target.clone(), 0);
        let phase = phase.unwrap();
        let (tiers, k) = step(&phase, 30_000).unwrap();
        let stepped = MarketParams { tiers, ..effective };
        let running = PhaseIn { steps: k, ..phase.clone() };
        let (again, kept) = plan(&stepped, Some(&running), target, 40_000);
        assert_eq!(again.tiers, stepped.tiers);
        assert_eq!(kept, Some(running));
    }
}
