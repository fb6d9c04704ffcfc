//! Portfolio margin: an opted-in account's requirement is the worst loss over a grid of joint
//! price scenarios, so that correlated positions offset each other, with floors.
//!
//! **Legs.** The account's exposure per market: its position there (valued at the mark) and the
//! weighted collateral indexed on it (valued at the index): `value_m` = size x mark + W x index.
//!
//! **Scenarios.** Every leg moves by the same scenario: a grid of `pm_buckets` points spread
//! evenly (exactly) over [-pm_range, +pm_range] of its own market, then the extended table
//! ([`EXTENDED_MOVES`]: -66%, -33%, +50%, +100%, +200%, +300%, +400%, +500%), each weighted
//! min(1, pm_range / |move|). A leg's loss in a scenario is `-value x move x weight`. Every leg
//! the engine holds is linear in its price, so move x weight is exactly the move clamped to
//! [-pm_range, +pm_range], and a grid point inside the range loses a fraction of what an end
//! loses: only the two ends and the clamped jumps can be worst ([`scenarios`]); `pm_buckets`
//! changes nothing for these legs (it will for options). When every leg's range is at most 33%,
//! every scenario is a common fraction of the ranges and S = Σ |V r|, J = |Σ V r| exactly.
//!
//! **Requirement** (all exact, in 256-bit integers, rounded up once):
//!
//! ```text
//! S = Σ_m max_s loss(m, s)            standalone: each market at its own worst scenario
//! J = max_s Σ_m loss(m, s)            joint: every market in the same scenario (J <= S)
//! ρ = the smallest product of two markets' pm_correlation (0 with a single market)
//! L = ρ J + (1 - ρ) S                 the portfolio loss
//! T = Σ standalone tier MM of the positions
//! MM = max(mm_factor x L,  T - mm_factor x (S - L),  floor x T)
//! IM = MM x im_factor
//! ```
//!
//! The second term is the tier requirement less the offset the scenarios credit (`S - L` =
//! ρ (S - J)), so an account without offsets (S = J, or ρ = 0) never needs less than under tiers;
//! the third is the floor. `mm_factor`, `im_factor` and `floor` are the largest of the account's
//! markets'. Equity is the tiered model's (`margin::equity_figures`).
//!
//! **Risk index box** ([`safe_box`]): a box of relative half-width 2^-k around each leg's mark
//! and index, certified by exact bounds: equity falls by at most Σ D_m, each loss moves by at
//! most D_m x reach_m (D_m = (|size| + W) x band width, reach_m = the largest |move| x weight),
//! and T is at most its value at the band tops (tier MM never falls as the mark rises). A
//! certified box of k in 1..[`MAX_SHIFT`] is kept, found from one probe (the largest, or one
//! step smaller); if none is, a point box.

use crate::config::PortfolioParams;
use crate::engine::Engine;
use crate::error::Error;
use crate::event::MarginModelChoice;
use crate::margin::{self, Health, FINE_PER_QUOTE};
use crate::num::{Overflow, Price, Quote, Rate};
use crate::risk_index::band::{Band, Unbandable};
use crate::state::{Account, Asset, MarginModel, Market, MarketId};
use ethnum::I256;

/// The extended table (Rate raw: 10^-8): -66%, -33%, +50%, +100%, +200%, +300%, +400%, +500%.
pub const EXTENDED_MOVES: [i64; 8] =
    [-66_000_000, -33_000_000, 50_000_000, 100_000_000, 200_000_000, 300_000_000, 400_000_000, 500_000_000];

/// Most scenarios of one account.
const MAX_SCENARIOS: usize = 2 + EXTENDED_MOVES.len();

/// The smallest |move| of the extended table: when every leg's range is at most this, every
/// scenario moves every leg by a common fraction of its range and the requirement has a closed
/// form (see [`Portfolio::of`]).
pub(crate) const SMALLEST_JUMP: i64 = 33_000_000;

/// Smallest box tried by the risk index: a half-width of 2^-MAX_SHIFT of the mark.
pub(crate) const MAX_SHIFT: u32 = 24;

const ONE: i128 = Rate::ONE_RAW as i128;

fn pow10(n: u32) -> I256 {
    match n {
        0..=38 => I256::from(10i128.pow(n)),
        _ => I256::from(10i128.pow(n - 38)) * I256::from(10i128.pow(38)),
    }
}

/// One market's part of the portfolio.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Leg {
    pub market: MarketId,
    pub mark: i64,
    pub index: i64,
    /// Signed position size raw (0 without a position).
    pub size: i64,
    /// Σ amount raw x weight raw of the collateral indexed here (Fine per raw index unit).
    pub weighted: I256,
    /// What the scenarios move: size x mark + weighted x index (Fine).
    pub value: I256,
    /// The position's standalone tier MM (Fine, exact).
    pub tier_mm: I256,
    /// Largest |move| x weight over the scenarios (10^-16).
    pub reach: i128,
}

/// The account-wide knobs (Rate raw).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Knobs {
    pub rho: i128,
    pub mm_factor: i128,
    pub im_factor: i128,
    pub floor: i128,
}

/// The requirement's parts at current prices.
#[derive(Clone, Debug)]
pub struct Portfolio {
    pub(crate) legs: Vec<Leg>,
    pub(crate) knobs: Knobs,
    /// S (10^-40).
    pub standalone_loss: I256,
    /// J (10^-40).
    pub joint_loss: I256,
    /// T (Fine: 10^-24).
    pub tier_mm: I256,
}

/// The moves (Rate raw, signed) and weights (Rate raw) of the scenarios of a market that can be
/// a leg's worst: the two ends of its grid, then the extended table. Returns how many.
///
/// The grid's inner points are exact fractions t of the range (t = (2k - steps) / steps), and
/// every leg is linear in its price, so a joint inner point loses exactly t x what the joint +1
/// end loses (or |t| x the -1 end): it never exceeds the worse end, nor does a single leg's. The
/// zero move is covered by the floor of J and S at 0.
fn scenarios(params: &PortfolioParams, out: &mut [(i64, i64); MAX_SCENARIOS]) -> usize {
    let range = i128::from(params.pm_range.raw());
    out[0] = (-range as i64, ONE as i64);
    out[1] = (range as i64, ONE as i64);
    // Weighted min(1, range / |move|): for a leg linear in its price, move x weight is the move
    // clamped to the range, exactly (no rounding).
    for (i, &mv) in EXTENDED_MOVES.iter().enumerate() {
        let clamped = i128::from(mv).clamp(-range, range);
        out[2 + i] = (clamped as i64, ONE as i64);
    }
    2 + EXTENDED_MOVES.len()
}

/// The account's legs, sorted by market. `None` when a position's market has no mark.
fn legs(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<Vec<Leg>> {
    let fine = I256::from(FINE_PER_QUOTE);
    let mut legs: Vec<Leg> = Vec::with_capacity(account.positions.len() + account.collateral.len());
    for p in &account.positions {
        let market = &markets[p.market.0 as usize];
        let mark = market.mark_price?;
        legs.push(Leg {
            market: p.market,
            mark: mark.raw(),
            index: market.index_price.unwrap_or(mark).raw(),
            size: p.size.raw(),
            weighted: I256::ZERO,
            value: I256::from(p.size.mul_price(mark).raw()) * fine,
            tier_mm: margin::position_mm_fine(&market.params, p.size, mark),
            reach: 0,
        });
    }
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        let market = &markets[asset.index_market.0 as usize];
        let Some(index) = market.index_price else { continue }; // counts zero (see `margin`)
        let weighted = I256::from(amount.raw()) * I256::from(asset.weight.raw());
        match legs.iter_mut().find(|l| l.market == asset.index_market) {
            Some(leg) => {
                leg.weighted += weighted;
                leg.value += weighted * I256::from(index.raw());
            }
            None => legs.push(Leg {
                market: asset.index_market,
                mark: market.mark_price.unwrap_or(index).raw(),
                index: index.raw(),
                size: 0,
                weighted,
                value: weighted * I256::from(index.raw()),
                tier_mm: I256::ZERO,
                reach: 0,
            }),
        }
    }
    legs.sort_unstable_by_key(|l| l.market);
    Some(legs)
}

/// The two smallest of the values pushed (the factor loadings of an account's legs, whose
/// product is ρ), without a buffer or a sort.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TwoLowest {
    low: i128,
    second: i128,
    count: usize,
}

impl Default for TwoLowest {
    fn default() -> TwoLowest {
        TwoLowest { low: i128::MAX, second: i128::MAX, count: 0 }
    }
}

impl TwoLowest {
    #[inline(always)]
    pub(crate) fn push(&mut self, value: i128) {
        self.count += 1;
        if value < self.low {
            self.second = self.low;
            self.low = value;
        } else if value < self.second {
            self.second = value;
        }
    }

    /// The smallest and second smallest, once two values were pushed.
    pub(crate) fn pair(self) -> Option<(i128, i128)> {
        (self.count >= 2).then_some((self.low, self.second))
    }
}

/// The knobs of an account with these legs: the most buckets, the smallest pair correlation
/// (rounded down), the largest factors and floor.
fn knobs(legs: &[Leg], markets: &[Market]) -> Knobs {
    let params = |l: &Leg| &markets[l.market.0 as usize].params.portfolio;
    let default = PortfolioParams::default();
    let max = |f: fn(&PortfolioParams) -> i128| legs.iter().map(|l| f(params(l))).max().unwrap_or(f(&default));
    let mut loadings = TwoLowest::default();
    legs.iter().for_each(|l| loadings.push(i128::from(params(l).pm_correlation.raw())));
    let rho = loadings.pair().map_or(0, |(a, b)| a * b / ONE);
    Knobs {
        rho,
        mm_factor: max(|p| i128::from(p.pm_mm_factor.raw())),
        im_factor: max(|p| i128::from(p.pm_im_factor.raw())),
        floor: max(|p| i128::from(p.pm_floor.raw())),
    }
}

/// Pure: max(mm_factor x (ρ j + (1 - ρ) s), t - mm_factor x ρ x spread, floor x t) at 10^-56,
/// where s and j are losses at 10^-40, `spread` is S - J (10^-40) and t a tier MM (Fine). With
/// the exact S, J, S - J and T it is the requirement; with upper bounds of s, j, t and a lower
/// bound of the spread it bounds the requirement from above (each term is monotone).
pub(crate) fn requirement_of(s: I256, j: I256, spread: I256, t: I256, k: &Knobs) -> Option<I256> {
    let (scenario, offset, floor) = terms_of(s, j, spread, t, k)?;
    Some(scenario.max(offset).max(floor))
}

/// Pure: the three terms of [`requirement_of`] (10^-56).
fn terms_of(s: I256, j: I256, spread: I256, t: I256, k: &Knobs) -> Option<(I256, I256, I256)> {
    let (rho, mm_factor) = (I256::from(k.rho), I256::from(k.mm_factor));
    let loss = rho.checked_mul(j)?.checked_add(I256::from(ONE - k.rho).checked_mul(s)?)?; // 10^-48
    let scenario = mm_factor.checked_mul(loss)?;
    let credit = mm_factor.checked_mul(rho)?.checked_mul(spread)?;
    let offset = t.checked_mul(pow10(32))?.checked_sub(credit)?;
    let floor = I256::from(k.floor).checked_mul(t)?.checked_mul(pow10(24))?;
    Some((scenario, offset, floor))
}

impl Portfolio {
    /// The parts of `account`'s requirement at the current prices.
    pub fn of(account: &Account, assets: &[Asset], markets: &[Market]) -> Result<Portfolio, Overflow> {
        let mut legs = legs(account, assets, markets).ok_or(Overflow)?;
        let knobs = knobs(&legs, markets);
        let closed = legs.iter().all(|l| markets[l.market.0 as usize].params.portfolio.pm_range.raw() <= SMALLEST_JUMP);
        let (mut standalone, mut tier_mm) = (I256::ZERO, I256::ZERO);
        let joint = if closed {
            // Every scenario moves leg m by t x its range with t in [-1, 1] common to all legs,
            // and t = ±1 are scenarios: S = Σ |V r|, J = |Σ V r|.
            let mut signed = I256::ZERO;
            for leg in &mut legs {
                let factor = i128::from(markets[leg.market.0 as usize].params.portfolio.pm_range.raw()) * ONE;
                let at_end = leg.value * I256::from(factor); // the loss at t = -1 (10^-40)
                standalone += at_end.abs();
                signed += at_end;
                tier_mm += leg.tier_mm;
                leg.reach = factor;
            }
            signed.abs()
        } else {
            let mut totals = [I256::ZERO; MAX_SCENARIOS];
            let mut table = [(0i64, 0i64); MAX_SCENARIOS];
            let mut count = 0;
            for leg in &mut legs {
                count = scenarios(&markets[leg.market.0 as usize].params.portfolio, &mut table);
                let mut worst = I256::ZERO; // the zero move is a grid point
                for (total, &(mv, weight)) in totals.iter_mut().zip(&table[..count]) {
                    let factor = i128::from(mv) * i128::from(weight); // below 2^56
                    let loss = -(leg.value * I256::from(factor));
                    worst = worst.max(loss);
                    *total += loss;
                    leg.reach = leg.reach.max(factor.abs());
                }
                standalone += worst;
                tier_mm += leg.tier_mm;
            }
            totals[..count].iter().copied().max().unwrap_or(I256::ZERO).max(I256::ZERO)
        };
        debug_assert!(joint <= standalone, "the joint loss never exceeds the standalone sum");
        Ok(Portfolio { legs, knobs, standalone_loss: standalone, joint_loss: joint, tier_mm })
    }

    /// The exact maintenance margin at 10^-56.
    pub fn requirement(&self) -> Result<I256, Overflow> {
        let (s, j) = (self.standalone_loss, self.joint_loss);
        requirement_of(s, j, s - j, self.tier_mm, &self.knobs).ok_or(Overflow)
    }

    /// The three terms of MM (scenarios, tiers less the offset, floor), exact at 10^-56.
    pub fn terms(&self) -> Option<(I256, I256, I256)> {
        let (s, j) = (self.standalone_loss, self.joint_loss);
        terms_of(s, j, s - j, self.tier_mm, &self.knobs)
    }

    /// ρ (Rate raw) used for this account.
    pub fn correlation(&self) -> Rate {
        Rate::from_raw(self.knobs.rho as i64)
    }
}

/// `value` / 10^`digits`, rounded up (value >= 0), as a Quote.
pub(crate) fn ceil_quote(value: I256, digits: u32) -> Result<Quote, Overflow> {
    let divisor = pow10(digits);
    let mut q = value / divisor; // one 256-bit division; the remainder by a multiplication
    if value - q * divisor > I256::ZERO {
        q += I256::ONE;
    }
    i128::try_from(q).map(Quote::from_raw).map_err(|_| Overflow)
}

/// The health of a portfolio-margined account: the tiered model's equity figures, MM and IM
/// from the scenarios (each rounded up).
pub(crate) fn health(account: &Account, assets: &[Asset], markets: &[Market]) -> Result<Health, Overflow> {
    health_and_parts(account, assets, markets).map(|(health, _, _)| health)
}

/// [`health`], with the parts it computed (the portfolio and the exact equity, Fine) for the
/// risk index's box.
pub(crate) fn health_and_parts(
    account: &Account,
    assets: &[Asset],
    markets: &[Market],
) -> Result<(Health, Portfolio, I256), Overflow> {
    let figures = margin::equity_figures(account, assets, markets)?;
    let portfolio = Portfolio::of(account, assets, markets)?;
    let mm = portfolio.requirement()?;
    let im = mm.checked_mul(I256::from(portfolio.knobs.im_factor)).ok_or(Overflow)?;
    let health = Health {
        equity: figures.equity,
        unrealized_pnl: figures.unrealized_pnl,
        equity_without_profit: figures.equity_without_profit,
        maintenance_margin: ceil_quote(mm, 40)?,
        initial_margin: ceil_quote(im, 48)?,
    };
    Ok((health, portfolio, figures.exact_fine))
}

/// One leg's band at shift `k`: its mark and index widened by mark / 2^k on each side (the low
/// edge at least one raw unit).
fn band_at(leg: &Leg, k: u32) -> (i64, i64) {
    let half = leg.mark >> k;
    let lo = leg.mark.min(leg.index).saturating_sub(half).max(1);
    let hi = leg.mark.max(leg.index).saturating_add(half);
    (lo, hi)
}

/// Whether the box at shift `k` is certified: an exact lower bound of equity minus an exact
/// upper bound of MM over it is at least two Quote units (equity rounds down and MM up, each by
/// less than one).
fn certified(p: &Portfolio, equity_fine: I256, k: u32, markets: &[Market]) -> Option<bool> {
    certification_margin(p, equity_fine, k, markets).map(|m| m >= I256::ZERO)
}

/// The bound of [`certified`] less its slack (10^-56): certified when it is at least 0.
fn certification_margin(p: &Portfolio, equity_fine: I256, k: u32, markets: &[Market]) -> Option<I256> {
    let fine = I256::from(FINE_PER_QUOTE);
    let (mut drop, mut eps, mut tier_hi) = (I256::ZERO, I256::ZERO, I256::ZERO);
    for leg in &p.legs {
        let (lo, hi) = band_at(leg, k);
        let width = I256::from(hi - lo);
        let moved = I256::from(i128::from(leg.size).abs()) * width * fine + leg.weighted * width; // Fine
        drop = drop.checked_add(moved)?;
        eps = eps.checked_add(moved.checked_mul(I256::from(leg.reach))?)?;
        if leg.size != 0 {
            let params = &markets[leg.market.0 as usize].params;
            tier_hi += margin::position_mm_fine(params, crate::num::Size::from_raw(leg.size), Price::from_raw(hi));
        }
    }
    let (s, j) = (p.standalone_loss, p.joint_loss);
    let spread = (s - j).checked_sub(eps.checked_mul(I256::from(2))?)?.max(I256::ZERO);
    let upper = requirement_of(s.checked_add(eps)?, j.checked_add(eps)?, spread, tier_hi, &p.knobs)?;
    let floor = equity_fine.checked_sub(drop)?.checked_mul(pow10(32))?;
    floor.checked_sub(upper)?.checked_sub(I256::from(2) * pow10(40))
}

/// The box shift a probe starts from: a half-width of 1/16 of the mark.
const PROBE_SHIFT: u32 = 4;

/// The smallest shift in [1, MAX_SHIFT] whose box is certified, given that MAX_SHIFT's is (with
/// margin `at_max`), or a shift at most one above it: certification margins fall about in
/// proportion to the box's width (2^-k of the mark), so one probe estimates the crossing, and
/// every shift returned has been certified. At most MAX_SHIFT evaluations; usually three.
fn smallest_certified_shift(at_max: I256, margin: impl Fn(u32) -> Option<I256>) -> u32 {
    match margin(PROBE_SHIFT) {
        Some(m) if m >= I256::ZERO => {
            let mut k = PROBE_SHIFT;
            while k > 1 && margin(k - 1).is_some_and(|m| m >= I256::ZERO) {
                k -= 1;
            }
            k
        }
        probe => {
            // m(k) ≈ at_max − lost × 2^(PROBE − k), with lost = at_max − m(PROBE): certified from
            // 2^(k − PROBE) ≥ lost / at_max.
            let estimate = match probe {
                Some(m) if at_max > I256::ZERO => {
                    let ratio = (at_max - m) / at_max;
                    PROBE_SHIFT + (256 - ratio.leading_zeros()).min(MAX_SHIFT)
                }
                _ => MAX_SHIFT,
            };
            let mut k = estimate.clamp(PROBE_SHIFT + 1, MAX_SHIFT);
            if margin(k).is_some_and(|m| m >= I256::ZERO) {
                // One step toward a larger box when that certifies too.
                if k > PROBE_SHIFT + 1 && margin(k - 1).is_some_and(|m| m >= I256::ZERO) {
                    k -= 1;
                }
                return k;
            }
            while k < MAX_SHIFT && margin(k).is_none_or(|m| m < I256::ZERO) {
                k += 1;
            }
            k
        }
    }
}

/// The risk index's box for a portfolio-margined account that is not below maintenance now
/// (the caller has just checked it exactly): the largest certified box, else a point box (mark
/// = index in every leg), else [`Unbandable`]. Collateral whose index market has no price yet
/// would start to count (and move the scenarios) when it gets one, which no band sees: such an
/// account is [`Unbandable`].
/// `parts` are the account's portfolio and exact equity (Fine) at the current prices
/// ([`health_and_parts`]).
pub(crate) fn safe_box(
    account: &Account,
    assets: &[Asset],
    markets: &[Market],
    parts: (&Portfolio, I256),
    bands: &mut Vec<Band>,
) -> Result<(), Unbandable> {
    bands.clear();
    if account
        .collateral
        .iter()
        .any(|(a, _)| markets[assets[a.0 as usize].index_market.0 as usize].index_price.is_none())
    {
        return Err(Unbandable);
    }
    let (portfolio, equity) = parts;
    let margin = |k: u32| certification_margin(portfolio, equity, k, markets);
    let at_max = margin(MAX_SHIFT).filter(|m| *m >= I256::ZERO);
    let Some(at_max) = at_max else {
        for leg in &portfolio.legs {
            if leg.mark != leg.index {
                return Err(Unbandable);
            }
            bands.push(Band { market: leg.market, lo: Some(leg.mark), hi: Some(leg.mark) });
        }
        return Ok(());
    };
    let shift = smallest_certified_shift(at_max, margin);
    debug_assert!(certified(portfolio, equity, shift, markets) == Some(true), "the box is certified");
    for leg in &portfolio.legs {
        let (low, high) = band_at(leg, shift);
        bands.push(Band { market: leg.market, lo: Some(low), hi: Some(high) });
    }
    Ok(())
}

/// The mark of `market_id` at which `account` (portfolio-margined) falls below maintenance,
/// every other price held and the market's index moved with its mark: found by bisection on the
/// side where the account loses as the price moves (both when its equity does not move with
/// it), the crossing nearest the mark, rounded toward the mark. `None` where none is found
/// (at most 64 steps per side, up to 16 x the mark).
pub(crate) fn liquidation_price(
    account: &Account,
    market_id: MarketId,
    assets: &[Asset],
    markets: &[Market],
) -> Option<Price> {
    let mark = markets[market_id.0 as usize].mark_price?.raw();
    let mut table = markets.to_vec();
    let mut below = |price: i64| -> bool {
        let market = &mut table[market_id.0 as usize];
        let index = markets[market_id.0 as usize].index_price.map_or(price, |i| {
            (i128::from(i.raw()) + i128::from(price) - i128::from(mark)).clamp(1, i128::from(i64::MAX)) as i64
        });
        market.mark_price = Some(Price::from_raw(price));
        market.index_price = Some(Price::from_raw(index));
        crate::margin::health(account, assets, &table).is_ok_and(|h| h.below_maintenance())
    };
    if below(mark) {
        return Some(Price::from_raw(mark));
    }
    let size = account.size(market_id).raw();
    let down = if size >= 0 && below(1) { Some(bisect(1, mark, &mut below, true)) } else { None };
    let top = mark.saturating_mul(16);
    let up = if size <= 0 && below(top) { Some(bisect(mark, top, &mut below, false)) } else { None };
    let nearest = match (down, up) {
        (Some(d), Some(u)) => Some(if mark - d <= u - mark { d } else { u }),
        (d, u) => d.or(u),
    };
    nearest.map(Price::from_raw)
}

/// Between `healthy` (not below) and `unhealthy` (below), the unhealthy price nearest the
/// healthy one: below `mark` (`falling`) the highest, above it the lowest. 64 steps bound it.
fn bisect(a: i64, b: i64, below: &mut impl FnMut(i64) -> bool, falling: bool) -> i64 {
    // falling: below(a) and not below(b), a < b; else not below(a) and below(b).
    let (mut lo, mut hi) = (a, b);
    for _ in 0..64 {
        if hi - lo <= 1 {
            break;
        }
        let mid = lo + (hi - lo) / 2;
        match (below(mid), falling) {
            (true, true) | (false, false) => lo = mid,
            _ => hi = mid,
        }
    }
    if falling {
        lo
    } else {
        hi
    }
}

impl Engine {
    /// `margin_model`: the account's requirement from now on is defined by `choice.model`. The
    /// account must exist, must not depend on a frozen market, and must meet its initial margin
    /// under the new model without counting paper profit (the rule of a withdrawal), so that
    /// the switch itself never puts it below maintenance.
    pub(crate) fn margin_model(&mut self, choice: &MarginModelChoice) -> Result<(), Error> {
        let id = self.account_id(&choice.account)?;
        let account = &self.accounts[id.0 as usize];
        if account.margin_model == choice.model {
            return Ok(());
        }
        if let Some(frozen) = self.frozen_dependency_at(account, choice.ts) {
            let market = self.markets[frozen.0 as usize].name.to_string();
            return Err(Error::MarketFrozen { market, what: "changing the margin model" });
        }
        let mut after = account.clone();
        after.margin_model = choice.model;
        let health = self.health_of(&after)?;
        if health.equity_without_profit < health.initial_margin {
            return Err(Error::MarginModelRefused {
                account: choice.account.clone(),
                model: choice.model.name(),
                equity_without_profit: health.equity_without_profit,
                initial_margin: health.initial_margin,
            });
        }
        self.account_mut(id).margin_model = choice.model;
        debug_assert!(self.accounts[id.0 as usize].margin_model == choice.model);
        Ok(())
    }

    /// Accounts under portfolio margin, sorted by name (for the dump, the API and the hash).
    pub fn portfolio_accounts(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.accounts.iter().filter(|a| a.margin_model == MarginModel::Portfolio).map(|a| &*a.name).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests;
