//! Margin: tiered maintenance margin, initial margin, equity and liquidation prices.
//!
//! Pure functions over the state. Exact values are computed at a common fine scale, `Fine` =
//! 10^-24 of the settlement asset (Quote raw x 10^8), in 256-bit integers, and rounded once:
//! - equity (and anything counted in the account's favour) rounds **down**;
//! - maintenance and initial margin round **up** (per position; an account's MM is the sum).
//!
//! So an account passes a check only if it passes it exactly. docs/concepts.md has the formulas.

use crate::config::{MarketParams, TierBasis, TierMode};
use crate::num::{ceil_div_1e16, div_1e8, Overflow, Price, Quote, Rate, Round, Size};
use crate::state::{Account, Asset, MarginModel, Market, MarketId};
use ethnum::I256;

/// 10^8: the factor between `Quote` raw (10^-16) and `Fine` (10^-24).
pub(crate) const FINE_PER_QUOTE: i128 = Rate::ONE_RAW as i128;

/// `a × b` in i128, `None` on overflow. The common shapes are decided by comparisons only: both
/// factors fit i64 (one 64 × 64 multiply), or one is below 2^27 (a rate, 10^8, a weight) and the
/// other below 2^99; anything else pays for `checked_mul` (a library call for i128).
#[inline]
pub(crate) fn mul_i128(a: i128, b: i128) -> Option<i128> {
    if let (Ok(x), Ok(y)) = (i64::try_from(a), i64::try_from(b)) {
        return Some(i128::from(x) * i128::from(y));
    }
    const SMALL: u128 = 1 << 27;
    const LARGE: u128 = 1 << 99;
    let (ua, ub) = (a.unsigned_abs(), b.unsigned_abs());
    if (ua < LARGE && ub < SMALL) || (ub < LARGE && ua < SMALL) {
        return Some(a * b);
    }
    a.checked_mul(b)
}

/// `a × b` in i128 for a 64-bit factor `b`, `None` when the product's magnitude reaches 2^127
/// (overflow, and the one product that is exactly i128::MIN): one 64 × 64 → 128 multiply of the
/// magnitudes when |a| < 2^64, else `checked_mul`.
#[inline]
pub(crate) fn mul_i128_i64(a: i128, b: i64) -> Option<i128> {
    let (ua, ub) = (a.unsigned_abs(), u128::from(b.unsigned_abs()));
    if let Ok(ua) = u64::try_from(ua) {
        let magnitude = i128::try_from(u128::from(ua) * ub).ok()?; // < 2^127 unless both near 2^64
        return Some(if (a < 0) != (b < 0) { -magnitude } else { magnitude });
    }
    a.checked_mul(i128::from(b))
}

fn fine_to_quote(fine: I256, round_up: bool) -> Result<Quote, Overflow> {
    if let Ok(narrow) = i128::try_from(fine) {
        let round = if round_up { Round::Up } else { Round::Down };
        return Ok(Quote::from_raw(div_1e8(narrow, round)));
    }
    let divisor = I256::from(FINE_PER_QUOTE);
    let mut q = fine / divisor;
    let r = fine - q * divisor;
    if r != I256::ZERO {
        if round_up && r > I256::ZERO {
            q += I256::ONE;
        } else if !round_up && r < I256::ZERO {
            q -= I256::ONE;
        }
    }
    i128::try_from(q).map(Quote::from_raw).map_err(|_| Overflow)
}

/// The exposure a tier table measures: |size| in size basis (Size raw), notional in notional
/// basis (Quote raw).
fn exposure_raw(params: &MarketParams, size: Size, mark: Price) -> i128 {
    let magnitude = i128::from(size.raw()).abs();
    match params.tier_basis {
        TierBasis::Size => magnitude,
        TierBasis::Notional => magnitude * i128::from(mark.raw()),
    }
}

/// Exact maintenance margin of one position, in `Fine` units.
pub fn position_mm_fine(params: &MarketParams, size: Size, mark: Price) -> I256 {
    match position_mm_fine_narrow(params, size, mark) {
        Some(fine) => I256::from(fine),
        None => position_mm_fine_wide(params, size, mark),
    }
}

/// [`position_mm_fine`] in i128 arithmetic: the same exact value, or `None` where an
/// intermediate product might not fit (then the 256-bit path decides).
pub(crate) fn position_mm_fine_narrow(params: &MarketParams, size: Size, mark: Price) -> Option<i128> {
    let x = exposure_raw(params, size, mark);
    let in_first = params.tiers.get(1).is_none_or(|next| x < next.from_raw);
    let weighted = match params.tier_mode {
        // Most positions lie in the first bracket: one product, both modes.
        _ if in_first => mul_i128(x, i128::from(params.tiers[0].mm_rate.raw()))?,
        TierMode::Marginal => {
            let mut weighted = 0i128;
            for (i, tier) in params.tiers.iter().enumerate() {
                if x <= tier.from_raw {
                    break;
                }
                let upper = params.tiers.get(i + 1).map_or(i128::MAX, |t| t.from_raw);
                let portion = x.min(upper) - tier.from_raw;
                weighted = weighted.checked_add(mul_i128(portion, i128::from(tier.mm_rate.raw()))?)?;
            }
            weighted
        }
        TierMode::Whole => {
            let tier = params.tiers.iter().rev().find(|t| x >= t.from_raw).unwrap_or(&params.tiers[0]);
            mul_i128(x, i128::from(tier.mm_rate.raw()))?
        }
    };
    match params.tier_basis {
        TierBasis::Size => mul_i128(weighted, i128::from(mark.raw())),
        TierBasis::Notional => Some(weighted),
    }
}

/// [`position_mm_fine`] in 256-bit arithmetic (cannot overflow).
fn position_mm_fine_wide(params: &MarketParams, size: Size, mark: Price) -> I256 {
    let x = exposure_raw(params, size, mark);
    let mut weighted = I256::ZERO; // sum of exposure x rate, in exposure raw x Rate raw
    match params.tier_mode {
        TierMode::Marginal => {
            for (i, tier) in params.tiers.iter().enumerate() {
                let upper = params.tiers.get(i + 1).map_or(i128::MAX, |t| t.from_raw);
                if x <= tier.from_raw {
                    break;
                }
                let portion = x.min(upper) - tier.from_raw;
                weighted += I256::from(portion) * I256::from(tier.mm_rate.raw());
            }
        }
        TierMode::Whole => {
            let tier = params.tiers.iter().rev().find(|t| x >= t.from_raw).unwrap_or(&params.tiers[0]);
            weighted = I256::from(x) * I256::from(tier.mm_rate.raw());
        }
    }
    match params.tier_basis {
        // |size| raw (1e-8) x rate raw (1e-8) x mark raw (1e-8) = 1e-24.
        TierBasis::Size => weighted * I256::from(mark.raw()),
        // notional raw (1e-16) x rate raw (1e-8) = 1e-24.
        TierBasis::Notional => weighted,
    }
}

/// Maintenance margin of one position, rounded up.
pub fn position_mm(params: &MarketParams, size: Size, mark: Price) -> Result<Quote, Overflow> {
    if let Some(fine) = position_mm_fine_narrow(params, size, mark) {
        return Ok(Quote::from_raw(div_1e8(fine, Round::Up)));
    }
    fine_to_quote(position_mm_fine_wide(params, size, mark), true)
}

/// Initial margin of one position: exact MM x im_factor, rounded up.
pub fn position_im(params: &MarketParams, size: Size, mark: Price) -> Result<Quote, Overflow> {
    let narrow =
        position_mm_fine_narrow(params, size, mark).and_then(|f| mul_i128(f, i128::from(params.im_factor.raw())));
    if let Some(fine) = narrow {
        return Ok(Quote::from_raw(ceil_div_1e16(fine)));
    }
    let fine = position_mm_fine_wide(params, size, mark) * I256::from(params.im_factor.raw()) / I256::ONE;
    let divisor = I256::from(FINE_PER_QUOTE) * I256::from(Rate::ONE_RAW as i128);
    let mut q = fine / divisor;
    if fine % divisor > I256::ZERO {
        q += I256::ONE;
    }
    i128::try_from(q).map(Quote::from_raw).map_err(|_| Overflow)
}

/// An account's margin picture at current marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Health {
    /// Collateral value (settlement balance + weighted other collateral) + unrealized PnL, rounded down.
    pub equity: Quote,
    /// Exact sum of unrealized PnL at mark.
    pub unrealized_pnl: Quote,
    /// Collateral value + min(0, unrealized PnL), rounded down: what withdrawals are judged on.
    pub equity_without_profit: Quote,
    /// Sum of per-position maintenance margins (each rounded up).
    pub maintenance_margin: Quote,
    /// Sum of per-position initial margins (each rounded up).
    pub initial_margin: Quote,
}

impl Health {
    pub fn below_maintenance(&self) -> bool {
        self.equity < self.maintenance_margin
    }
    pub fn below_initial(&self) -> bool {
        self.equity < self.initial_margin
    }
}

/// Weighted value of the account's non-settlement collateral, exact in `Fine` units. An asset
/// whose index market has no price yet counts for zero (in favour of solvency).
pub fn collateral_fine(account: &Account, assets: &[Asset], markets: &[Market]) -> I256 {
    let mut total = I256::from(account.settlement.raw()) * I256::from(FINE_PER_QUOTE);
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        if let Some(index) = markets[asset.index_market.0 as usize].index_price {
            let value = amount.mul_price(index).raw();
            total += I256::from(value) * I256::from(asset.weight.raw());
        }
    }
    total
}

/// Health of `account` at current marks: **the one exact definition** of an account's equity and
/// requirement, for every margin model (`Account::margin_model`). Every fast path elsewhere
/// (the quick verdicts below, the full scan's bounds, the risk index's boxes, liquidation sizing)
/// answers only for the models it is written for, agrees with this function wherever it answers,
/// and leaves every other account to it. Positions in a market without a mark are impossible
/// (trades need a mark), so every position is valued.
pub fn health(account: &Account, assets: &[Asset], markets: &[Market]) -> Result<Health, Overflow> {
    match account.margin_model {
        MarginModel::Tiered => tiered_health(account, assets, markets),
        MarginModel::Portfolio => crate::portfolio::health(account, assets, markets),
    }
}

/// The figures every model shares: equity (rounded down), its exact value in Fine units, the
/// exact unrealized PnL, and equity without profit (rounded down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EquityFigures {
    pub exact_fine: I256,
    pub equity: Quote,
    pub unrealized_pnl: Quote,
    pub equity_without_profit: Quote,
}

/// [`EquityFigures`] of `account` at current marks (256-bit, exact).
pub(crate) fn equity_figures(
    account: &Account,
    assets: &[Asset],
    markets: &[Market],
) -> Result<EquityFigures, Overflow> {
    let collateral = collateral_fine(account, assets, markets);
    let mut upnl = Quote::ZERO;
    for position in &account.positions {
        let mark = markets[position.market.0 as usize].mark_price.ok_or(Overflow)?;
        upnl = upnl.checked_add(position.unrealized_pnl(mark)?)?;
    }
    let upnl_fine = I256::from(upnl.raw()) * I256::from(FINE_PER_QUOTE);
    let exact_fine = collateral + upnl_fine;
    Ok(EquityFigures {
        exact_fine,
        equity: fine_to_quote(exact_fine, false)?,
        unrealized_pnl: upnl,
        equity_without_profit: fine_to_quote(collateral + upnl_fine.min(I256::ZERO), false)?,
    })
}

/// The tiered model's health: computed in i128 when every intermediate fits (the common case,
/// several times faster), else in 256-bit integers; both paths are exact and round the same way,
/// so they give the same result.
fn tiered_health(account: &Account, assets: &[Asset], markets: &[Market]) -> Result<Health, Overflow> {
    match health_narrow(account, assets, markets) {
        Some(health) => Ok(health),
        None => health_wide(account, assets, markets),
    }
}

/// Exact weighted collateral in Fine units, in i128; `None` where it might not fit.
fn collateral_fine_narrow(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<i128> {
    let mut total = mul_i128(account.settlement.raw(), FINE_PER_QUOTE)?;
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        if let Some(index) = markets[asset.index_market.0 as usize].index_price {
            let value = amount.mul_price(index).raw();
            total = total.checked_add(mul_i128(value, i128::from(asset.weight.raw()))?)?;
        }
    }
    Some(total)
}

/// [`health`] in i128 arithmetic; `None` when some intermediate might not fit (or a position has
/// no mark: the 256-bit path reports that).
fn health_narrow(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<Health> {
    let collateral = collateral_fine_narrow(account, assets, markets)?;
    let (mut upnl, mut mm, mut im) = (0i128, 0i128, 0i128);
    for position in &account.positions {
        let market = &markets[position.market.0 as usize];
        let mark = market.mark_price?;
        upnl = upnl.checked_add(position.unrealized_pnl(mark).ok()?.raw())?;
        let fine = position_mm_fine_narrow(&market.params, position.size, mark)?;
        mm = mm.checked_add(div_1e8(fine, Round::Up))?;
        let addon = im_addon_rate(account, position, assets, markets);
        let im_fine = position_im32_narrow(market, position.size, mark, fine, addon)?;
        im = im.checked_add(ceil_div_1e16(im_fine))?;
    }
    let upnl_fine = mul_i128(upnl, FINE_PER_QUOTE)?;
    let equity = div_1e8(collateral.checked_add(upnl_fine)?, Round::Down);
    let without_profit = div_1e8(collateral.checked_add(upnl_fine.min(0))?, Round::Down);
    Some(Health {
        equity: Quote::from_raw(equity),
        unrealized_pnl: Quote::from_raw(upnl),
        equity_without_profit: Quote::from_raw(without_profit),
        maintenance_margin: Quote::from_raw(mm),
        initial_margin: Quote::from_raw(im),
    })
}

/// Whether `account` is below maintenance, decided without divisions where the exact margin
/// (equity − Σ MM, at 10^-24) is clearly on one side of the rounding band; `None` otherwise (and
/// where i128 might overflow): then [`health`] decides. Agrees with `health(..).below_maintenance()`
/// whenever it answers: the engine rounds equity down and each position's MM up, by less than one
/// Quote unit each, so a margin of at least (positions + 1) Quote units is never below, and a
/// negative one always is.
/// Tiered accounts only (`None` for any other model).
pub fn below_maintenance_quick(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<bool> {
    let verdict = verdict_from_fine_margin(margin_fine_narrow(account, assets, markets)?, account.positions.len());
    debug_assert!(
        verdict.is_none_or(|v| health(account, assets, markets).is_ok_and(|h| h.below_maintenance() == v)),
        "the quick maintenance verdict is the exact one"
    );
    verdict
}

/// Whether `account` is below its initial margin, decided without divisions where the exact
/// equity and the exact Σ IM are clearly apart; `None` otherwise (and where i128 might overflow):
/// then [`health`] decides. Agrees with `health(..).below_initial()` whenever it answers, for the
/// reason of [`below_maintenance_quick`]: equity rounds down and each position's IM up, by less
/// than one Quote unit each. Compared at 10^-32 (Fine × Rate raw), where each position's exact IM
/// is its exact MM (Fine) times `im_factor` raw and one Quote unit is 10^16.
/// Tiered accounts only (`None` for any other model).
pub fn below_initial_quick(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<bool> {
    let verdict = below_initial_quick_tiered(account, assets, markets);
    debug_assert!(
        verdict.is_none_or(|v| health(account, assets, markets).is_ok_and(|h| h.below_initial() == v)),
        "the quick initial verdict is the exact one"
    );
    verdict
}

fn below_initial_quick_tiered(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<bool> {
    const QUOTE_UNIT: i128 = 10_000_000_000_000_000; // one Quote raw unit at 10^-32
    if !account.margin_model.is_tiered() {
        return None;
    }
    let mut equity_fine = collateral_fine_narrow(account, assets, markets)?;
    let mut im = 0i128;
    for position in &account.positions {
        let (value_fine, mm_fine, market) = position_fine_narrow(position, markets)?;
        equity_fine = equity_fine.checked_add(value_fine)?;
        let addon = im_addon_rate(account, position, assets, markets);
        let mark = market.mark_price?;
        im = im.checked_add(position_im32_narrow(market, position.size, mark, mm_fine, addon)?)?;
    }
    let margin = mul_i128(equity_fine, i128::from(Rate::ONE_RAW))?.checked_sub(im)?;
    let slack = QUOTE_UNIT.checked_mul(i128::try_from(account.positions.len()).ok()? + 1)?;
    verdict_outside_slack(margin, slack)
}

/// One position's exact unrealized PnL and maintenance margin at its market's mark (Fine units),
/// with the market's parameters; `None` where i128 might not hold them (or there is no mark).
fn position_fine_narrow<'m>(
    position: &crate::state::Position,
    markets: &'m [Market],
) -> Option<(i128, i128, &'m Market)> {
    let market = &markets[position.market.0 as usize];
    let mark = market.mark_price?;
    let value_fine = mul_i128(position.unrealized_pnl(mark).ok()?.raw(), FINE_PER_QUOTE)?;
    let mm_fine = position_mm_fine_narrow(&market.params, position.size, mark)?;
    Some((value_fine, mm_fine, market))
}

/// The IM add-on rate of one position (x its notional, on top of MM x im_factor): the market's
/// `im_addon_rate`, plus `concentration_addon_rate` when the account's liquidation price in that
/// market lies in one of its cliff ranges.
pub fn im_addon_rate(
    account: &Account,
    position: &crate::state::Position,
    assets: &[Asset],
    markets: &[Market],
) -> Rate {
    let target = markets[position.market.0 as usize].target_params();
    let base = target.im_addon_rate;
    if target.cliff_ranges.is_empty() || !target.concentration_addon_rate.is_positive() {
        return base;
    }
    let in_cliff = liquidation_price_under(account, position.market, assets, markets, Market::target_params)
        .is_some_and(|price| target.cliff_ranges.iter().any(|r| r.contains(price)));
    if in_cliff {
        Rate::from_raw(base.raw().saturating_add(target.concentration_addon_rate.raw()))
    } else {
        base
    }
}

/// Exact initial margin of one position at 10^-32 (Fine x Rate raw), in i128: MM under the
/// target rates x im_factor + `addon` x notional. `effective_mm_fine` is the position's exact MM
/// under the effective rates (the same value when no phase-in runs). `None` where i128 might not
/// hold it.
fn position_im32_narrow(
    market: &Market,
    size: Size,
    mark: Price,
    effective_mm_fine: i128,
    addon: Rate,
) -> Option<i128> {
    let target = market.target_params();
    let mm_fine = match &market.phase_in {
        None => effective_mm_fine,
        Some(phase) => position_mm_fine_narrow(&phase.target, size, mark)?,
    };
    let im = mul_i128(mm_fine, i128::from(target.im_factor.raw()))?;
    if addon.is_zero() {
        return Some(im);
    }
    let notional = mul_i128(i128::from(size.raw()).abs(), i128::from(mark.raw()))?; // Quote raw
    let addon_fine = mul_i128(mul_i128(notional, i128::from(addon.raw()))?, i128::from(Rate::ONE_RAW))?;
    im.checked_add(addon_fine)
}

/// Initial margin of one position in `market` (target rates, `addon` x notional), rounded up.
pub fn position_im_in(market: &Market, size: Size, mark: Price, addon: Rate) -> Result<Quote, Overflow> {
    let narrow = position_mm_fine_narrow(&market.params, size, mark)
        .and_then(|fine| position_im32_narrow(market, size, mark, fine, addon));
    if let Some(fine) = narrow {
        return Ok(Quote::from_raw(ceil_div_1e16(fine)));
    }
    let target = market.target_params();
    let notional = I256::from(i128::from(size.raw()).abs()) * I256::from(mark.raw());
    let fine = position_mm_fine_wide(target, size, mark) * I256::from(target.im_factor.raw())
        + notional * I256::from(addon.raw()) * I256::from(Rate::ONE_RAW as i128);
    let divisor = I256::from(FINE_PER_QUOTE) * I256::from(Rate::ONE_RAW as i128);
    let mut q = fine / divisor;
    if fine % divisor > I256::ZERO {
        q += I256::ONE;
    }
    i128::try_from(q).map(Quote::from_raw).map_err(|_| Overflow)
}

/// Pure: below (`Some(true)`) when the exact `margin` is negative, not below (`Some(false)`) when
/// it is at least `slack` (the most the rounding can take away), `None` in between.
fn verdict_outside_slack(margin: i128, slack: i128) -> Option<bool> {
    if margin >= slack {
        Some(false)
    } else if margin < 0 {
        Some(true)
    } else {
        None
    }
}

/// Pure: the below-maintenance verdict of an exact fine margin (equity − Σ MM at 10^-24) for an
/// account with `positions` positions, or `None` inside the rounding band, where only [`health`]
/// can decide (see [`below_maintenance_quick`] for why the band is (positions + 1) Quote units).
pub(crate) fn verdict_from_fine_margin(margin: i128, positions: usize) -> Option<bool> {
    verdict_outside_slack(margin, (positions as i128 + 1) * FINE_PER_QUOTE)
}

/// The exact margin of a tiered account, equity − Σ MM before any rounding (Fine units), in
/// i128; `None` where an intermediate might not fit, and for any other model.
pub(crate) fn margin_fine_narrow(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<i128> {
    if !account.margin_model.is_tiered() {
        return None;
    }
    let mut margin = collateral_fine_narrow(account, assets, markets)?;
    for position in &account.positions {
        let (value_fine, mm_fine, _) = position_fine_narrow(position, markets)?;
        margin = margin.checked_add(value_fine)?.checked_sub(mm_fine)?;
    }
    Some(margin)
}

/// [`health`] in 256-bit arithmetic.
fn health_wide(account: &Account, assets: &[Asset], markets: &[Market]) -> Result<Health, Overflow> {
    let figures = equity_figures(account, assets, markets)?;
    let mut mm = Quote::ZERO;
    let mut im = Quote::ZERO;
    for position in &account.positions {
        let market = &markets[position.market.0 as usize];
        let mark = market.mark_price.ok_or(Overflow)?;
        mm = mm.checked_add(position_mm(&market.params, position.size, mark)?)?;
        let addon = im_addon_rate(account, position, assets, markets);
        im = im.checked_add(position_im_in(market, position.size, mark, addon)?)?;
    }
    Ok(Health {
        equity: figures.equity,
        unrealized_pnl: figures.unrealized_pnl,
        equity_without_profit: figures.equity_without_profit,
        maintenance_margin: mm,
        initial_margin: im,
    })
}

/// One linear piece of a position's MM as a function of its mark: `a + b x m` (Fine units, m raw),
/// valid for marks in `[lo_raw, hi_raw)`.
struct Piece {
    a: I256,
    b: I256,
    lo_raw: I256,
    hi_raw: I256,
}

fn mm_pieces(params: &MarketParams, size: Size) -> Vec<Piece> {
    let s = I256::from(i128::from(size.raw()).abs());
    let rate = |i: usize| I256::from(params.tiers[i].mm_rate.raw());
    let from = |i: usize| I256::from(params.tiers[i].from_raw);
    let n = params.tiers.len();
    let unbounded = I256::MAX;
    match (params.tier_basis, params.tier_mode) {
        (TierBasis::Size, _) => {
            // Slope = exact MM at a mark of 1 raw unit.
            let slope = position_mm_fine(params, size, Price::from_raw(1));
            vec![Piece { a: I256::ZERO, b: slope, lo_raw: I256::ZERO, hi_raw: unbounded }]
        }
        (TierBasis::Notional, mode) => {
            let mut pieces = Vec::with_capacity(n);
            let mut below = I256::ZERO; // sum of full brackets' width x rate
            for i in 0..n {
                let lo = if s == I256::ZERO { I256::ZERO } else { from(i) / s };
                let hi = if i + 1 < n && s != I256::ZERO { from(i + 1) / s } else { unbounded };
                let (a, b) = match mode {
                    TierMode::Marginal => (below - rate(i) * from(i), rate(i) * s),
                    TierMode::Whole => (I256::ZERO, rate(i) * s),
                };
                pieces.push(Piece { a, b, lo_raw: lo, hi_raw: hi });
                if i + 1 < n {
                    below += (from(i + 1) - from(i)) * rate(i);
                }
            }
            pieces
        }
    }
}

/// The mark of `market_id` at which the account's equity equals its MM, all other prices held
/// (collateral indexed on that market moves with it). Rounded toward the current mark (a long is
/// shown liquidated a little early, a short likewise). `None` where no such positive price exists.
pub fn liquidation_price(
    account: &Account,
    market_id: MarketId,
    assets: &[Asset],
    markets: &[Market],
) -> Option<Price> {
    liquidation_price_under(account, market_id, assets, markets, |m: &Market| &m.params)
}

/// [`liquidation_price`] with each market's MM rates taken from `rates_of` (the effective
/// parameters, or the target ones of a running phase-in).
pub fn liquidation_price_under(
    account: &Account,
    market_id: MarketId,
    assets: &[Asset],
    markets: &[Market],
    rates_of: impl Fn(&Market) -> &MarketParams,
) -> Option<Price> {
    match account.margin_model {
        MarginModel::Tiered => tiered_liquidation_price(account, market_id, assets, markets, rates_of),
        MarginModel::Portfolio => crate::portfolio::liquidation_price(account, market_id, assets, markets),
    }
}

/// [`liquidation_price_under`] of a tiered account, solved exactly per linear piece of the tier
/// table.
fn tiered_liquidation_price(
    account: &Account,
    market_id: MarketId,
    assets: &[Asset],
    markets: &[Market],
    rates_of: impl Fn(&Market) -> &MarketParams,
) -> Option<Price> {
    let position = account.position(market_id)?;
    let market = &markets[market_id.0 as usize];
    let mark = market.mark_price?;
    let fine = I256::from(FINE_PER_QUOTE);
    // Equity(m) = A + B m and other markets' MM = C, all in Fine units.
    let mut a = collateral_fine(account, assets, markets);
    let mut b = I256::from(i128::from(position.size.raw())) * fine;
    let mut c = I256::ZERO;
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        if asset.index_market == market_id {
            let weighted = I256::from(i128::from(amount.raw())) * I256::from(asset.weight.raw());
            b += weighted;
            if let Some(index) = market.index_price {
                a -= weighted * I256::from(index.raw());
            }
        }
    }
    for other in &account.positions {
        let m = &markets[other.market.0 as usize];
        let other_mark = m.mark_price?;
        if other.market == market_id {
            a -= I256::from(other.cost.raw()) * fine;
        } else {
            a += I256::from(other.unrealized_pnl(other_mark).ok()?.raw()) * fine;
            c += position_mm_fine(rates_of(m), other.size, other_mark);
        }
    }
    let mut best: Option<(I256, I256)> = None; // (distance to mark, root)
    for piece in mm_pieces(rates_of(market), position.size) {
        let denominator = b - piece.b;
        if denominator == I256::ZERO {
            continue;
        }
        let numerator = c + piece.a - a;
        let root_down = floor_div(numerator, denominator);
        let root = if denominator > I256::ZERO {
            root_down + I256::from(i128::from(numerator % denominator != I256::ZERO))
        } else {
            root_down
        };
        if root <= I256::ZERO || root < piece.lo_raw || root >= piece.hi_raw {
            continue;
        }
        let distance = (root - I256::from(mark.raw())).abs();
        if best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, root));
        }
    }
    let (_, root) = best?;
    i64::try_from(root).ok().map(Price::from_raw)
}

fn floor_div(n: I256, d: I256) -> I256 {
    let q = n / d;
    if (n % d != I256::ZERO) && ((n < I256::ZERO) != (d < I256::ZERO)) {
        q - I256::ONE
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn btc_params() -> MarketParams {
        Config::embedded_default().markets[0].params.clone()
    }

    /// Wherever the quick initial-margin test answers, it is the exact health's verdict, across
    /// magnitudes, collateral, several positions, both tier modes and bases, and accounts near the
    /// boundary; and it answers for most.
    #[test]
    fn below_initial_quick_agrees_with_health() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let assets = engine.assets().to_vec();
        let mut markets = engine.markets().to_vec();
        markets[1].params.tier_basis = TierBasis::Notional;
        for (tier, from) in markets[1].params.tiers.iter_mut().zip([0i128, 5, 25, 100]) {
            tier.from_raw = from * 100_000 * Quote::ONE_RAW;
        }
        markets[2].params.tier_mode = TierMode::Whole;
        let mut next = crate::num::xorshift(0x1a2b_3c4d_5e6f_7081);
        let (mut decided, mut rounds, mut near) = (0, 0, 0);
        for bits in [12u32, 30, 40, 50, 62] {
            for _ in 0..2_000 {
                rounds += 1;
                let magnitude = |n: u64| ((n >> (64 - bits)) as i64).max(1);
                for m in markets.iter_mut() {
                    m.mark_price = Some(Price::from_raw(magnitude(next())));
                    m.index_price = m.mark_price;
                }
                let mut account = Account::new("a");
                if next().is_multiple_of(4) {
                    account.collateral.push((crate::state::AssetId(0), Size::from_raw(magnitude(next()))));
                }
                for market in 0..3u16 {
                    if next().is_multiple_of(2) {
                        let size = Size::from_raw(magnitude(next()) * if next().is_multiple_of(2) { 1 } else { -1 });
                        let cost = size.mul_price(Price::from_raw(magnitude(next())));
                        account.positions.push(crate::state::Position { market: MarketId(market), size, cost });
                    }
                }
                let Ok(health) = health(&account, &assets, &markets) else { continue };
                // Put the account near its boundary (within a few Quote units) half of the time.
                account.settlement = if next().is_multiple_of(2) {
                    Quote::from_raw(health.initial_margin.raw() - health.equity.raw() + (next() % 7) as i128 - 3)
                } else {
                    Quote::from_raw(i128::from(magnitude(next())) * (next() % 3) as i128 - 1_000)
                };
                let Ok(health) = crate::margin::health(&account, &assets, &markets) else { continue };
                near += usize::from((health.equity.raw() - health.initial_margin.raw()).abs() < 10);
                if let Some(quick) = below_initial_quick(&account, &assets, &markets) {
                    decided += 1;
                    assert_eq!(quick, health.below_initial(), "{account:?}");
                }
            }
        }
        let far = rounds - near;
        assert!(decided * 3 > far * 2, "the quick test decides most cases away from the boundary ({decided} of {far})");
        assert!(near > rounds / 10, "boundary cases are exercised ({near})");
    }

    /// The 64-bit-factor product equals `checked_mul` wherever it answers, and answers wherever
    /// the product's magnitude is below 2^127.
    #[test]
    fn mul_i128_i64_equals_checked_mul() {
        let mut next = crate::num::xorshift(0x0ddb_a11c_afe0_1234);
        for round in 0..200_000u32 {
            let shift = round % 127;
            let a = (i128::from(next() as i64) << 64 | i128::from(next())) >> shift;
            let b = (next() as i64) >> (round % 63);
            let exact = a.checked_mul(i128::from(b));
            match mul_i128_i64(a, b) {
                Some(product) => assert_eq!(Some(product), exact, "{a} x {b}"),
                None => assert!(exact.is_none_or(|p| p == i128::MIN), "{a} x {b} = {exact:?}"),
            }
        }
        assert_eq!(mul_i128_i64(-(1 << 63), i64::MIN), Some(1 << 126));
        assert_eq!(mul_i128_i64(i128::MAX, -1), Some(-i128::MAX));
        assert_eq!(mul_i128_i64(i128::MAX, 2), None);
    }

    fn q(text: &str) -> Quote {
        Quote::parse(text).unwrap()
    }

    #[test]
    fn design_tier_examples() {
        let params = btc_params();
        let size = Size::parse("300").unwrap();
        assert_eq!(position_mm(&params, size, Price::parse("10000").unwrap()), Ok(q("162500")));
        assert_eq!(position_im(&params, size, Price::parse("10000").unwrap()), Ok(q("325000")));
        assert_eq!(position_mm(&params, size, Price::parse("9500").unwrap()), Ok(q("154375")));
        let big = Size::parse("1200").unwrap();
        let price = Price::parse("20000").unwrap();
        assert_eq!(position_mm(&params, big, price), Ok(q("2525000")));
        let whole = MarketParams { tier_mode: TierMode::Whole, ..params.clone() };
        assert_eq!(position_mm(&whole, big, price), Ok(q("4800000")));
        assert_eq!(position_mm(&params, big.checked_neg().unwrap(), price), Ok(q("2525000")));
    }

    #[test]
    fn notional_brackets_match_binance_form() {
        // Binance form: MM = notional x rate - maintenance amount; amount(k) = amount(k-1) + from_k x (rate_k - rate_{k-1}).
        let mut params = btc_params();
        params.tier_basis = TierBasis::Notional;
        for (tier, from) in params.tiers.iter_mut().zip(["0", "500000", "2500000", "10000000"]) {
            tier.from_raw = q(from).raw();
        }
        let mark = Price::parse("10000").unwrap();
        let size = Size::parse("300").unwrap(); // notional 3,000,000: third bracket
                                                // amount = 500,000 x 2.5% + 2,500,000 x 5% = 137,500; MM = 3,000,000 x 10% - 137,500.
        assert_eq!(position_mm(&params, size, mark), Ok(q("162500")));
    }

    /// The i128 fast paths agree with the 256-bit ones wherever they answer, including sizes and
    /// prices near the ends of their ranges (where the fast path must decline, not wrap).
    #[test]
    fn narrow_paths_agree_with_wide_paths() {
        let mut next = crate::num::xorshift(0x1234_5678_9abc_def0);
        let base = btc_params();
        let mut notional = base.clone();
        notional.tier_basis = TierBasis::Notional;
        for (tier, from) in notional.tiers.iter_mut().zip(["0", "500000", "2500000", "10000000"]) {
            tier.from_raw = q(from).raw();
        }
        let variants = [
            base.clone(),
            MarketParams { tier_mode: TierMode::Whole, ..base.clone() },
            notional.clone(),
            MarketParams { tier_mode: TierMode::Whole, ..notional },
        ];
        let mut markets = crate::Engine::new(&Config::embedded_default()).markets().to_vec();
        let assets = crate::Engine::new(&Config::embedded_default()).assets().to_vec();
        for round in 0..4_000 {
            let magnitude = |n: u64, bits: u32| (n >> (64 - bits)) as i64;
            let bits = [20, 40, 50, 62, 63][round % 5];
            let size = Size::from_raw(magnitude(next(), bits).max(1) * if next().is_multiple_of(2) { 1 } else { -1 });
            let mark = Price::from_raw(magnitude(next(), bits).max(1));
            for params in &variants {
                if let Some(narrow) = position_mm_fine_narrow(params, size, mark) {
                    assert_eq!(I256::from(narrow), position_mm_fine_wide(params, size, mark));
                }
            }
            markets[0].params = variants[round % 4].clone();
            markets[0].mark_price = Some(mark);
            markets[0].index_price = Some(mark);
            let mut account = Account::new("a");
            account.settlement = Quote::from_raw((next() as i128) << (round % 60) >> 3);
            account.collateral.push((crate::state::AssetId(0), Size::from_raw(magnitude(next(), bits))));
            let cost = size.mul_price(Price::from_raw(magnitude(next(), bits).max(1)));
            account.positions.push(crate::state::Position { market: MarketId(0), size, cost });
            let wide = health_wide(&account, &assets, &markets);
            if let Some(narrow) = health_narrow(&account, &assets, &markets) {
                assert_eq!(Ok(narrow), wide, "round {round}");
            }
            if let (Some(quick), Ok(wide)) = (below_maintenance_quick(&account, &assets, &markets), wide) {
                assert_eq!(quick, wide.below_maintenance(), "round {round}");
            }
        }
    }
}
