//! Streaming oracle defence.
//!
//! On arrival a tick is checked only for what it claims about itself: a whitelisted source, a
//! valid signature when the source has a key, a timestamp not too far ahead of the engine clock
//! and newer than that source's last tick. Refusals leave the state unchanged.
//!
//! Judging happens when the index is computed ([`judge`]), after every accepted tick and every
//! clock event, so honest sources moving together are never blocked by the order of their ticks:
//! 1. a source older than `max_age_ms`, or with `conf` / price above `max_conf`, is unusable;
//! 2. the median of the rest is taken; sources farther than `max_deviation` from it are outliers;
//! 3. below `quorum` usable sources the market **freezes** (mark held, liquidations paused);
//! 4. the index is the median of the usable sources; when every one reports `conf`, a
//!    confidence-weighted median, but clamped between the two middle order statistics, so no
//!    weighting can take it outside the range of a majority;
//! 5. the index moves at most `max_jump` from where it stood at the start of each one-second
//!    window of engine time; a larger move is clamped and flagged with an `alert` effect.
//!
//! Why a minority cannot move the mark: with n usable sources of which f < n/2 lie, the lower and
//! upper medians are both bounded by honest values, and every step above only picks a value
//! between them (or holds the previous one).

use crate::config::{MarketParams, MAX_SOURCES};
use crate::effect::{Effect, EffectKind};
use crate::engine::Engine;
use crate::error::Error;
use crate::event::PriceTick;
use crate::num::{mul_div, Price, Rate, Round, Size};
use crate::state::{Market, MarketId, SourceStatus, Tick};

/// Length of a jump-clamp window, engine milliseconds.
pub const JUMP_WINDOW_MS: u64 = 1_000;

/// Canonical bytes a source signs: tag, market, source (length-prefixed), raw price (i64 LE,
/// 8 decimals) and ts (u64 LE).
pub fn tick_message(market: &str, source: &str, price: Price, ts: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(64);
    message.extend_from_slice(b"solvent-tick-v1");
    for part in [market, source] {
        message.extend_from_slice(&(part.len() as u64).to_le_bytes());
        message.extend_from_slice(part.as_bytes());
    }
    message.extend_from_slice(&price.raw().to_le_bytes());
    message.extend_from_slice(&ts.to_le_bytes());
    message
}

/// Median of `prices` (sorted in place). For an even count, the mean of the two middle values
/// rounded down. `None` for an empty slice.
pub fn median(prices: &mut [Price]) -> Option<Price> {
    prices.sort_unstable();
    median_of_sorted(prices)
}

/// The lower weighted median of (price, weight) pairs, clamped between the lower and upper
/// unweighted medians. Pairs are sorted in place. `None` for an empty slice.
pub fn clamped_weighted_median(pairs: &mut [(Price, u128)]) -> Option<Price> {
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_unstable();
    let n = pairs.len();
    let (lower, upper) = (pairs[(n - 1) / 2].0, pairs[n / 2].0);
    let total: u128 = pairs.iter().map(|(_, w)| *w).sum();
    let mut cumulative = 0u128;
    let mut chosen = pairs[n - 1].0;
    for (price, weight) in pairs.iter() {
        cumulative += weight;
        if cumulative * 2 >= total {
            chosen = *price;
            break;
        }
    }
    Some(chosen.clamp(lower, upper))
}

/// The outcome of judging a market's sources at engine time `now_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub statuses: [SourceStatus; MAX_SOURCES],
    pub usable: u32,
    /// `None` when fewer than `quorum` sources are usable.
    pub index: Option<Price>,
}

/// Insert `price` (from source `origin`) into the ascending `prices[..len]`, after every entry
/// <= it, so equal prices keep source order; `origins` moves along. At most `N` (<= `MAX_SOURCES`)
/// entries, so this insertion sort is a handful of compares, with no allocation.
#[inline(always)]
fn insert_sorted<const N: usize>(prices: &mut [Price; N], origins: &mut [u8; N], len: usize, price: Price, origin: u8) {
    assert!(len < N);
    let mut k = len;
    while k > 0 && prices[k - 1] > price {
        prices[k] = prices[k - 1];
        origins[k] = origins[k - 1];
        k -= 1;
    }
    prices[k] = price;
    origins[k] = origin;
}

/// Pure: judge every source of `market` and compute the raw (unclamped) index.
///
/// One sort: the usable sources are the fresh ones within `max_deviation` of the fresh median,
/// which is a contiguous run of the sorted fresh prices, so their median needs no second sort.
pub fn judge(market: &Market, now_ms: u64) -> Judgement {
    // Most markets have a handful of sources: a small scratch array is cheaper to set up.
    if market.sources.len() <= 8 {
        judge_with::<8>(market, now_ms)
    } else {
        judge_with::<MAX_SOURCES>(market, now_ms)
    }
}

fn judge_with<const N: usize>(market: &Market, now_ms: u64) -> Judgement {
    const { assert!(N <= MAX_SOURCES) };
    assert!(market.sources.len() <= N);
    let params = &market.params;
    let mut statuses = [SourceStatus::Missing; MAX_SOURCES];
    // The fresh sources' prices, ascending, and the source each came from.
    let (mut sorted, mut origins, mut fresh_count, mut with_conf) = ([Price::ZERO; N], [0u8; N], 0, 0);
    // Stale <=> now - ts > max_age (saturating) <=> ts < now - max_age.
    let fresh_from_ms = now_ms.saturating_sub(params.max_age_ms);
    for (i, source) in market.sources.iter().enumerate() {
        let Some(tick) = source.latest else { continue };
        statuses[i] = if tick.ts < fresh_from_ms {
            SourceStatus::Stale
        } else if conf_too_wide(&tick, params) {
            SourceStatus::WideConf
        } else {
            insert_sorted(&mut sorted, &mut origins, fresh_count, tick.price, i as u8);
            fresh_count += 1;
            with_conf += usize::from(tick.conf.is_some());
            SourceStatus::Usable
        };
    }
    let prices = &sorted[..fresh_count];
    let Some(first_median) = median_of_sorted(prices) else {
        return Judgement { statuses, usable: 0, index: None };
    };
    let inside = |p: &Price| !is_outlier(*p, first_median, params.max_deviation);
    let start = prices.iter().position(inside).unwrap_or(0);
    let end = prices.iter().rposition(inside).map_or(0, |i| i + 1);
    let source_at = |k: usize| usize::from(origins[k]);
    for k in (0..start).chain(end..prices.len()) {
        statuses[source_at(k)] = SourceStatus::Outlier;
    }
    let usable = (end - start) as u32;
    let conf_of = |k: usize| market.sources[source_at(k)].latest.and_then(|t| t.conf);
    let index = if usable < params.quorum {
        None
    } else if with_conf > 0 && (start..end).all(|k| conf_of(k).is_some()) {
        let mut pairs = [(Price::ZERO, 0u128); MAX_SOURCES];
        for (pair, k) in pairs.iter_mut().zip(start..end) {
            *pair = (prices[k], confidence_weight(conf_of(k)));
        }
        clamped_weighted_median(&mut pairs[..usable as usize])
    } else {
        median_of_sorted(&prices[start..end])
    };
    Judgement { statuses, usable, index }
}

/// Median of an already sorted slice (mean of the two middle values, rounded down, when even).
fn median_of_sorted(sorted: &[Price]) -> Option<Price> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    if n % 2 == 1 {
        return Some(sorted[n / 2]);
    }
    let sum = i128::from(sorted[n / 2 - 1].raw()) + i128::from(sorted[n / 2].raw());
    Some(Price::from_raw(sum.div_euclid(2) as i64))
}

fn conf_too_wide(tick: &Tick, params: &MarketParams) -> bool {
    // conf / price > max_conf  <=>  conf x ONE > price x max_conf (all positive).
    tick.conf.is_some_and(|conf| {
        i128::from(conf.raw()) * i128::from(Rate::ONE_RAW)
            > i128::from(tick.price.raw()) * i128::from(params.max_conf.raw())
    })
}

fn is_outlier(price: Price, median: Price, max_deviation: Rate) -> bool {
    let distance = (i128::from(price.raw()) - i128::from(median.raw())).abs();
    distance * i128::from(Rate::ONE_RAW) > i128::from(median.raw()) * i128::from(max_deviation.raw())
}

/// Weight 10^16 / conf (conf in raw units, at least 1): tighter intervals weigh more.
fn confidence_weight(conf: Option<Price>) -> u128 {
    let conf_raw = conf.map_or(1, |c| c.raw().max(1)) as u128;
    10u128.pow(16) / conf_raw
}

/// Pure: bound `raw` to within `max_jump` x (window length) of the window's anchor index.
/// Returns the index, whether it was clamped, and the anchor to keep.
pub fn clamp_jump(
    anchor: Option<(Price, u64)>,
    raw: Price,
    now_ms: u64,
    max_jump: Rate,
) -> (Price, bool, (Price, u64)) {
    let Some((anchor_price, anchor_ts)) = anchor else {
        return (raw, false, (raw, now_ms));
    };
    let elapsed_ms = now_ms.saturating_sub(anchor_ts).max(JUMP_WINDOW_MS);
    let anchor_raw = i128::from(anchor_price.raw());
    let next_anchor = |index: Price| {
        if now_ms.saturating_sub(anchor_ts) >= JUMP_WINDOW_MS {
            (index, now_ms)
        } else {
            (anchor_price, anchor_ts)
        }
    };
    // Fast path without division: |raw - anchor| x ONE x window <= anchor x max_jump x elapsed.
    // Magnitudes in u128: distance < 2^64 and ONE x window < 2^37, anchor and max_jump < 2^63, so
    // only the last product can overflow, and then the bound exceeds every price (no clamp).
    if let (Ok(anchor_mag), Ok(jump_mag)) = (u128::try_from(anchor_raw), u128::try_from(max_jump.raw())) {
        let distance = (i128::from(raw.raw()) - anchor_raw).unsigned_abs();
        let lhs = distance * u128::from(Rate::ONE_RAW.unsigned_abs() * JUMP_WINDOW_MS);
        match (anchor_mag * jump_mag).checked_mul(u128::from(elapsed_ms)) {
            Some(rhs) if lhs > rhs => {}
            _ => return (raw, false, next_anchor(raw)),
        }
    }
    // bound = anchor x max_jump x elapsed / window, rounded down; i128 (a bound too large to
    // represent means no bound). Plain i128 keeps this hot path free of 256-bit division.
    let bound = anchor_raw
        .checked_mul(i128::from(max_jump.raw()))
        .and_then(|v| v.checked_mul(i128::from(elapsed_ms)))
        .map_or(i128::MAX, |v| v / (i128::from(Rate::ONE_RAW) * i128::from(JUMP_WINDOW_MS)));
    let low = anchor_raw.saturating_sub(bound).max(1);
    let high = anchor_raw.saturating_add(bound).min(i128::from(i64::MAX));
    let index = Price::from_raw(i128::from(raw.raw()).clamp(low, high) as i64);
    (index, index != raw, next_anchor(index))
}

/// Mark = index + EMA of the basis, the basis capped at `max_deviation` x index; at least 1 raw.
pub fn mark_from(index: Price, basis_ema_raw: i64, params: &MarketParams) -> Price {
    if params.mark_ema_ms == 0 {
        return index;
    }
    let cap = mul_div(
        i128::from(index.raw()),
        i128::from(params.max_deviation.raw()),
        i128::from(Rate::ONE_RAW),
        Round::Down,
    )
    .unwrap_or(0);
    let basis = i128::from(basis_ema_raw).clamp(-cap, cap);
    let mark = (i128::from(index.raw()) + basis).clamp(1, i128::from(i64::MAX));
    Price::from_raw(mark as i64)
}

/// Pure: the basis EMA after a trade of `size` at `trade_price` when the index is `index`,
/// `elapsed_ms` after the previous sample, with `open_interest` after the trade. Weight of the new
/// sample: min(1, elapsed / mark_ema_ms) x min(1, size / open interest), each rounded down, so a
/// trade of dust moves the mark by a dust share of the way (a market with no open interest left
/// gives the size factor 1).
pub fn updated_basis(
    ema_raw: i64,
    index: Price,
    trade_price: Price,
    elapsed_ms: u64,
    ema_ms: u64,
    size: Size,
    open_interest: Size,
) -> i64 {
    let sample = i128::from(trade_price.raw()) - i128::from(index.raw());
    let weight_num = i128::from(elapsed_ms.min(ema_ms));
    let step = mul_div(sample - i128::from(ema_raw), weight_num, i128::from(ema_ms.max(1)), Round::Down).unwrap_or(0);
    let step = match open_interest.raw() {
        oi if oi > 0 => {
            let size_num = i128::from(size.raw().clamp(0, oi));
            mul_div(step, size_num, i128::from(oi), Round::Down).unwrap_or(0)
        }
        _ => step,
    };
    (i128::from(ema_raw) + step).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The oracle's whole work for one tick on one market at engine time `now_ms`: find the source,
/// the arrival checks, record the tick, then [`refresh`]. A refused tick changes nothing.
pub fn on_tick(
    market: &mut Market,
    tick: &PriceTick,
    now_ms: u64,
    seq: u64,
    out: &mut Vec<Effect>,
) -> Result<(), Error> {
    let source_index = market
        .sources
        .iter()
        .position(|s| *s.name == *tick.source)
        .ok_or_else(|| Error::UnknownSource { market: tick.market.clone(), source_name: tick.source.clone() })?;
    check_tick(market, source_index, tick, now_ms)?;
    let source = &mut market.sources[source_index];
    source.latest = Some(Tick { price: tick.price, ts: tick.ts, conf: tick.conf });
    source.counters.accepted += 1;
    refresh(market, now_ms, seq, out);
    Ok(())
}

/// Re-judge a market's sources at engine time `now_ms`, update index and mark, freeze or thaw,
/// and emit what changed. Effects are built in cold helpers: the common tick changes no status
/// and emits nothing.
pub fn refresh(market: &mut Market, now_ms: u64, seq: u64, out: &mut Vec<Effect>) {
    let judgement = judge(market, now_ms);
    record_statuses(market, &judgement, now_ms, seq, out);
    let Some(raw_index) = judgement.index else {
        if !market.frozen {
            market.frozen = true;
            out.push(frozen_effect(market, judgement.usable, now_ms, seq));
        }
        return;
    };
    let thawed = market.frozen;
    market.frozen = false;
    let (index, clamped, anchor) = clamp_jump(market.jump_anchor, raw_index, now_ms, market.params.max_jump);
    market.jump_anchor = Some(anchor);
    market.clamped = clamped;
    market.index_price = Some(index);
    market.mark_price = Some(mark_from(index, market.basis_ema_raw, &market.params));
    if thawed {
        out.push(thawed_effect(market, judgement.usable, index, now_ms, seq));
    }
    if clamped {
        out.push(clamped_effect(market, raw_index, index, now_ms, seq));
    }
}

#[cold]
fn frozen_effect(market: &Market, usable: u32, now_ms: u64, seq: u64) -> Effect {
    let kind = EffectKind::OracleFrozen {
        market: market.name.to_string(),
        usable,
        quorum: market.params.quorum,
        mark_price: market.mark_price,
    };
    Effect::new(seq, now_ms, kind)
}

#[cold]
fn thawed_effect(market: &Market, usable: u32, index: Price, now_ms: u64, seq: u64) -> Effect {
    let kind = EffectKind::OracleThawed {
        market: market.name.to_string(),
        usable,
        quorum: market.params.quorum,
        index_price: index,
    };
    Effect::new(seq, now_ms, kind)
}

#[cold]
fn clamped_effect(market: &Market, raw_index: Price, index: Price, now_ms: u64, seq: u64) -> Effect {
    let message = format!(
        "index of {} wanted {raw_index}, held at {index} by max_jump {}/s",
        market.name, market.params.max_jump
    );
    let kind = EffectKind::Alert { alert: "jump_clamped".into(), market: market.name.to_string(), message };
    Effect::new(seq, now_ms, kind)
}

/// Store each source's new status; a source that stops counting is counted and reported.
fn record_statuses(market: &mut Market, judgement: &Judgement, now_ms: u64, seq: u64, out: &mut Vec<Effect>) {
    for (i, source) in market.sources.iter_mut().enumerate() {
        let status = judgement.statuses[i];
        if status == source.status {
            continue;
        }
        source.status = status;
        let counter = match status {
            SourceStatus::Stale => &mut source.counters.stale,
            SourceStatus::Outlier => &mut source.counters.outlier,
            SourceStatus::WideConf => &mut source.counters.wide_conf,
            SourceStatus::Usable | SourceStatus::Missing => continue,
        };
        *counter += 1;
        out.push(unusable_effect(&market.name, &source.name, status, now_ms, seq));
    }
}

#[cold]
fn unusable_effect(market_name: &str, source_name: &str, status: SourceStatus, now_ms: u64, seq: u64) -> Effect {
    let message =
        format!("source {source_name} of {market_name} is {} and no longer counts toward the index", status.name());
    let kind = EffectKind::OracleRejected {
        market: market_name.to_string(),
        source: source_name.to_string(),
        reason: status.name().to_string(),
        event_refused: false,
        message,
    };
    Effect::new(seq, now_ms, kind)
}

impl Engine {
    pub(crate) fn price(&mut self, seq: u64, tick: &PriceTick, out: &mut Vec<Effect>) -> Result<(), Error> {
        let market_id = self.market_id(&tick.market)?;
        on_tick(&mut self.markets[market_id.0 as usize], tick, self.last_ts, seq, out)
    }

    pub(crate) fn clock(&mut self, seq: u64, ts: u64, out: &mut Vec<Effect>) -> Result<(), Error> {
        self.last_ts = ts; // a clock event cannot fail: commit its time first
        self.refresh_all_markets(seq, out);
        self.funding_on_clock(seq, ts, out);
        Ok(())
    }

    pub(crate) fn refresh_all_markets(&mut self, seq: u64, out: &mut Vec<Effect>) {
        for i in 0..self.markets.len() {
            self.refresh_market(MarketId(i as u16), seq, out);
        }
    }

    /// Whether a market can price new exposure at engine time `now_ms`: not frozen, and its
    /// sources would still make quorum at that time (time may have moved since the last judging).
    pub fn market_live_at(&self, market_id: MarketId, now_ms: u64) -> bool {
        let market = &self.markets[market_id.0 as usize];
        !market.frozen && (now_ms <= self.last_ts || judge(market, now_ms).index.is_some())
    }

    /// [`refresh`] one market at the engine clock.
    pub(crate) fn refresh_market(&mut self, market_id: MarketId, seq: u64, out: &mut Vec<Effect>) {
        refresh(&mut self.markets[market_id.0 as usize], self.last_ts, seq, out);
    }

    /// Telemetry for a refused tick (the state hash does not cover counters).
    pub(crate) fn count_oracle_rejection(&mut self, error: &Error) {
        let Some((market_name, source_name)) = error.oracle_subject() else { return };
        let Some(market) = self.markets.iter_mut().find(|m| &*m.name == market_name) else { return };
        let Some(source) = market.sources.iter_mut().find(|s| &*s.name == source_name) else {
            market.unknown_source_ticks += 1;
            return;
        };
        match error {
            Error::BadSignature { .. } => source.counters.bad_signature += 1,
            Error::FutureTs { .. } => source.counters.future_ts += 1,
            Error::ReplayedTick { .. } => source.counters.replayed += 1,
            _ => {}
        }
    }
}

/// Pure: the arrival checks of a tick from a whitelisted source.
fn check_tick(market: &Market, source_index: usize, tick: &PriceTick, now: u64) -> Result<(), Error> {
    let source = &market.sources[source_index];
    let max_future_ms = market.params.max_future_ms;
    if tick.ts > now.saturating_add(max_future_ms) {
        let (market, source_name) = (tick.market.clone(), tick.source.clone());
        return Err(Error::FutureTs { market, source_name, ts: tick.ts, now, max_future_ms });
    }
    if let Some(last) = source.latest {
        if tick.ts <= last.ts {
            let (market, source_name) = (tick.market.clone(), tick.source.clone());
            return Err(Error::ReplayedTick { market, source_name, ts: tick.ts, last_ts: last.ts });
        }
    }
    if let Some(key) = &source.public_key {
        verify_signature(key, tick)?;
    }
    Ok(())
}

fn verify_signature(key: &[u8; 32], tick: &PriceTick) -> Result<(), Error> {
    let bad = |detail| Error::BadSignature { market: tick.market.clone(), source_name: tick.source.clone(), detail };
    let sig_hex = tick.sig.as_deref().ok_or_else(|| bad("the source has a key and the tick is unsigned"))?;
    let mut sig_bytes = [0u8; 64];
    hex::decode_to_slice(sig_hex, &mut sig_bytes).map_err(|_| bad("signature is not 128 hex digits"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(key).map_err(|_| bad("configured key is invalid"))?;
    let signature = ed25519_dalek::Signature::from_bytes(&sig_bytes);
    let message = tick_message(&tick.market, &tick.source, tick.price, tick.ts);
    key.verify_strict(&message, &signature).map_err(|_| bad("signature does not verify"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(values: &[i64]) -> Vec<Price> {
        values.iter().map(|v| Price::from_int(*v).unwrap()).collect()
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&mut prices(&[3, 1, 2])), Some(Price::from_int(2).unwrap()));
        assert_eq!(median(&mut prices(&[4, 1, 3, 2])), Some(Price::parse("2.5").unwrap()));
        assert_eq!(median(&mut []), None);
        let mut odd_cents = vec![Price::from_raw(1), Price::from_raw(2)];
        assert_eq!(median(&mut odd_cents), Some(Price::from_raw(1)));
    }

    #[test]
    fn weighted_median_stays_between_the_middle_order_statistics() {
        let p = |v: i64| Price::from_int(v).unwrap();
        // A very confident liar cannot pull an odd set off its median.
        let mut pairs = vec![(p(100), 1), (p(101), 1), (p(150), 1_000_000)];
        assert_eq!(clamped_weighted_median(&mut pairs), Some(p(101)));
        // With an even set, weighting chooses inside [lower, upper] median.
        let mut pairs = vec![(p(100), 1), (p(101), 1), (p(102), 10), (p(150), 1)];
        assert_eq!(clamped_weighted_median(&mut pairs), Some(p(102)));
        let mut pairs = vec![(p(100), 1), (p(101), 100), (p(102), 1), (p(150), 1)];
        assert_eq!(clamped_weighted_median(&mut pairs), Some(p(101)));
    }

    #[test]
    fn jump_clamp_bounds_each_window() {
        let p = |v: &str| Price::parse(v).unwrap();
        let max_jump = Rate::parse("0.1").unwrap();
        let (index, clamped, anchor) = clamp_jump(Some((p("100"), 0)), p("200"), 500, max_jump);
        assert_eq!((index, clamped, anchor), (p("110"), true, (p("100"), 0)));
        let (index, clamped, anchor) = clamp_jump(Some(anchor), p("105"), 900, max_jump);
        assert_eq!((index, clamped, anchor), (p("105"), false, (p("100"), 0)));
        // Two seconds later the window allows 20% from the anchor and restarts there.
        let (index, clamped, anchor) = clamp_jump(Some(anchor), p("200"), 2000, max_jump);
        assert_eq!((index, clamped, anchor), (p("120"), true, (p("120"), 2000)));
        let (index, _, _) = clamp_jump(None, p("5"), 0, max_jump);
        assert_eq!(index, p("5"));
    }

    #[test]
    fn basis_ema_moves_toward_the_sample_and_is_capped_in_the_mark() {
        let p = |v: &str| Price::parse(v).unwrap();
        let s = |v: &str| Size::parse(v).unwrap();
        let half = updated_basis(0, p("100"), p("102"), 500, 1000, s("5"), s("5"));
        assert_eq!(half, p("1").raw());
        let full = updated_basis(half, p("100"), p("104"), 5000, 1000, s("5"), Size::ZERO);
        assert_eq!(full, p("4").raw());
        // Size weighs the sample: a trade of a tenth of the open interest moves a tenth as far,
        // and dust moves the EMA by nothing measurable.
        assert_eq!(updated_basis(0, p("100"), p("110"), 5000, 1000, s("1"), s("10")), p("1").raw());
        assert_eq!(updated_basis(0, p("100"), p("110"), 5000, 1000, s("0.00000001"), s("1000")), 0);
        let config = crate::config::Config::embedded_default();
        let mut params = config.markets[0].params.clone();
        params.mark_ema_ms = 1000;
        assert_eq!(mark_from(p("100"), full, &params), p("102"));
        params.mark_ema_ms = 0;
        assert_eq!(mark_from(p("100"), full, &params), p("100"));
    }
    /// The obvious judging, written from docs/concepts.md without the fast path's shortcuts (one
    /// sort of (price, source) pairs, outliers tested one by one, usable set collected anew).
    fn judge_reference(market: &Market, now_ms: u64) -> Judgement {
        let params = &market.params;
        let mut statuses = [SourceStatus::Missing; MAX_SOURCES];
        let mut fresh: Vec<(Price, usize, Option<Price>)> = Vec::new();
        for (i, source) in market.sources.iter().enumerate() {
            let Some(tick) = source.latest else { continue };
            statuses[i] = if now_ms.saturating_sub(tick.ts) > params.max_age_ms {
                SourceStatus::Stale
            } else if conf_too_wide(&tick, params) {
                SourceStatus::WideConf
            } else {
                fresh.push((tick.price, i, tick.conf));
                SourceStatus::Usable
            };
        }
        fresh.sort_by_key(|(price, i, _)| (*price, *i));
        let mut all: Vec<Price> = fresh.iter().map(|f| f.0).collect();
        let Some(first) = median(&mut all) else { return Judgement { statuses, usable: 0, index: None } };
        let mut usable = Vec::new();
        for (price, i, conf) in &fresh {
            if is_outlier(*price, first, params.max_deviation) {
                statuses[*i] = SourceStatus::Outlier;
            } else {
                usable.push((*price, *conf));
            }
        }
        let count = usable.len() as u32;
        let index = if count < params.quorum {
            None
        } else if usable.iter().all(|(_, conf)| conf.is_some()) {
            let mut pairs: Vec<(Price, u128)> = usable.iter().map(|(p, c)| (*p, confidence_weight(*c))).collect();
            clamped_weighted_median(&mut pairs)
        } else {
            median(&mut usable.iter().map(|u| u.0).collect::<Vec<_>>())
        };
        Judgement { statuses, usable: count, index }
    }

    fn market_with(latest: &[Option<(i64, u64, Option<i64>)>], quorum: u32) -> Market {
        static TEMPLATE: std::sync::OnceLock<Market> = std::sync::OnceLock::new();
        let template_market =
            TEMPLATE.get_or_init(|| Engine::new(&crate::config::Config::embedded_default()).markets()[0].clone());
        let mut market = template_market.clone();
        market.params.quorum = quorum;
        market.params.max_age_ms = 10_000;
        market.sources.truncate(1);
        let template = market.sources[0].clone();
        market.sources = latest
            .iter()
            .map(|t| {
                let mut source = template.clone();
                source.latest = t.map(|(price, ts, conf)| Tick {
                    price: Price::from_raw(price),
                    ts,
                    conf: conf.map(Price::from_raw),
                });
                source
            })
            .collect();
        market
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        #[test]
        fn judge_equals_the_reference(
            latest in proptest::collection::vec(
                proptest::option::weighted(0.9, (
                    proptest::prop_oneof![9_000_000_000_000i64..11_000_000_000_000, 1i64..i64::MAX],
                    0u64..30_000,
                    proptest::option::weighted(0.3, 1i64..1_000_000_000_000),
                )),
                1..=MAX_SOURCES,
            ),
            quorum in 1u32..6,
            now_ms in 0u64..40_000,
        ) {
            let market = market_with(&latest, quorum);
            proptest::prop_assert_eq!(judge(&market, now_ms), judge_reference(&market, now_ms));
        }

        #[test]
        fn clamp_jump_equals_exact_arithmetic(
            anchor_raw in 1i64..i64::MAX,
            raw in 1i64..i64::MAX,
            anchor_ts in 0u64..1_000_000,
            elapsed_ms in 0u64..5_000,
            jump_raw in 1i64..100_000_000,
        ) {
            use num_bigint::BigInt;
            let now_ms = anchor_ts + elapsed_ms;
            let (index, clamped, _) =
                clamp_jump(Some((Price::from_raw(anchor_raw), anchor_ts)), Price::from_raw(raw), now_ms, Rate::from_raw(jump_raw));
            // bound = floor(anchor x max_jump x max(elapsed, window) / (ONE x window)), exactly.
            let window = BigInt::from(JUMP_WINDOW_MS);
            let bound = BigInt::from(anchor_raw) * jump_raw * BigInt::from(elapsed_ms.max(JUMP_WINDOW_MS))
                / (BigInt::from(Rate::ONE_RAW) * window);
            let low = (BigInt::from(anchor_raw) - &bound).max(BigInt::from(1));
            let high = (BigInt::from(anchor_raw) + &bound).min(BigInt::from(i64::MAX));
            let expected = BigInt::from(raw).clamp(low, high);
            proptest::prop_assert_eq!(BigInt::from(index.raw()), expected);
            proptest::prop_assert_eq!(clamped, index.raw() != raw);
        }
    }
}
