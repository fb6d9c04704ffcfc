//! Reference evaluator: a deliberately simple, slow recomputation of every account's equity,
//! maintenance margin and initial margin from the engine's ledger, in arbitrary precision.
//!
//! Written from docs/concepts.md, not from `margin.rs`. Every value is exact: a product of raw
//! fixed-point integers in arbitrary precision (`BigInt`, its scale tracked: `Size`, `Price` and
//! `Rate` raw carry 8 decimals, `Quote` 16) or a `BigRational` in natural units (1 USDC, 1 BTC).
//! Brackets are walked one by one, and rounding happens once per reported number, at the end, in
//! the direction the engine documents: equity and equity-without-profit round down to 1e-16, each
//! position's MM and IM round up to 1e-16, and an account's MM / IM are the sums of the rounded
//! per-position values.

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{Signed, Zero};
use solvent_core::config::{MarketParams, TierBasis, TierMode};
use solvent_core::margin::Health;
use solvent_core::state::{Account, Asset, Market, Position};
use solvent_core::{Engine, Price, Quote, Rate, Size};
use std::collections::HashMap;
use std::sync::LazyLock;

/// 10^0 ..= 10^40 as integers, computed once.
static POWERS_OF_TEN: LazyLock<Vec<BigInt>> =
    LazyLock::new(|| (0..=40).map(|n| num_traits::pow(BigInt::from(10), n)).collect());

/// 10^n as an integer.
pub fn ten_to(n: u32) -> BigInt {
    POWERS_OF_TEN[n as usize].clone()
}

/// 10^n as a rational.
pub fn pow10(n: u32) -> BigRational {
    BigRational::from_integer(ten_to(n))
}

/// A raw fixed-point integer with `decimals` decimals as an exact rational.
pub fn scaled(raw: i128, decimals: u32) -> BigRational {
    BigRational::new(BigInt::from(raw), ten_to(decimals))
}

pub fn price(p: Price) -> BigRational {
    scaled(i128::from(p.raw()), Price::DECIMALS)
}
pub fn size(s: Size) -> BigRational {
    scaled(i128::from(s.raw()), Size::DECIMALS)
}
pub fn quote(q: Quote) -> BigRational {
    scaled(q.raw(), Quote::DECIMALS)
}
pub fn rate(r: Rate) -> BigRational {
    scaled(i128::from(r.raw()), Rate::DECIMALS)
}

/// Round an exact amount of the settlement asset to a multiple of 1e-16, down (floor) or up
/// (ceiling), and return it as a `Quote` raw integer (arbitrary precision, so nothing can wrap).
pub fn to_quote_raw(value: &BigRational, up: bool) -> BigInt {
    // floor / ceil of (numerator x 10^16) / denominator; no reduction is needed for that.
    let scaled = BigRational::new_raw(value.numer() * ten_to(Quote::DECIMALS), value.denom().clone());
    if up {
        scaled.ceil().to_integer()
    } else {
        scaled.floor().to_integer()
    }
}

/// Exact maintenance margin of a position of `size` at `mark` under `params`,
/// as an exact decimal: `(numerator, decimals)` meaning numerator x 10^-decimals of the settlement
/// asset. Everything below is a product of raw fixed-point integers, so it is exact; the scale is
/// tracked alongside (a raw `Size` has 8 decimals, `Price` 8, `Rate` 8, `Quote` 16).
pub fn exact_position_mm_scaled(params: &MarketParams, size: Size, mark: Price) -> (BigInt, u32) {
    let magnitude = BigInt::from(size.raw()).abs();
    // The exposure the brackets measure, in the raw unit of their bounds: base units (Size raw,
    // 8 decimals) for `size`, quote notional (Quote raw, 16 decimals) for `notional`.
    let (exposure, exposure_decimals) = match params.tier_basis {
        TierBasis::Size => (magnitude, Size::DECIMALS),
        TierBasis::Notional => (magnitude * BigInt::from(mark.raw()), Size::DECIMALS + Price::DECIMALS),
    };
    let bounds: Vec<BigInt> = params.tiers.iter().map(|t| BigInt::from(t.from_raw)).collect();
    let rates: Vec<BigInt> = params.tiers.iter().map(|t| BigInt::from(t.mm_rate.raw())).collect();
    // Sum over brackets of rate x (exposure inside the bracket); scale: exposure + rate decimals.
    let weighted: BigInt = match params.tier_mode {
        TierMode::Marginal => {
            let mut total = BigInt::zero();
            for b in 0..bounds.len() {
                let lower = &bounds[b];
                if exposure <= *lower {
                    break; // this bracket and every one above it hold nothing
                }
                let inside = if b + 1 < bounds.len() && exposure > bounds[b + 1] {
                    &bounds[b + 1] - lower
                } else {
                    &exposure - lower
                };
                total += &rates[b] * inside;
            }
            total
        }
        TierMode::Whole => {
            // Bracket b contains x when from_b <= x < from_{b+1} (the last bracket is unbounded).
            let mut containing = None;
            for b in 0..bounds.len() {
                let above_lower = bounds[b] <= exposure;
                let below_upper = b + 1 == bounds.len() || exposure < bounds[b + 1];
                if above_lower && below_upper {
                    containing = Some(b);
                }
            }
            let b = containing.expect("the first bracket starts at 0, so every exposure has a bracket");
            &rates[b] * &exposure
        }
    };
    let decimals = exposure_decimals + Rate::DECIMALS;
    match params.tier_basis {
        // rate x base units is still base units: value them at mark.
        TierBasis::Size => (weighted * BigInt::from(mark.raw()), decimals + Price::DECIMALS),
        // rate x quote notional is quote.
        TierBasis::Notional => (weighted, decimals),
    }
}

/// Exact maintenance margin as a rational (see [`exact_position_mm_scaled`]).
pub fn exact_position_mm(params: &MarketParams, size: Size, mark: Price) -> BigRational {
    let (numerator, decimals) = exact_position_mm_scaled(params, size, mark);
    BigRational::new(numerator, ten_to(decimals))
}

/// numerator x 10^-decimals rounded to a whole number of `Quote` raw units (1e-16), down or up.
pub fn round_to_quote_raw(numerator: &BigInt, decimals: u32, up: bool) -> BigInt {
    assert!(decimals >= Quote::DECIMALS);
    let value = BigRational::new_raw(numerator.clone(), ten_to(decimals - Quote::DECIMALS));
    if up {
        value.ceil().to_integer()
    } else {
        value.floor().to_integer()
    }
}

/// The reference's view of one position.
#[derive(Clone, Debug)]
pub struct RefPosition {
    pub market: String,
    pub upnl: BigRational,
    /// Exact MM and IM as (numerator, decimals).
    pub mm_exact: (BigInt, u32),
    pub im_exact: (BigInt, u32),
    /// Rounded up to 1e-16, as `Quote` raw.
    pub mm_raw: BigInt,
    pub im_raw: BigInt,
}

/// The reference's view of one account: exact values and the rounded values the engine reports.
#[derive(Clone, Debug)]
pub struct RefHealth {
    pub collateral_exact: BigRational,
    pub upnl_exact: BigRational,
    pub equity_exact: BigRational,
    pub positions: Vec<RefPosition>,
    pub equity_raw: BigInt,
    pub upnl_raw: BigInt,
    pub equity_without_profit_raw: BigInt,
    pub mm_raw: BigInt,
    pub im_raw: BigInt,
}

impl RefHealth {
    /// The engine's `Health` as `Quote` raw integers, for an exact comparison with the reference.
    pub fn matches(&self, health: &Health) -> Result<(), String> {
        let fields = [
            ("equity", &self.equity_raw, health.equity),
            ("unrealized_pnl", &self.upnl_raw, health.unrealized_pnl),
            ("equity_without_profit", &self.equity_without_profit_raw, health.equity_without_profit),
            ("maintenance_margin", &self.mm_raw, health.maintenance_margin),
            ("initial_margin", &self.im_raw, health.initial_margin),
        ];
        let mut problems = Vec::new();
        for (name, expected, actual) in fields {
            if *expected != BigInt::from(actual.raw()) {
                problems.push(format!(
                    "{name}: reference {} != engine {}",
                    show_raw(expected),
                    show_raw(&BigInt::from(actual.raw()))
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Rounded equity >= rounded initial margin (what opening exposure needs).
    pub fn meets_initial(&self) -> bool {
        self.equity_raw >= self.im_raw
    }

    /// Rounded collateral + min(0, unrealized PnL) >= initial margin (what a withdrawal needs).
    pub fn may_withdraw(&self) -> bool {
        self.equity_without_profit_raw >= self.im_raw
    }
}

/// A `Quote` raw integer shown as a decimal (for messages).
pub fn show_raw(raw: &BigInt) -> String {
    let value = BigRational::new(raw.clone(), ten_to(Quote::DECIMALS));
    show(&value)
}

/// An exact rational shown as a decimal when it terminates within 24 places, else as a fraction.
pub fn show(value: &BigRational) -> String {
    let scaled = value * ten_to(24);
    if !scaled.is_integer() {
        return format!("{}/{}", value.numer(), value.denom());
    }
    let n = scaled.to_integer();
    let negative = n.is_negative();
    let digits = n.abs().to_string();
    let digits = format!("{digits:0>25}");
    let (int, frac) = digits.split_at(digits.len() - 24);
    let frac = frac.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// Value of the non-settlement collateral and the settlement balance, exact: settlement balance +
/// sum of amount x index price of the asset's index market x weight (zero without an index).
pub fn collateral_value(account: &Account, assets: &[Asset], markets: &[Market]) -> BigRational {
    // Exact integer products at their combined scale (8 + 8 + 8 = 24 decimals), then one division.
    let mut weighted = BigInt::zero();
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        let index_market = &markets[asset.index_market.0 as usize];
        if let Some(index) = index_market.index_price {
            weighted += BigInt::from(amount.raw()) * BigInt::from(index.raw()) * BigInt::from(asset.weight.raw());
        }
    }
    quote(account.settlement) + BigRational::new(weighted, ten_to(Size::DECIMALS + Price::DECIMALS + Rate::DECIMALS))
}

/// Exact unrealized PnL of a position at `mark`: size x mark - cost (8 + 8 = 16 decimals).
pub fn upnl(position: &Position, mark: Price) -> BigRational {
    let value = BigInt::from(position.size.raw()) * BigInt::from(mark.raw()) - BigInt::from(position.cost.raw());
    BigRational::new(value, ten_to(Quote::DECIMALS))
}

/// Recompute one account's health against the given tables.
pub fn account_health(account: &Account, assets: &[Asset], markets: &[Market]) -> Result<RefHealth, String> {
    let collateral_exact = collateral_value(account, assets, markets);
    let mut upnl_exact = BigRational::zero();
    let mut positions = Vec::new();
    let mut mm_raw = BigInt::zero();
    let mut im_raw = BigInt::zero();
    for position in &account.positions {
        let market = &markets[position.market.0 as usize];
        let mark = market
            .mark_price
            .ok_or_else(|| format!("account {}: position in {} without a mark price", account.name, market.name))?;
        let pnl = upnl(position, mark);
        let mm_exact = exact_position_mm_scaled(&market.params, position.size, mark);
        // IM = exact MM under the target rates x im_factor (8 more decimals) + add-on rate x
        // notional, rounded once. The effective rates (MM) and the target ones (IM) differ only
        // while an MM phase-in runs.
        let target = market.target_params();
        let im_mm = exact_position_mm_scaled(target, position.size, mark);
        let addon = im_addon_rate(account, position, assets, markets);
        let notional_addon =
            BigInt::from(position.size.raw()).abs() * BigInt::from(mark.raw()) * BigInt::from(addon.raw());
        let addon_decimals = Size::DECIMALS + Price::DECIMALS + Rate::DECIMALS;
        let im_decimals = (im_mm.1 + Rate::DECIMALS).max(addon_decimals);
        let im_numerator =
            &im_mm.0 * BigInt::from(target.im_factor.raw()) * ten_to(im_decimals - im_mm.1 - Rate::DECIMALS)
                + notional_addon * ten_to(im_decimals - addon_decimals);
        let im_exact = (im_numerator, im_decimals);
        let mm_pos = round_to_quote_raw(&mm_exact.0, mm_exact.1, true);
        let im_pos = round_to_quote_raw(&im_exact.0, im_exact.1, true);
        mm_raw += &mm_pos;
        im_raw += &im_pos;
        upnl_exact += &pnl;
        positions.push(RefPosition {
            market: market.name.to_string(),
            upnl: pnl,
            mm_exact,
            im_exact,
            mm_raw: mm_pos,
            im_raw: im_pos,
        });
    }
    if account.margin_model == solvent_core::state::MarginModel::Portfolio {
        let (mm, im) = portfolio_requirement(account, assets, markets)?;
        mm_raw = to_quote_raw(&mm, true);
        im_raw = to_quote_raw(&im, true);
    }
    let equity_exact = &collateral_exact + &upnl_exact;
    let losses_only = if upnl_exact.is_negative() { upnl_exact.clone() } else { BigRational::zero() };
    let upnl_scaled = &upnl_exact * ten_to(Quote::DECIMALS);
    if !upnl_scaled.is_integer() {
        return Err(format!("account {}: unrealized PnL {} is not a whole Quote", account.name, show(&upnl_exact)));
    }
    Ok(RefHealth {
        equity_raw: to_quote_raw(&equity_exact, false),
        upnl_raw: upnl_scaled.to_integer(),
        equity_without_profit_raw: to_quote_raw(&(&collateral_exact + losses_only), false),
        mm_raw,
        im_raw,
        collateral_exact,
        upnl_exact,
        equity_exact,
        positions,
    })
}

/// The IM add-on rate of a position: the market's `im_addon_rate`, plus its
/// `concentration_addon_rate` when the account's liquidation price under the target rates lies
/// in a cliff range (the liquidation price itself is checked against a brute-force replay in
/// `liquidation_map.rs`).
pub fn im_addon_rate(account: &Account, position: &Position, assets: &[Asset], markets: &[Market]) -> Rate {
    let target = markets[position.market.0 as usize].target_params();
    let mut rate = target.im_addon_rate.raw();
    if !target.cliff_ranges.is_empty() && target.concentration_addon_rate.is_positive() {
        let price = solvent_core::margin::liquidation_price_under(account, position.market, assets, markets, |m| {
            m.target_params()
        });
        if price.is_some_and(|p| target.cliff_ranges.iter().any(|r| r.from <= p && p <= r.to)) {
            rate += target.concentration_addon_rate.raw();
        }
    }
    Rate::from_raw(rate)
}

/// Everything the reference reads for one account: the account itself, and for each market it
/// holds a position in, the mark and the risk parameters; for each collateral asset, its weight
/// and the index of its index market. Equal inputs give equal outputs (the reference is pure), so
/// a result can be reused while its inputs are unchanged.
#[derive(Clone, Debug, PartialEq)]
struct Inputs {
    account: Account,
    markets: Vec<(Option<Price>, solvent_core::config::MarketParams, solvent_core::config::MarketParams)>,
    /// Weight, index and (read by portfolio margin) the index market's parameters.
    assets: Vec<(Rate, Option<Price>, solvent_core::config::PortfolioParams)>,
}

fn inputs_of(account: &Account, assets: &[Asset], markets: &[Market]) -> Inputs {
    Inputs {
        account: account.clone(),
        markets: account
            .positions
            .iter()
            .map(|p| {
                let market = &markets[p.market.0 as usize];
                (market.mark_price, market.params.clone(), market.target_params().clone())
            })
            .collect(),
        assets: account
            .collateral
            .iter()
            .map(|(id, _)| {
                let asset = &assets[id.0 as usize];
                let market = &markets[asset.index_market.0 as usize];
                (asset.weight, market.index_price, market.params.portfolio.clone())
            })
            .collect(),
    }
}

/// Memo of reference results per account name (pure function, keyed by its full inputs).
#[derive(Default)]
pub struct Memo {
    entries: HashMap<Box<str>, (Inputs, RefHealth)>,
}

impl Memo {
    /// The reference health of `account`, recomputed unless its inputs are exactly as last time.
    pub fn health(&mut self, account: &Account, assets: &[Asset], markets: &[Market]) -> Result<&RefHealth, String> {
        let inputs = inputs_of(account, assets, markets);
        let fresh = self.entries.get(&*account.name).is_none_or(|(seen, _)| *seen != inputs);
        if fresh {
            let health = account_health(account, assets, markets)?;
            self.entries.insert(account.name.as_str().into(), (inputs, health));
        }
        Ok(&self.entries[&*account.name].1)
    }
}

/// Recompute every account of the engine and compare with `Engine::health`, exactly. Returns the
/// exact sum of all accounts' unrealized PnL in `Quote` raw (for the conservation check).
pub fn check_engine(engine: &Engine, memo: &mut Memo) -> Result<BigInt, String> {
    check_engine_with(engine, engine.assets(), memo)
}

/// [`check_engine`] with the reference's own `assets` (their weights by [`WeightModel`]).
pub fn check_engine_with(engine: &Engine, assets: &[Asset], memo: &mut Memo) -> Result<BigInt, String> {
    let mut total_upnl = BigInt::zero();
    for account in engine.accounts() {
        let reference = memo.health(account, assets, engine.markets())?;
        let health =
            engine.health(&account.name).map_err(|e| format!("account {}: health failed: {e}", account.name))?;
        reference.matches(&health).map_err(|e| format!("account {}: {e}", account.name))?;
        total_upnl += &reference.upnl_raw;
    }
    Ok(total_upnl)
}

/// The account after a fill of signed `delta` at `trade_price` that adds exposure (the position
/// grows on its side, or flips), and a `fee` paid in the settlement asset. Such fills are exact:
/// growing adds delta x price to the cost basis; a flip closes the old side in full (its whole cost
/// leaves, the difference to delta x price is realized) and opens the rest at the trade price.
/// Returns `None` for a fill that only reduces (those never need margin).
pub fn exposure_adding_fill(
    account: &Account,
    market: solvent_core::state::MarketId,
    delta: Size,
    trade_price: Price,
    fee: Quote,
) -> Option<Account> {
    let before = account.position(market).copied().unwrap_or(Position { market, size: Size::ZERO, cost: Quote::ZERO });
    let old = i128::from(before.size.raw());
    let d = i128::from(delta.raw());
    let new = old + d;
    let grows = old == 0 || (old > 0) == (d > 0);
    let flips = old != 0 && new != 0 && (old > 0) != (new > 0);
    if !grows && !flips {
        return None;
    }
    let new_size = Size::from_raw(i64::try_from(new).ok()?);
    let mut after = account.clone();
    let mut settlement = quote(after.settlement) - quote(fee);
    let cost = if grows {
        quote(before.cost) + size(delta) * price(trade_price)
    } else {
        // The old side closes in full at the trade price: it realizes size x price - cost.
        settlement += size(before.size) * price(trade_price) - quote(before.cost);
        size(new_size) * price(trade_price)
    };
    after.settlement = exact_quote(&settlement)?;
    let position = Position { market, size: new_size, cost: exact_quote(&cost)? };
    match after.positions.iter().position(|p| p.market == market) {
        Some(i) => after.positions[i] = position,
        None => {
            after.positions.push(position);
            after.positions.sort_by_key(|p| p.market);
        }
    }
    Some(after)
}

/// An exact amount that is a whole number of `Quote` raw units and fits one.
pub fn exact_quote(value: &BigRational) -> Option<Quote> {
    let scaled = value * ten_to(Quote::DECIMALS);
    assert!(scaled.is_integer(), "{} is not a whole number of 1e-16", show(value));
    i128::try_from(scaled.to_integer()).ok().map(Quote::from_raw)
}

// ---------------------------------------------------------------------------------------------
// Funding and skew fees, recomputed from docs/margin.md in arbitrary precision.

/// floor(n / d) for big integers (d > 0).
fn floor_div(n: &BigInt, d: &BigInt) -> BigInt {
    BigRational::new(n.clone(), d.clone()).floor().to_integer()
}

/// The `funding` payments a clock event at `ts` must settle, per market in config order:
/// (account name or `None` for the inventory, market, balance change as `Quote` raw). `before` is
/// the state before the event, `after` the state after it (its marks are the refreshed ones).
pub fn expected_funding(before: &Engine, after: &Engine, ts: u64) -> Vec<(Option<String>, String, BigInt)> {
    let mut payments = Vec::new();
    for (i, market) in before.markets().iter().enumerate() {
        let (Some(state), p) = (market.perp.as_deref(), &market.params.perp) else { continue };
        if !p.funding_enabled || state.next_funding_ts == 0 || ts < state.next_funding_ts {
            continue;
        }
        let now = &after.markets()[i];
        let Some(mark) = now.mark_price else { continue };
        let (mut sum, mut samples) = (BigInt::from(state.premium_sum), state.premium_samples);
        if let (Some(m), Some(index), false) = (now.mark_price, now.index_price, now.frozen) {
            let diff = BigInt::from(m.raw()) - BigInt::from(index.raw());
            sum += floor_div(&(diff * BigInt::from(Rate::ONE_RAW)), &BigInt::from(index.raw()));
            samples += 1;
        }
        let premium = if samples == 0 { BigInt::zero() } else { floor_div(&sum, &BigInt::from(samples)) };
        let clamp = BigInt::from(p.funding_clamp.raw());
        let cap = BigInt::from(p.funding_cap.raw());
        let interest = BigInt::from(p.funding_interest_rate.raw());
        let spread = (&interest - &premium).clamp(-clamp.clone(), clamp);
        let base = (&premium + spread).clamp(-cap.clone(), cap.clone());
        let k = BigInt::from((ts - state.next_funding_ts) / p.funding_interval_ms + 1);
        let to16 = ten_to(8);
        let span = BigInt::from(p.funding_interval_ms) * &k;
        let day = BigInt::from(86_400_000u64);
        let velocity = match p.skew_scale {
            None => BigInt::zero(),
            Some(scale) => {
                let max = BigInt::from(p.max_funding_velocity.raw()) * &to16;
                let skew = -BigInt::from(market.inventory.size.raw());
                floor_div(&(skew * &max), &BigInt::from(scale.raw())).clamp(-max.clone(), max)
            }
        };
        let start = BigInt::from(state.velocity_rate);
        let end = &start + floor_div(&(&velocity * &span), &day);
        let term = floor_div(&((&start + &end) * &span), &(BigInt::from(2) * &day));
        let cap16 = &cap * &to16 * &k;
        let rate = (base * &to16 * &k + term).clamp(-cap16.clone(), cap16);
        let change =
            |size: Size| floor_div(&(-(BigInt::from(size.raw()) * BigInt::from(mark.raw()) * &rate)), &ten_to(16));
        let id = solvent_core::state::MarketId(i as u16);
        for account in before.accounts() {
            if let Some(position) = account.position(id) {
                payments.push((Some(account.name.to_string()), market.name.to_string(), change(position.size)));
            }
        }
        if !market.inventory.size.is_zero() {
            payments.push((None, market.name.to_string(), change(market.inventory.size)));
        }
    }
    payments
}

/// The skew fees of a trade of `size` in `market` (buyer, seller; negative: a rebate), as the
/// docs define them: each side's cost q x index x (S + q/2) / skew_scale with S = -inventory;
/// fees rounded up go into the pool first, then rebates rounded down come out of it, never more.
pub fn expected_skew_fees(market: &Market, size_traded: Size) -> (Quote, Quote) {
    let (Some(scale), Some(state)) = (market.params.perp.skew_scale, market.perp.as_deref()) else {
        return (Quote::ZERO, Quote::ZERO);
    };
    let Some(index) = market.index_price.or(market.mark_price) else { return (Quote::ZERO, Quote::ZERO) };
    let skew = size(Size::from_raw(-market.inventory.size.raw()));
    let scale = size(scale);
    let mut pool = quote(state.skew_pool);
    let sides = [size(size_traded), -size(size_traded)];
    let exact: Vec<BigRational> =
        sides.iter().map(|q| q * price(index) * (&skew + q / BigRational::from_integer(2.into())) / &scale).collect();
    let mut out = [BigInt::zero(), BigInt::zero()];
    for (o, x) in out.iter_mut().zip(&exact) {
        if x.is_positive() {
            *o = to_quote_raw(x, true);
            pool += BigRational::new(o.clone(), ten_to(16));
        }
    }
    for (o, x) in out.iter_mut().zip(&exact) {
        if !x.is_positive() {
            let rebate = to_quote_raw(&-x, false).min(to_quote_raw(&pool, false));
            pool -= BigRational::new(rebate.clone(), ten_to(16));
            *o = -rebate;
        }
    }
    let q = |v: &BigInt| Quote::from_raw(i128::try_from(v).expect("fees fit"));
    (q(&out[0]), q(&out[1]))
}

/// Portfolio margin by its definition (docs/margin.md section 6), in exact rationals: the exact
/// MM and IM before their final rounding up.
pub fn portfolio_requirement(
    account: &Account,
    assets: &[Asset],
    markets: &[Market],
) -> Result<(BigRational, BigRational), String> {
    use std::collections::BTreeMap;
    // Per market: (value moved by the scenarios, standalone tier MM).
    let mut legs: BTreeMap<u16, (BigRational, BigRational)> = BTreeMap::new();
    for position in &account.positions {
        let market = &markets[position.market.0 as usize];
        let mark = market.mark_price.ok_or("position without a mark")?;
        let leg = legs.entry(position.market.0).or_insert((BigRational::zero(), BigRational::zero()));
        leg.0 += size(position.size) * price(mark);
        leg.1 += exact_position_mm(&market.params, position.size, mark);
    }
    for (asset_id, amount) in &account.collateral {
        let asset = &assets[asset_id.0 as usize];
        if let Some(index) = markets[asset.index_market.0 as usize].index_price {
            let leg = legs.entry(asset.index_market.0).or_insert((BigRational::zero(), BigRational::zero()));
            leg.0 += size(*amount) * price(index) * rate(asset.weight);
        }
    }
    let params = |m: u16| &markets[m as usize].params.portfolio;
    let buckets = legs.keys().map(|m| params(*m).pm_buckets).max().unwrap_or(9);
    let moves = [-66i64, -33, 50, 100, 200, 300, 400, 500];
    let one = BigRational::from_integer(1.into());
    let scenario = |m: u16, s: usize| -> (BigRational, BigRational) {
        let range = rate(params(m).pm_range);
        if s < buckets as usize {
            let steps = BigRational::from_integer(BigInt::from(buckets - 1));
            let k = BigRational::from_integer(BigInt::from(2 * s as i64 - (buckets as i64 - 1)));
            (&range * k / steps, one.clone())
        } else {
            let mv = BigRational::new(BigInt::from(moves[s - buckets as usize]), BigInt::from(100));
            let weight = (&range / mv.abs()).min(one.clone());
            (mv, weight)
        }
    };
    let count = buckets as usize + moves.len();
    let (mut standalone, mut tier) = (BigRational::zero(), BigRational::zero());
    let mut totals = vec![BigRational::zero(); count];
    for (m, (value, tier_mm)) in &legs {
        let mut worst = BigRational::zero();
        for (s, total) in totals.iter_mut().enumerate() {
            let (mv, weight) = scenario(*m, s);
            let loss = -(value * mv * weight);
            *total += &loss;
            worst = worst.max(loss);
        }
        standalone += worst;
        tier += tier_mm;
    }
    let joint = totals.into_iter().max().unwrap_or_else(BigRational::zero).max(BigRational::zero());
    let mut loadings: Vec<BigRational> = legs.keys().map(|m| rate(params(*m).pm_correlation)).collect();
    loadings.sort();
    let rho = match loadings.as_slice() {
        [a, b, ..] => {
            (a * b * BigRational::from(ten_to(Rate::DECIMALS))).floor() / BigRational::from(ten_to(Rate::DECIMALS))
        }
        _ => BigRational::zero(),
    };
    let largest = |f: fn(&solvent_core::config::PortfolioParams) -> Rate| {
        legs.keys().map(|m| rate(f(params(*m)))).max().unwrap_or_else(BigRational::zero)
    };
    let (mm_factor, im_factor, floor) =
        (largest(|p| p.pm_mm_factor), largest(|p| p.pm_im_factor), largest(|p| p.pm_floor));
    let loss = &rho * &joint + (&one - &rho) * &standalone;
    let mm = (&mm_factor * &loss).max(&tier - &mm_factor * (&standalone - &loss)).max(&floor * &tier);
    let im = &mm * im_factor;
    Ok((mm, im))
}

/// The effective collateral weights by the documented rule (docs/margin.md, "Collateral weights"),
/// recomputed from the configuration and the accepted events alone (not from the engine's
/// weights): normal weight = floor(weight x (1 - bridge_haircut)); a status change at ts starts
/// a move from the current weight to the status's target (halted_weight / depeg_weight, each with
/// the haircut) ending at ts + weight_phase_ms; a later accepted event that moves the clock (and
/// is not an `asset_status` event) applies step k = floor(elapsed x 32 / span) when k is past the
/// last step, weight = floor((start x (32 - k) + target x k) / 32), the target at the end.
#[derive(Clone, Debug, Default)]
pub struct WeightModel {
    assets: Vec<ModelAsset>,
    clock: u64,
}

#[derive(Clone, Debug)]
struct ModelAsset {
    name: String,
    config: solvent_core::config::AssetConfig,
    status: &'static str,
    weight: i64,
    /// (start, target, start_ts, end_ts, steps)
    phase: Option<(i64, i64, u64, u64, u64)>,
}

const WEIGHT_STEPS: i64 = 32;

fn cut(weight: Rate, haircut: Rate) -> i64 {
    let one = Rate::ONE_RAW as i128;
    (weight.raw() as i128 * (one - haircut.raw() as i128)).div_euclid(one) as i64
}

impl WeightModel {
    pub fn new(config: &solvent_core::Config) -> WeightModel {
        let assets = config
            .assets
            .iter()
            .map(|a| ModelAsset {
                name: a.name.clone(),
                config: a.clone(),
                status: "normal",
                weight: cut(a.weight, a.bridge_haircut),
                phase: None,
            })
            .collect();
        WeightModel { assets, clock: 0 }
    }

    /// Follow one accepted event.
    pub fn record_accepted(&mut self, event: &solvent_core::Event) {
        let ts = event.ts();
        let moved = event.advances_clock() && ts > self.clock;
        if event.advances_clock() {
            self.clock = self.clock.max(ts);
        }
        if let solvent_core::Event::AssetStatus(update) = event {
            let Some(asset) = self.assets.iter_mut().find(|a| a.name == update.asset) else { return };
            let status = update.status.name();
            if status == asset.status {
                return;
            }
            let base = match status {
                "normal" => asset.config.weight,
                "bridge_halted" => asset.config.halted_weight,
                _ => asset.config.depeg_weight,
            };
            let target = cut(base, asset.config.bridge_haircut);
            asset.status = status;
            asset.phase =
                (target != asset.weight).then_some((asset.weight, target, ts, ts + asset.config.weight_phase_ms, 0));
            return;
        }
        if !moved {
            return;
        }
        for asset in &mut self.assets {
            let Some((start, target, start_ts, end_ts, steps)) = asset.phase else { continue };
            if ts >= end_ts {
                asset.weight = target;
                asset.phase = None;
                continue;
            }
            let k = ((ts - start_ts) as i128 * WEIGHT_STEPS as i128 / (end_ts - start_ts).max(1) as i128) as i64;
            if k as u64 > steps {
                let w =
                    (start as i128 * (WEIGHT_STEPS - k) as i128 + target as i128 * k as i128) / WEIGHT_STEPS as i128;
                asset.weight = w as i64;
                asset.phase = Some((start, target, start_ts, end_ts, k as u64));
            }
        }
    }

    /// The engine's assets with the model's weights, after checking that the engine agrees.
    pub fn assets(&self, engine: &Engine) -> Result<Vec<Asset>, String> {
        let mut assets = engine.assets().to_vec();
        for asset in &mut assets {
            let Some(model) = self.assets.iter().find(|m| *m.name == *asset.name) else { continue };
            if asset.weight.raw() != model.weight || asset.risk.status.name() != model.status {
                return Err(format!(
                    "asset {}: engine weight {} ({}), the documented rule gives {} ({})",
                    asset.name,
                    asset.weight,
                    asset.risk.status.name(),
                    Rate::from_raw(model.weight),
                    model.status
                ));
            }
            asset.weight = Rate::from_raw(model.weight);
        }
        Ok(assets)
    }
}
