//! Pure leaf of the risk index: a certified **safe price box** for one account.
//!
//! At the exact `Fine` scale (10^-24), an account's equity minus its maintenance margin separates
//! by market:
//!
//! ```text
//! settlement + Σ_m [ W_m × index_m + f_m(mark_m) ],   f_m(p) = size_m × p − cost_m − MM_m(p)
//! ```
//!
//! where `W_m` (≥ 0) is the weighted collateral indexed on market m. A box gives each market the
//! account is exposed to a band `[lo, hi]` that contains its current mark and index. The box is
//! **certified** when an exact lower bound of equity − MM over the whole box (each market at its
//! own worst point, mark and index independently) is at least the rounding slack: then, while
//! every mark and index stays inside its band, the account is not below maintenance, whatever the
//! prices do inside their bands. Lower bounds per market, exact in 256-bit integers:
//!
//! - collateral: `W × lo` (`W` ≥ 0);
//! - a position whose MM is linear in the mark (size basis) or convex (notional basis, marginal
//!   brackets): `f` is concave, so its minimum over `[lo, hi]` is `min(f(lo), f(hi))`; an open top
//!   is allowed only when `f`'s slope for large marks is ≥ 0 (then `f` never decreases);
//! - notional basis with `whole` brackets, whose MM jumps at bracket edges but never falls as the
//!   mark rises: `f ≥ min(size × lo, size × hi) − cost − MM(hi)`; the top is always finite and
//!   is capped just below the next bracket edge.
//!
//! Where mark and index are one price (no basis EMA: the default), a market's collateral and
//! position are bounded together, `f(p) + W × p`, which is concave too: a short hedged by
//! collateral in the same asset then needs no top edge.
//!
//! An open low side means "down to a price of 0" (prices are positive: it never triggers).
//!
//! **Rounding slack**: the engine rounds equity down and each position's MM up, each by less than
//! one Quote unit, so exact equity − Σ exact MM ≥ (positions + 1) Quote units proves not-below.
//!
//! **Choosing the box**: the headroom `h` (exact equity − MM − slack) is shared over the markets in
//! proportion to sensitivity × mark, which gives every market the same relative band width; a
//! side on which the account cannot lose gets no edge. Sensitivities are per unit of price, in the
//! direction of loss: falling, `size − (lowest MM slope) + W`; rising, `(highest MM slope) − size
//! − W`. In size basis both are exact (MM is linear), so a single-market account's band edge on its
//! dangerous side is its exact liquidation price, up to the slack. A box that fails certification
//! (possible only where the sensitivities are bounds) is halved and retried; after
//! [`MAX_SHRINKS`] halvings, or with no headroom, the account gets a **point box** at the current
//! prices, which triggers on any move (valid because the caller has just checked the account
//! exactly). A point box needs mark = index in every exposed market; otherwise the account is
//! [`Unbandable`] and is rechecked at every pass.

use crate::config::{MarketParams, TierBasis, TierMode};
use crate::margin::{position_mm_fine, FINE_PER_QUOTE};
use crate::num::{Price, Quote};
use crate::state::{Account, Asset, Market, MarketId, Position};
use ethnum::I256;

/// Halvings of the allocated widths tried before falling back to a point box.
pub(crate) const MAX_SHRINKS: u32 = 6;

/// What an account is exposed to in one market.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exposure {
    pub market: MarketId,
    /// The market's mark (raw): positions are valued at it.
    pub mark: i64,
    /// The market's index (raw): collateral is valued at it (= mark unless a basis EMA is on).
    pub index: i64,
    pub position: Option<Position>,
    /// Σ amount raw × weight raw of the collateral indexed on this market: Fine per raw index unit.
    pub weighted: I256,
    /// Mark and index move as one price: no basis EMA (`mark_ema_ms` = 0) and equal now. They stay
    /// equal until a `params` event, which re-derives every holder's box.
    pub tied: bool,
    /// In size basis the position's MM is linear in the mark, `slope × mark` (Fine units): the
    /// slope, computed once. `None` in notional basis (MM is evaluated at each price).
    pub mm_slope: Option<I256>,
}

/// One market's band: recheck when min(mark, index) < `lo` or max(mark, index) > `hi`.
/// `None` is an open side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Band {
    pub market: MarketId,
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

/// No box can be certified: the account is rechecked at every pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unbandable;

/// Loss per unit of price move of one market, Fine per raw price unit.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Rates {
    down: I256,
    up: I256,
    /// What the allocation weighs: max(down, up), or their sum where MM jumps (`whole` notional).
    weight: I256,
}

/// Reusable buffers (the index keeps one, so a derivation does not allocate).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    pub exposures: Vec<Exposure>,
    pub bands: Vec<Band>,
    widths: Vec<(Option<i64>, Rates)>,
}

fn fine() -> I256 {
    I256::from(FINE_PER_QUOTE)
}

/// Mark and index of `market` move as one price: no basis EMA, and equal now (see
/// [`Exposure::tied`]).
fn tied(market: &Market, mark: i64, index: i64) -> bool {
    market.params.mark_ema_ms == 0 && mark == index
}

/// Collect the markets `account` is exposed to into `out`: its positions, and its collateral
/// whose index market has an index (collateral without one counts zero and can only gain).
/// Tiered accounts only: the bounds of this module are the tier tables'; any other model is
/// [`Unbandable`] here.
pub(crate) fn exposures(
    account: &Account,
    assets: &[Asset],
    markets: &[Market],
    out: &mut Vec<Exposure>,
) -> Result<(), Unbandable> {
    out.clear();
    if !account.margin_model.is_tiered() {
        return Err(Unbandable); // the bounds below are the tier tables'
    }
    for position in &account.positions {
        let market = &markets[position.market.0 as usize];
        let mark = market.mark_price.ok_or(Unbandable)?.raw();
        let index = market.index_price.map_or(mark, Price::raw);
        let tied = tied(market, mark, index);
        let mm_slope = (market.params.tier_basis == TierBasis::Size)
            .then(|| position_mm_fine(&market.params, position.size, Price::from_raw(1)));
        out.push(Exposure {
            market: position.market,
            mark,
            index,
            position: Some(*position),
            weighted: I256::ZERO,
            tied,
            mm_slope,
        });
    }
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        let market = &markets[asset.index_market.0 as usize];
        let Some(index) = market.index_price else { continue };
        let weighted = I256::from(amount.raw()) * I256::from(asset.weight.raw());
        match out.iter_mut().find(|e| e.market == asset.index_market) {
            Some(exposure) => exposure.weighted += weighted,
            None => {
                let mark = market.mark_price.map_or(index.raw(), Price::raw);
                let tied = tied(market, mark, index.raw());
                let (market, index, position) = (asset.index_market, index.raw(), None);
                out.push(Exposure { market, mark, index, position, weighted, tied, mm_slope: None });
            }
        }
    }
    Ok(())
}

/// f(p) = size × p − cost − MM(p), exact, in Fine units.
fn net_value(params: &MarketParams, position: &Position, mm_slope: Option<I256>, price_raw: i64) -> I256 {
    let p = I256::from(price_raw);
    let own = I256::from(position.size.raw()) * fine();
    let cost = I256::from(position.cost.raw()) * fine();
    match mm_slope {
        Some(k) => (own - k) * p - cost,
        None => own * p - cost - position_mm_fine(params, position.size, Price::from_raw(price_raw)),
    }
}

/// Exact equity − Σ MM at the current prices, Fine units.
pub(crate) fn headroom(settlement: Quote, exposures: &[Exposure], markets: &[Market]) -> I256 {
    let mut total = I256::from(settlement.raw()) * fine();
    for e in exposures {
        total += e.weighted * I256::from(e.index);
        if let Some(position) = &e.position {
            total += net_value(&markets[e.market.0 as usize].params, position, e.mm_slope, e.mark);
        }
    }
    total
}

fn rate_raw(params: &MarketParams, tier: usize) -> I256 {
    I256::from(params.tiers[tier].mm_rate.raw())
}

/// Directional sensitivities of one exposure (see the module docs).
fn rates(params: &MarketParams, e: &Exposure) -> Rates {
    let w = e.weighted;
    let Some(position) = e.position else {
        return Rates { down: w, up: I256::ZERO, weight: w };
    };
    let size = I256::from(position.size.raw());
    let own = size * fine();
    let last = params.tiers.len() - 1;
    match (params.tier_basis, params.tier_mode) {
        (TierBasis::Size, _) => {
            let k = e.mm_slope.unwrap_or_else(|| position_mm_fine(params, position.size, Price::from_raw(1)));
            let slope = own - k + w;
            let (down, up) = (slope.max(I256::ZERO), (-slope).max(I256::ZERO));
            Rates { down, up, weight: down.max(up) }
        }
        (TierBasis::Notional, TierMode::Marginal) => {
            let down = (own - size.abs() * rate_raw(params, 0) + w).max(I256::ZERO);
            let up = (size.abs() * rate_raw(params, last) - own - w).max(I256::ZERO);
            Rates { down, up, weight: down.max(up) }
        }
        (TierBasis::Notional, TierMode::Whole) => {
            let down = (own + w).max(I256::ZERO);
            let up = (-(own + w)).max(I256::ZERO) + size.abs() * rate_raw(params, last);
            Rates { down, up, weight: down + up }
        }
    }
}

/// f's slope for large marks (concave cases only): size minus the top bracket's MM slope.
fn top_slope(params: &MarketParams, position: &Position, mm_slope: Option<I256>) -> I256 {
    let size = I256::from(position.size.raw());
    match (params.tier_basis, mm_slope) {
        (TierBasis::Size, Some(k)) => size * fine() - k,
        (TierBasis::Size, None) => size * fine() - position_mm_fine(params, position.size, Price::from_raw(1)),
        (TierBasis::Notional, _) => size * fine() - size.abs() * rate_raw(params, params.tiers.len() - 1),
    }
}

/// Exact lower bound of f(p) + `w` × p over [lo, hi] (`hi` `None`: unbounded); `None` when there
/// is none. `w` is the collateral of a tied market (it moves with the mark), else zero.
fn position_floor(
    params: &MarketParams,
    e: &Exposure,
    position: &Position,
    w: I256,
    lo: i64,
    hi: Option<i64>,
) -> Option<I256> {
    let with_collateral = |value: I256, p: i64| value + w * I256::from(p);
    if (params.tier_basis, params.tier_mode) == (TierBasis::Notional, TierMode::Whole) {
        // MM never falls as the mark rises: f(p) + w p >= min over the ends of (size + w) p - cost - MM(hi).
        let hi = hi?;
        let linear = |p: i64| I256::from(position.size.raw()) * I256::from(p) * fine() + w * I256::from(p);
        let value = linear(lo).min(linear(hi)) - I256::from(position.cost.raw()) * fine();
        return Some(value - position_mm_fine(params, position.size, Price::from_raw(hi)));
    }
    let at_lo = with_collateral(net_value(params, position, e.mm_slope, lo), lo);
    match hi {
        None => (top_slope(params, position, e.mm_slope) + w >= I256::ZERO).then_some(at_lo),
        Some(hi) => Some(at_lo.min(with_collateral(net_value(params, position, e.mm_slope, hi), hi))),
    }
}

/// Exact lower bound of equity − Σ MM over the box, Fine units; `None` when unbounded below.
pub(crate) fn box_floor(settlement: Quote, exposures: &[Exposure], bands: &[Band], markets: &[Market]) -> Option<I256> {
    debug_assert_eq!(exposures.len(), bands.len(), "one band per exposure");
    let mut total = I256::from(settlement.raw()) * fine();
    for (e, band) in exposures.iter().zip(bands) {
        let lo = band.lo.unwrap_or(0);
        let params = &markets[e.market.0 as usize].params;
        match &e.position {
            Some(position) if e.tied => total += position_floor(params, e, position, e.weighted, lo, band.hi)?,
            Some(position) => {
                total += e.weighted * I256::from(lo) + position_floor(params, e, position, I256::ZERO, lo, band.hi)?;
            }
            None => total += e.weighted * I256::from(lo),
        }
    }
    Some(total)
}

/// The rounding slack for an account with `positions` positions, Fine units.
fn slack(positions: usize) -> I256 {
    I256::from(positions as i128 + 1) * fine()
}

/// For `whole` notional brackets: the highest mark below the next bracket edge (or i64::MAX).
fn whole_bracket_cap(params: &MarketParams, position: &Position, mark: i64) -> i64 {
    let size_abs = i128::from(position.size.raw()).abs();
    let exposure = size_abs * i128::from(mark);
    let Some(next) = params.tiers.iter().find(|t| t.from_raw > exposure) else { return i64::MAX };
    let edge = next.from_raw / size_abs + i128::from(next.from_raw % size_abs != 0);
    i64::try_from(edge - 1).unwrap_or(i64::MAX)
}

/// The band of one exposure for an allocated half-width (`None`: unbounded).
fn band_for(params: &MarketParams, e: &Exposure, rates: &Rates, width: Option<i64>) -> Band {
    let (low_price, high_price) = (e.mark.min(e.index), e.mark.max(e.index));
    let lo = match width {
        Some(w) if rates.down > I256::ZERO => Some(e.mark.saturating_sub(w).min(low_price)).filter(|lo| *lo > 0),
        _ => None,
    };
    let mut hi = match width {
        Some(w) if rates.up > I256::ZERO => Some(e.mark.saturating_add(w).max(high_price)),
        _ => None,
    };
    if let Some(position) = &e.position {
        if (params.tier_basis, params.tier_mode) == (TierBasis::Notional, TierMode::Whole) {
            let cap = whole_bracket_cap(params, position, e.mark).max(high_price);
            hi = Some(hi.unwrap_or(i64::MAX).min(cap));
        }
    }
    Band { market: e.market, lo, hi }
}

/// Derive a certified box for an account that is **not below maintenance** at the current
/// prices (the caller has checked it exactly): bands go to `scratch.bands`, one per exposure in
/// `scratch.exposures` (filled by [`exposures`]).
///
/// `headroom`: the exact equity − Σ MM (Fine units) when the caller has it, else computed here.
pub(crate) fn derive(
    settlement: Quote,
    positions: usize,
    headroom_fine: Option<I256>,
    markets: &[Market],
    scratch: &mut Scratch,
) -> Result<(), Unbandable> {
    let Scratch { exposures, bands, widths } = scratch;
    let slack = slack(positions);
    let h = headroom_fine.unwrap_or_else(|| headroom(settlement, exposures, markets)) - slack;
    debug_assert!(
        headroom_fine.is_none_or(|given| given == headroom(settlement, exposures, markets)),
        "the caller's headroom is the exact one"
    );
    if h >= I256::ZERO {
        widths.clear();
        let mut total = I256::ZERO;
        for e in exposures.iter() {
            let r = rates(&markets[e.market.0 as usize].params, e);
            total += r.weight * I256::from(e.mark);
            widths.push((None, r));
        }
        if total > I256::ZERO {
            for (e, (width, _)) in exposures.iter().zip(widths.iter_mut()) {
                *width = Some(allocated_width(h, e.mark, total));
            }
        }
        for shrink in 0..=MAX_SHRINKS {
            bands.clear();
            for (e, (width, r)) in exposures.iter().zip(widths.iter()) {
                let params = &markets[e.market.0 as usize].params;
                bands.push(band_for(params, e, r, width.map(|w| w >> shrink)));
            }
            if box_floor(settlement, exposures, bands, markets).is_some_and(|floor| floor >= slack) {
                return Ok(());
            }
        }
    }
    point_box(exposures, bands)
}

/// Most exposures [`derive_linear`] handles at once; an account exposed to more markets takes
/// the general path.
const LINEAR_MAX: usize = 4;

/// One exposure whose value is linear in its price: `slope × p − cost_fine` (Fine units), with
/// mark = index.
#[derive(Clone, Copy, Debug)]
struct Linear {
    market: MarketId,
    mark: i64,
    /// size × F − MM slope + weighted collateral of the market (Fine per raw price unit).
    slope: i128,
    /// cost × F (zero for collateral alone).
    cost_fine: i128,
}

/// An account whose exposures are all linear in one price each: positions in size-basis markets
/// (MM is `slope × mark`) and collateral, each market tied (no basis EMA, mark = index); in
/// [`exposures`]'s order. The commonest accounts. Its exact margin and its box both follow from
/// the same per-market slopes, so the recheck computes them once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinearAccount {
    exposures: [Linear; LINEAR_MAX],
    len: usize,
    settlement_fine: i128,
    /// Exact equity − Σ MM at the current prices (Fine units): the value of
    /// `margin::margin_fine_narrow`.
    pub margin_fine: i128,
}

impl LinearAccount {
    /// `account` as linear exposures, or `None` for any other account, or where i128 might not
    /// hold a value.
    pub(crate) fn of(account: &Account, assets: &[Asset], markets: &[Market]) -> Option<LinearAccount> {
        if !account.margin_model.is_tiered() {
            return None;
        }
        let empty = Linear { market: MarketId(0), mark: 0, slope: 0, cost_fine: 0 };
        let mut out = [empty; LINEAR_MAX];
        let tied_mark = |market: &Market, mark: i64| {
            let index = market.index_price.map_or(mark, Price::raw);
            tied(market, mark, index).then_some(mark)
        };
        let mut len = 0;
        for position in &account.positions {
            let market = markets.get(position.market.0 as usize)?;
            let mark = tied_mark(market, market.mark_price?.raw())?;
            if market.params.tier_basis != TierBasis::Size {
                return None;
            }
            let k = crate::margin::position_mm_fine_narrow(&market.params, position.size, Price::from_raw(1))?;
            let slope = crate::margin::mul_i128(i128::from(position.size.raw()), FINE_PER_QUOTE)?.checked_sub(k)?;
            let cost_fine = crate::margin::mul_i128(position.cost.raw(), FINE_PER_QUOTE)?;
            *out.get_mut(len)? = Linear { market: position.market, mark, slope, cost_fine };
            len += 1;
        }
        for (asset_id, amount) in &account.collateral {
            let asset = assets.get(asset_id.0 as usize)?;
            let market = markets.get(asset.index_market.0 as usize)?;
            let Some(index) = market.index_price else { continue }; // counts zero, can only gain
            let mark = tied_mark(market, market.mark_price.map_or(index.raw(), Price::raw))?;
            // Two i64 factors: the product fits i128.
            let weighted = i128::from(amount.raw()) * i128::from(asset.weight.raw());
            match out[..len].iter_mut().find(|e| e.market == asset.index_market) {
                Some(e) => e.slope = e.slope.checked_add(weighted)?,
                None => {
                    *out.get_mut(len)? = Linear { market: asset.index_market, mark, slope: weighted, cost_fine: 0 };
                    len += 1;
                }
            }
        }
        // (size × mark − cost) × F − k × mark + W × index = slope × mark − cost × F, per market.
        let settlement_fine = crate::margin::mul_i128(account.settlement.raw(), FINE_PER_QUOTE)?;
        let mut margin_fine = settlement_fine;
        for e in &out[..len] {
            let value = crate::margin::mul_i128_i64(e.slope, e.mark)?.checked_sub(e.cost_fine)?;
            margin_fine = margin_fine.checked_add(value)?;
        }
        Some(LinearAccount { exposures: out, len, settlement_fine, margin_fine })
    }
}

/// What [`derive`] finds for a [`LinearAccount`] with `positions` positions, computed in checked
/// i128 arithmetic: the same bands in `bands`, or `None` wherever [`derive`] might answer
/// otherwise (no headroom, a first attempt that does not certify, a value that might not fit),
/// and then the caller runs [`derive`].
///
/// [`derive`]'s first attempt for linear exposures: each market's sensitivity is |slope|, the
/// half-width `h × mark / Σ |slope| × mark`, an edge on the losing side only (low when slope >
/// 0, high when < 0), certified when S × F + Σ min over the band's ends of (slope × p −
/// cost × F) ≥ slack (the floor of a linear function over an interval is at an end; an open
/// low side is a price of 0, an open top only where slope ≥ 0).
pub(crate) fn derive_linear(account: &LinearAccount, positions: usize, bands: &mut Vec<Band>) -> Option<()> {
    let exposures = &account.exposures[..account.len];
    let slack = i128::try_from(positions).ok()?.checked_add(1)?.checked_mul(FINE_PER_QUOTE)?;
    let h = account.margin_fine.checked_sub(slack)?;
    if h < 0 {
        return None; // a point box: the general path
    }
    let mut total = 0i128;
    for e in exposures {
        total = total.checked_add(crate::margin::mul_i128_i64(e.slope.checked_abs()?, e.mark)?)?;
    }
    let mut floor = account.settlement_fine;
    bands.clear();
    for e in exposures {
        let width = if total > 0 { Some(allocated_width_narrow(h, e.mark, total)?) } else { None };
        let (lo, hi) = match width {
            Some(w) if e.slope > 0 => (Some(e.mark.saturating_sub(w).min(e.mark)).filter(|lo| *lo > 0), None),
            Some(w) if e.slope < 0 => (None, Some(e.mark.saturating_add(w).max(e.mark))),
            _ => (None, None),
        };
        let at_lo = crate::margin::mul_i128_i64(e.slope, lo.unwrap_or(0))?;
        let lowest = match hi {
            Some(hi) => at_lo.min(crate::margin::mul_i128_i64(e.slope, hi)?),
            None if e.slope >= 0 => at_lo,
            None => return None, // unbounded below: the general path decides
        };
        floor = floor.checked_add(lowest.checked_sub(e.cost_fine)?)?;
        bands.push(Band { market: e.market, lo, hi });
    }
    (floor >= slack).then_some(())
}

/// h × mark / total (a half-width in raw price units), by i128 division where the values fit:
/// the box is certified afterwards, so only the 256-bit fallback needs to be exact.
fn allocated_width(h: I256, mark: i64, total: I256) -> i64 {
    if let (Ok(h), Ok(total)) = (i128::try_from(h), i128::try_from(total)) {
        if let Some(width) = allocated_width_narrow(h, mark, total) {
            return width;
        }
    }
    i64::try_from(h * I256::from(mark) / total).unwrap_or(i64::MAX)
}

/// [`allocated_width`] in i128: `None` where the per-unit share is not positive.
fn allocated_width_narrow(h: i128, mark: i64, total: i128) -> Option<i64> {
    let mark = mark.max(1);
    // Rounded up: a narrower band. In u64 where the total fits (one hardware division).
    let per_unit = match u64::try_from(total) {
        Ok(total) => i128::from(total.div_ceil(mark.unsigned_abs())),
        Err(_) => total / i128::from(mark) + i128::from(total % i128::from(mark) != 0),
    };
    (per_unit > 0).then(|| i64::try_from(h / per_unit).unwrap_or(i64::MAX))
}

/// Bands that trigger on any move of any exposed price (requires mark = index everywhere).
fn point_box(exposures: &[Exposure], bands: &mut Vec<Band>) -> Result<(), Unbandable> {
    bands.clear();
    for e in exposures {
        if e.mark != e.index {
            return Err(Unbandable);
        }
        bands.push(Band { market: e.market, lo: Some(e.mark), hi: Some(e.mark) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::num::Size;
    use crate::state::{AssetId, MarketId};

    fn markets_at(prices: &[i64]) -> Vec<Market> {
        let engine = crate::Engine::new(&Config::embedded_default());
        let mut markets = engine.markets().to_vec();
        for (m, p) in markets.iter_mut().zip(prices) {
            m.mark_price = Some(Price::from_int(*p).unwrap());
            m.index_price = m.mark_price;
        }
        markets
    }

    fn long(market: u16, size: i64, entry: i64) -> Position {
        let size = Size::from_int(size).unwrap();
        Position { market: MarketId(market), size, cost: size.mul_price(Price::from_int(entry).unwrap()) }
    }

    #[test]
    fn single_long_gets_its_exact_liquidation_price_as_low_edge() {
        let markets = markets_at(&[10_000, 500, 20]);
        let engine = crate::Engine::new(&Config::embedded_default());
        let mut account = Account::new("a");
        account.settlement = Quote::from_int(1_000).unwrap();
        account.positions.push(long(0, 1, 10_000));
        let mut scratch = Scratch::default();
        exposures(&account, engine.assets(), &markets, &mut scratch.exposures).unwrap();
        derive(account.settlement, 1, None, &markets, &mut scratch).unwrap();
        let band = scratch.bands[0];
        // Liquidation where 1,000 + (p - 10,000) = 0.025 p: p = 9,000 / 0.975 = 9230.769..
        let exact = crate::margin::liquidation_price(&account, MarketId(0), engine.assets(), &markets).unwrap();
        let lo = band.lo.unwrap();
        assert!(lo >= exact.raw() && lo - exact.raw() <= 2, "lo {lo} vs liquidation {}", exact.raw());
        assert_eq!(band.hi, None, "a long in size basis never loses on a rise");
    }

    #[test]
    fn two_markets_and_collateral_share_the_headroom_and_certify() {
        let markets = markets_at(&[10_000, 500, 20]);
        let engine = crate::Engine::new(&Config::embedded_default());
        let mut account = Account::new("a");
        account.settlement = Quote::from_int(2_000).unwrap();
        account.collateral.push((AssetId(0), Size::from_int(1).unwrap()));
        account.positions.push(long(1, 20, 500));
        let mut short = long(2, 500, 20);
        short.size = short.size.checked_neg().unwrap();
        short.cost = short.cost.checked_neg().unwrap();
        account.positions.push(short);
        let mut scratch = Scratch::default();
        exposures(&account, engine.assets(), &markets, &mut scratch.exposures).unwrap();
        assert_eq!(scratch.exposures.len(), 3);
        derive(account.settlement, 2, None, &markets, &mut scratch).unwrap();
        let floor = box_floor(account.settlement, &scratch.exposures, &scratch.bands, &markets).unwrap();
        assert!(floor >= slack(2));
        for (e, band) in scratch.exposures.iter().zip(&scratch.bands) {
            assert!(band.lo.is_none_or(|lo| lo <= e.mark) && band.hi.is_none_or(|hi| hi >= e.mark));
        }
        // The short in SOL has a finite top; BTC collateral only a bottom.
        assert!(scratch.bands[1].hi.is_some() && scratch.bands[1].lo.is_none());
        assert!(scratch.bands[2].lo.is_some() && scratch.bands[2].hi.is_none());
    }

    #[test]
    fn no_headroom_gives_a_point_box() {
        let markets = markets_at(&[10_000, 500, 20]);
        let engine = crate::Engine::new(&Config::embedded_default());
        let mut account = Account::new("a");
        account.settlement = Quote::from_int(250).unwrap(); // exactly MM of 1 BTC at 10,000
        account.positions.push(long(0, 1, 10_000));
        let mut scratch = Scratch::default();
        exposures(&account, engine.assets(), &markets, &mut scratch.exposures).unwrap();
        derive(account.settlement, 1, None, &markets, &mut scratch).unwrap();
        let mark = markets[0].mark_price.unwrap().raw();
        assert_eq!(scratch.bands, vec![Band { market: MarketId(0), lo: Some(mark), hi: Some(mark) }]);
    }

    /// Wherever the i128 fast path answers, it gives the general derivation's bands: random
    /// accounts of one to three positions, long and short, with and without BTC collateral, at
    /// magnitudes from small to near the ends of i128; and it answers for most ordinary ones,
    /// several-position accounts included.
    #[test]
    fn linear_derivation_equals_the_general_one() {
        let engine = crate::Engine::new(&Config::embedded_default());
        let mut next = crate::num::xorshift(0x5151_7a7a_0101_2323);
        let (mut answered, mut answered_several, mut ordinary) = (0, 0, 0);
        for round in 0..2_000u32 {
            let bits = [20u32, 34, 44, 52, 62][(round % 5) as usize];
            let magnitude = |n: u64| ((n >> (64 - bits)) as i64).max(1);
            let markets = markets_at(&[10_000, 500, 20]);
            let mut account = Account::new("a");
            account.settlement = Quote::from_raw(i128::from(magnitude(next())) * 1_000_000);
            if next().is_multiple_of(3) {
                account.collateral.push((AssetId(0), Size::from_raw(magnitude(next()))));
            }
            for market in 0..3u16 {
                if market == 0 || next().is_multiple_of(2) {
                    let size = Size::from_raw(magnitude(next()) * if next().is_multiple_of(2) { 1 } else { -1 });
                    let entry = Price::from_raw(markets[market as usize].mark_price.unwrap().raw() / 100 * 99);
                    let cost = size.mul_price(entry);
                    account.positions.push(Position { market: MarketId(market), size, cost });
                }
            }
            let Ok(health) = crate::margin::health(&account, engine.assets(), &markets) else { continue };
            if health.below_maintenance() {
                continue;
            }
            let mut scratch = Scratch::default();
            exposures(&account, engine.assets(), &markets, &mut scratch.exposures).unwrap();
            let headroom = headroom(account.settlement, &scratch.exposures, &markets);
            let Ok(headroom_narrow) = i128::try_from(headroom) else { continue };
            ordinary += usize::from(bits <= 44);
            let mut fast = Vec::new();
            let linear = LinearAccount::of(&account, engine.assets(), &markets);
            if let Some(linear) = &linear {
                assert_eq!(linear.margin_fine, headroom_narrow, "the linear margin is the exact one: {account:?}");
            }
            if linear.and_then(|l| derive_linear(&l, account.positions.len(), &mut fast)).is_some() {
                derive(account.settlement, account.positions.len(), None, &markets, &mut scratch).unwrap();
                assert_eq!(fast, scratch.bands, "{account:?}");
                answered += usize::from(bits <= 44);
                answered_several += usize::from(bits <= 44 && account.positions.len() > 1);
            }
        }
        assert!(answered * 10 > ordinary * 9, "the fast path answers {answered} of {ordinary} ordinary accounts");
        assert!(answered_several * 4 > ordinary, "several-position accounts too ({answered_several})");
    }
}
