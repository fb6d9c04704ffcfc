//! Multi-chain collateral and asset status (docs/margin.md, "Collateral weights").
//!
//! A collateral asset may be a bridged form (`chain`) of a `token` (`USDC.arb`: USDC on
//! arbitrum), priced by its own `index_market` and counted at its own weight, cut by a
//! `bridge_haircut`: the *normal* effective weight is `weight` x (1 - bridge_haircut), rounded
//! down (against the account).
//!
//! An `asset_status` event sets the asset's status: `normal`, `bridge_halted` or `depegged`. Each
//! status has a target effective weight (the normal weight; `halted_weight` or `depeg_weight`,
//! each x (1 - bridge_haircut), rounded down), and a change moves the effective weight
//! (`Asset::weight`, what margin reads) from where it is to the new target linearly over
//! `weight_phase_ms` of engine time, in at most [`WEIGHT_STEPS`] steps, down and back up alike.
//! The announcing event moves no weight (so it liquidates nobody); a step is a pure function of
//! the `ts` of a later clock-advancing event (not another `asset_status` event, not a price tick),
//! emits an `asset_weight` effect and requeues every holder of the asset in the risk index (the
//! holders of its index market: an account holding the asset is one).

use crate::config::AssetConfig;
use crate::effect::{Effect, EffectKind, EffectSink};
use crate::engine::{AssetRef, Engine};
use crate::error::Error;
use crate::event::AssetStatusUpdate;
use crate::num::Rate;
use serde::{Deserialize, Serialize};

/// Most steps in one weight phase (the MM phase-in's bound, `phase_in::PHASE_IN_STEPS`): a phase
/// requeues the asset's holders at most 32 times.
pub const WEIGHT_STEPS: u64 = crate::phase_in::PHASE_IN_STEPS;

/// What the venue knows about an asset's bridge or peg.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssetStatus {
    /// Target: the normal effective weight.
    #[default]
    Normal,
    /// The bridge stopped (no mint, no redemption): target `halted_weight` (default 0).
    BridgeHalted,
    /// The asset trades away from its token: target `depeg_weight` (default weight / 2).
    Depegged,
}

impl AssetStatus {
    pub const ALL: [AssetStatus; 3] = [AssetStatus::Normal, AssetStatus::BridgeHalted, AssetStatus::Depegged];

    /// The status's name in events, effects and the dump.
    pub fn name(self) -> &'static str {
        match self {
            AssetStatus::Normal => "normal",
            AssetStatus::BridgeHalted => "bridge_halted",
            AssetStatus::Depegged => "depegged",
        }
    }

    pub fn from_name(name: &str) -> Option<AssetStatus> {
        AssetStatus::ALL.into_iter().find(|s| s.name() == name)
    }

    fn code(self) -> u8 {
        self as u8
    }
}

/// A running move of an asset's effective weight toward its status's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightPhase {
    /// The effective weight when the status changed.
    pub start: Rate,
    pub target: Rate,
    pub start_ts: u64,
    pub end_ts: u64,
    /// Steps applied so far, 0..WEIGHT_STEPS.
    pub steps: u64,
}

/// An asset's chain, token, haircut, per-status weights and status (state: hashed, snapshotted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRisk {
    pub chain: Option<Box<str>>,
    pub token: Option<Box<str>>,
    /// `weight` of the config.
    pub configured_weight: Rate,
    pub bridge_haircut: Rate,
    pub halted_weight: Rate,
    pub depeg_weight: Rate,
    pub weight_phase_ms: u64,
    pub status: AssetStatus,
    pub phase: Option<WeightPhase>,
}

/// Pure leaf: `weight` x (1 - haircut), rounded down.
pub fn haircut_weight(weight: Rate, haircut: Rate) -> Rate {
    debug_assert!(weight.is_fraction() && !haircut.is_negative() && haircut < Rate::ONE);
    let kept = i128::from(Rate::ONE_RAW - haircut.raw());
    Rate::from_raw((i128::from(weight.raw()) * kept / i128::from(Rate::ONE_RAW)) as i64)
}

/// Pure leaf: the effective weight at step `k` of a phase from `start` to `target`: the linear
/// interpolation rounded down, (start x (STEPS - k) + target x k) / STEPS (weights are not
/// negative, so integer division rounds down: against the account, whichever way it moves).
pub fn weight_at_step(start: Rate, target: Rate, k: u64) -> Rate {
    debug_assert!(k <= WEIGHT_STEPS);
    let (s, t, k) = (i128::from(start.raw()), i128::from(target.raw()), i128::from(k));
    let steps = i128::from(WEIGHT_STEPS);
    Rate::from_raw(((s * (steps - k) + t * k) / steps) as i64)
}

/// Pure leaf: the effective weight of `phase` at engine time `ts` and the step count, or `None`
/// when no step is due (step k of [`WEIGHT_STEPS`] is due once k/STEPS of the span has passed).
pub fn step(phase: &WeightPhase, ts: u64) -> Option<(Rate, u64)> {
    let k = crate::phase_in::due_step(phase.start_ts, phase.end_ts, phase.steps, ts)?;
    if k == WEIGHT_STEPS {
        return Some((phase.target, WEIGHT_STEPS));
    }
    Some((weight_at_step(phase.start, phase.target, k), k))
}

impl AssetRisk {
    /// The risk fields of a configured asset, status normal.
    pub fn of(config: &AssetConfig) -> AssetRisk {
        AssetRisk {
            chain: config.chain.as_deref().map(Into::into),
            token: config.token.as_deref().map(Into::into),
            configured_weight: config.weight,
            bridge_haircut: config.bridge_haircut,
            halted_weight: config.halted_weight,
            depeg_weight: config.depeg_weight,
            weight_phase_ms: config.weight_phase_ms,
            status: AssetStatus::Normal,
            phase: None,
        }
    }

    /// The effective weight while normal: weight x (1 - bridge_haircut), rounded down.
    pub fn normal_weight(&self) -> Rate {
        self.target_weight(AssetStatus::Normal)
    }

    /// The effective weight `status` phases to.
    pub fn target_weight(&self, status: AssetStatus) -> Rate {
        let base = match status {
            AssetStatus::Normal => self.configured_weight,
            AssetStatus::BridgeHalted => self.halted_weight,
            AssetStatus::Depegged => self.depeg_weight,
        };
        haircut_weight(base, self.bridge_haircut)
    }

    /// Whether anything differs from a plain asset of the same weight (then the state hash
    /// carries the `asset-status-v1` block).
    pub fn used(&self) -> bool {
        self.chain.is_some()
            || self.token.is_some()
            || !self.bridge_haircut.is_zero()
            || !self.halted_weight.is_zero()
            || self.depeg_weight != crate::config::default_depeg_weight(self.configured_weight)
            || self.weight_phase_ms != crate::config::DEFAULT_WEIGHT_PHASE_MS
            || self.status != AssetStatus::Normal
            || self.phase.is_some()
    }

    /// The configuration bounds, for a snapshot's content.
    pub(crate) fn check(&self) -> Result<(), String> {
        let w = self.configured_weight;
        let ok = w.is_fraction()
            && !self.bridge_haircut.is_negative()
            && self.bridge_haircut < Rate::ONE
            && [self.halted_weight, self.depeg_weight].iter().all(|x| !x.is_negative() && *x <= w)
            && self.phase.is_none_or(|p| p.start.is_fraction() && p.target.is_fraction() && p.start_ts <= p.end_ts);
        if ok {
            Ok(())
        } else {
            Err("weights, haircut or weight phase out of bounds".into())
        }
    }

    pub(crate) fn encode(&self, sink: &mut impl crate::hash::Sink) {
        for label in [&self.chain, &self.token] {
            match label {
                None => sink.u8(0),
                Some(label) => {
                    sink.u8(1);
                    sink.str(label);
                }
            }
        }
        for rate in [self.configured_weight, self.bridge_haircut, self.halted_weight, self.depeg_weight] {
            sink.i64(rate.raw());
        }
        sink.u64(self.weight_phase_ms);
        sink.u8(self.status.code());
        match &self.phase {
            None => sink.u8(0),
            Some(phase) => {
                sink.u8(1);
                sink.i64(phase.start.raw());
                sink.i64(phase.target.raw());
                sink.u64(phase.start_ts);
                sink.u64(phase.end_ts);
                sink.u64(phase.steps);
            }
        }
    }
}

impl Engine {
    /// An `asset_status` event: record the status and start the move of the effective weight to
    /// its target. No weight moves here; a repeat of the current status changes nothing.
    pub(crate) fn asset_status(
        &mut self,
        seq: u64,
        update: &AssetStatusUpdate,
        out: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let id = match self.asset_ref(&update.asset)? {
            AssetRef::Other(id) => id,
            AssetRef::Settlement => {
                return Err(Error::InvalidFieldType {
                    field: "asset".into(),
                    expected: "a collateral asset other than the settlement asset (it has no status)",
                })
            }
        };
        let asset = &mut self.assets[id.0 as usize];
        let previous = asset.risk.status;
        if update.status == previous {
            return Ok(());
        }
        let target = asset.risk.target_weight(update.status);
        let end_ts = update.ts.saturating_add(asset.risk.weight_phase_ms);
        let phase = (target != asset.weight).then_some(WeightPhase {
            start: asset.weight,
            target,
            start_ts: update.ts,
            end_ts,
            steps: 0,
        });
        let was_running = asset.risk.phase.is_some();
        asset.risk.status = update.status;
        asset.risk.phase = phase;
        match (was_running, phase.is_some()) {
            (false, true) => self.weight_phases += 1,
            (true, false) => self.weight_phases -= 1,
            _ => {}
        }
        let asset = &self.assets[id.0 as usize];
        let plan = match phase {
            Some(_) => format!("effective weight {} moves to {target} by ts {end_ts}", asset.weight),
            None => format!("effective weight {} is already the target", asset.weight),
        };
        let message = format!(
            "asset {} ({} on {}): {} -> {}; {plan}",
            asset.name,
            asset.risk.token.as_deref().unwrap_or(&asset.name),
            asset.risk.chain.as_deref().unwrap_or("its home chain"),
            previous.name(),
            update.status.name(),
        );
        let market = self.markets[asset.index_market.0 as usize].name.to_string();
        out.emit(seq, update.ts, EffectKind::Alert { alert: "asset_status".into(), market, message });
        Ok(())
    }

    /// Apply the weight steps due at engine time `ts` (after a clock-advancing event other than
    /// `asset_status`): each moved weight emits `asset_weight` and requeues the asset's holders.
    pub(crate) fn step_weight_phases(&mut self, seq: u64, ts: u64, out: &mut Vec<Effect>) {
        if self.weight_phases == 0 {
            return;
        }
        for i in 0..self.assets.len() {
            let asset = &mut self.assets[i];
            let Some(phase) = asset.risk.phase.as_mut() else { continue };
            let Some((weight, steps)) = step(phase, ts) else { continue };
            debug_assert!(weight.is_fraction(), "a step stays between two weights in [0, 1]");
            let (low, high) = (phase.start.min(phase.target), phase.start.max(phase.target));
            debug_assert!(low <= weight && weight <= high, "a step never overshoots the phase's ends");
            phase.steps = steps;
            let target = phase.target;
            if steps >= WEIGHT_STEPS {
                asset.risk.phase = None;
                self.weight_phases -= 1;
            }
            asset.weight = weight;
            let kind = EffectKind::AssetWeight {
                asset: asset.name.to_string(),
                status: asset.risk.status.name().to_string(),
                weight,
                target_weight: target,
            };
            let market = asset.index_market;
            out.emit(seq, ts, kind);
            self.risk.asset_weight_changed(market);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> Rate {
        Rate::parse(text).unwrap()
    }

    #[test]
    fn haircut_and_steps_round_down() {
        assert_eq!(haircut_weight(rate("0.95"), rate("0.02")), rate("0.931"));
        assert_eq!(haircut_weight(Rate::from_raw(3), rate("0.5")), Rate::from_raw(1));
        let phase = WeightPhase { start: rate("0.931"), target: Rate::ZERO, start_ts: 0, end_ts: 3_200, steps: 0 };
        assert_eq!(step(&phase, 99), None, "nothing before 1/32 of the span");
        // 0.931 x 31 / 32 = 0.90190625 (exact); 0.931 x 16 / 32 = 0.4655.
        assert_eq!(step(&phase, 100), Some((rate("0.90190625"), 1)));
        assert_eq!(step(&phase, 1_650), Some((rate("0.4655"), 16)));
        assert_eq!(step(&phase, 3_200), Some((Rate::ZERO, WEIGHT_STEPS)));
        let up = WeightPhase { start: Rate::ZERO, target: Rate::from_raw(33), start_ts: 0, end_ts: 32, steps: 0 };
        assert_eq!(step(&up, 1), Some((Rate::from_raw(1), 1)), "33 / 32 rounds down");
        let down = WeightPhase { start: Rate::from_raw(33), target: Rate::ZERO, start_ts: 0, end_ts: 32, steps: 0 };
        assert_eq!(step(&down, 1), Some((Rate::from_raw(31), 1)), "33 x 31 / 32 rounds down");
    }

    #[test]
    fn steps_are_bounded_and_monotone() {
        let phase = WeightPhase { start: rate("0.9"), target: rate("0.1"), start_ts: 1_000, end_ts: 65_000, steps: 0 };
        let mut last = phase.start;
        for ts in (1_000..66_000).step_by(977) {
            if let Some((w, k)) = step(&phase, ts) {
                assert!(w <= last, "moves one way");
                let moved = i128::from(phase.start.raw() - w.raw());
                let bound =
                    i128::from(phase.start.raw() - phase.target.raw()) * i128::from(ts.min(65_000) - 1_000) / 64_000;
                assert!(moved <= bound + 1, "bounded by the elapsed share (+1 raw of rounding) at {ts}: k {k}");
                last = w;
            }
        }
        assert_eq!(last, phase.target);
    }

    #[test]
    fn status_names_round_trip() {
        for status in AssetStatus::ALL {
            assert_eq!(AssetStatus::from_name(status.name()), Some(status));
        }
        assert_eq!(AssetStatus::from_name("halted"), None);
    }
}
