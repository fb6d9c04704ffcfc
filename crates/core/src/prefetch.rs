//! Cache hints. [`read`] asks the processor to start loading the cache line holding a value; it
//! reads nothing the program can observe, changes no state, and cannot fault (a prefetch of any
//! address is allowed). On targets without a prefetch instruction it does nothing.

/// Hint that `value` (its first cache line) will be read soon.
#[inline(always)]
pub(crate) fn read<T: ?Sized>(value: &T) {
    read_at((value as *const T).cast::<u8>());
}

/// Hint that the cache line holding `address` will be read soon. The address is never
/// dereferenced: any value, even dangling, is allowed.
#[inline(always)]
fn read_at(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 has no architectural effect (no load is retired, no fault is raised,
        // whatever the address), and SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Bytes per cache line on the machines we run on (x86_64, aarch64 servers).
const CACHE_LINE_BYTES: usize = 64;

/// Hint that every byte of `value` will be read soon: one prefetch per cache line it spans.
/// Useful for values another thread has just written (a parsed line handed over by a reader).
pub fn prefetch_value<T: ?Sized>(value: &T) {
    let start = (value as *const T).cast::<u8>();
    let len = std::mem::size_of_val(value);
    if len == 0 {
        return;
    }
    // A point every line's width from the start, and the last byte: one in every line spanned.
    for offset in (0..len).step_by(CACHE_LINE_BYTES) {
        read_at(start.wrapping_add(offset));
    }
    read_at(start.wrapping_add(len - 1));
}

/// How many accounts ahead of itself the full scan asks for an account record ([`scan_record`]).
pub(crate) const SCAN_RECORDS_AHEAD: usize = 32;
/// How many accounts ahead of itself the full scan asks for position blocks ([`scan_positions`]):
/// fewer than for records, whose pointers it reads to do so.
pub(crate) const SCAN_POSITIONS_AHEAD: usize = 16;

/// Hint that the full scan will soon read `account`'s record (both cache lines it may span).
#[inline(always)]
pub(crate) fn scan_record(account: &Account) {
    let start = (account as *const Account).cast::<u8>();
    read_at(start);
    read_at(start.wrapping_add(std::mem::size_of::<Account>() - 1));
}

/// Hint that the full scan will soon read `account`'s position block. (Collateral blocks, on 10%
/// of the bench's accounts, were allocated next to them and come with the heap's stream.)
#[inline(always)]
pub(crate) fn scan_positions(account: &Account) {
    if !account.positions.is_empty() {
        read_at(account.positions.as_ptr().cast::<u8>());
    }
}

use crate::engine::Engine;
use crate::event::{Event, ParsedLine};
use crate::state::{Account, AccountId};

/// A prefetch hint for one event that will be applied soon: the accounts it names, moved through
/// three stages by [`Engine::prefetch_hint`] and [`Engine::prefetch`], each of which asks the
/// cache for the memory the next stage (or the event's lookups) will read:
/// 1. the name table slots (from the names' hashes),
/// 2. the account records (ids read from those slots, names not compared),
/// 3. what the records point to: the name bytes, the positions and collateral blocks.
///
/// Issue the stages a few events apart, so that each stage's loads have arrived when the next
/// runs. A hint is only ever a hint: it changes nothing, and the effects and state of `apply` are
/// the same whether or not (and however wrongly) it was given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prefetch {
    tags: [u32; 2],
    ids: [Option<AccountId>; 2],
    names: u8,
    stage: u8,
}

impl ParsedLine {
    /// Hint that the strings of this line's event (ids that `apply` hashes and compares) will be
    /// read soon; nothing for blank or refused lines.
    pub fn prefetch_strings(&self) {
        let Some(event) = self.event() else { return };
        let strings: [&str; 3] = match event {
            Event::Deposit(t) | Event::Withdraw(t) => [&t.account, &t.asset, ""],
            Event::Price(p) => [&p.market, &p.source, ""],
            Event::Trade(t) => [&t.market, &t.buyer, &t.seller],
            Event::AuctionTake(a) => [&a.auction, &a.bidder, ""],
            Event::CollateralTake(t) => [&t.asset, &t.bidder, ""],
            Event::Params(p) => [&p.market, "", ""],
            Event::Signal(s) => [&s.name, s.market.as_deref().unwrap_or(""), ""],
            Event::IsolatedMargin(m) => [&m.account, &m.market, ""],
            Event::MarginModel(m) => [&m.account, "", ""],
            Event::AssetStatus(_) => ["", "", ""],
            Event::Clock { .. } | Event::FundDeposit { .. } => return,
        };
        for s in strings.into_iter().filter(|s| !s.is_empty()) {
            prefetch_value(s.as_bytes());
        }
    }
}

impl Engine {
    /// Stage 1 of a hint for `event`: hashes the account names it carries and prefetches their
    /// name-table slots.
    pub fn prefetch_hint(&self, event: &Event) -> Prefetch {
        let mut hint = Prefetch { stage: 1, ..Prefetch::default() };
        let names: [Option<&str>; 2] = match event {
            Event::Deposit(t) | Event::Withdraw(t) => [Some(&t.account), None],
            Event::Trade(t) => [Some(&t.buyer), Some(&t.seller)],
            Event::AuctionTake(a) => [Some(&a.bidder), None],
            Event::CollateralTake(t) => [Some(&t.bidder), None],
            _ => [None, None],
        };
        for name in names.into_iter().flatten() {
            let tag = self.account_ids.tag(name);
            self.account_ids.prefetch_slot(tag);
            hint.tags[usize::from(hint.names)] = tag;
            hint.names += 1;
        }
        hint
    }

    /// The next stage of `hint` (see [`Prefetch`]); nothing after the third.
    pub fn prefetch(&self, hint: &mut Prefetch) {
        let names = usize::from(hint.names);
        match hint.stage {
            1 => {
                for k in 0..names {
                    hint.ids[k] = self.account_ids.likely_id(hint.tags[k]);
                    if let Some(id) = hint.ids[k] {
                        if let Some(account) = self.accounts.get(id.0 as usize) {
                            prefetch_record(account);
                            self.risk.prefetch(id);
                        }
                    }
                }
            }
            2 => {
                for id in hint.ids[..names].iter().flatten() {
                    if let Some(account) = self.accounts.get(id.0 as usize) {
                        read(account.name.as_bytes());
                        read(account.positions.as_slice());
                        read(account.collateral.as_slice());
                    }
                }
            }
            _ => return,
        }
        hint.stage += 1;
    }
}

/// Both cache lines an account record may straddle.
fn prefetch_record(account: &Account) {
    read(account);
    read(&account.positions);
    read(&account.collateral);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Effect};

    /// A stream over 40 accounts: sources, deposits, trades (some naming unknown accounts),
    /// withdrawals, clocks, and bad lines.
    fn lines() -> Vec<String> {
        let mut lines = vec![r#"{"type":"clock","ts":1000}"#.to_string()];
        for s in ["s1", "s2", "s3"] {
            lines.push(format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"{s}","price":"10000"}}"#));
        }
        for i in 0..600u32 {
            let (a, b) = (format!("acct{}", i % 40), format!("acct{}", (i * 13 + 5) % 45));
            lines.push(match i % 6 {
                0 | 1 => format!(r#"{{"type":"deposit","ts":1000,"account":"{a}","asset":"USDC","amount":"5000"}}"#),
                2 | 3 => format!(
                    r#"{{"type":"trade","ts":1000,"market":"BTC-PERP","buyer":"{a}","seller":"{b}","size":"0.3","price":"10000"}}"#
                ),
                4 => format!(r#"{{"type":"withdraw","ts":1000,"account":"{b}","asset":"USDC","amount":"700"}}"#),
                _ => format!(r#"{{"type":"price","ts":1000,"market":"BTC-PERP","source":"s{}","price":"{}"}}"#, 1 + i % 3, 9_900 + i % 150),
            });
        }
        lines.push(r#"{"type":"deposit","ts":1000,"account":"acct1","asset":"USDC","amount":"x"}"#.into());
        lines
    }

    /// Hints change nothing: the same stream, applied with hints for the right lines, for the
    /// wrong lines, left half-way or pushed past their last stage, and from another engine, gives
    /// the same effects and state hash after every line as applying it without any.
    #[test]
    fn hints_never_change_results() {
        let lines = lines();
        let parsed: Vec<ParsedLine> = lines.iter().map(|l| ParsedLine::parse(l.as_bytes())).collect();
        let config = Config::embedded_default();
        let (mut plain, mut hinted, other) = (Engine::new(&config), Engine::new(&config), Engine::new(&config));
        let (mut plain_out, mut hinted_out) = (Vec::<Effect>::new(), Vec::<Effect>::new());
        for (i, line) in parsed.iter().enumerate() {
            let seq = i as u64 + 1;
            for (k, ahead) in parsed.iter().skip(i).take(6).enumerate() {
                prefetch_value(ahead);
                ahead.prefetch_strings();
                let Some(event) = ahead.event() else { continue };
                let mut hint = if k % 2 == 0 { hinted.prefetch_hint(event) } else { other.prefetch_hint(event) };
                for _ in 0..k {
                    hinted.prefetch(&mut hint);
                }
            }
            plain.apply_line(seq, lines[i].as_bytes(), &mut plain_out);
            hinted.apply_parsed(seq, line, &mut hinted_out);
            assert_eq!(hinted_out, plain_out, "line {seq}");
            assert_eq!(hinted.state_hash(), plain.state_hash(), "line {seq}");
        }
        assert!(plain.accounts().len() >= 40 && plain.accounts().iter().any(|a| !a.positions.is_empty()));
        assert!(plain_out.iter().any(|e| e.rejection_kind().is_some()), "bad lines were refused alike");
    }

    #[test]
    fn prefetching_odd_values_is_harmless() {
        prefetch_value(&());
        prefetch_value(&[0u8; 0][..]);
        prefetch_value(&[7u8; 1000][..]);
        prefetch_value("x");
        let engine = Engine::new(&Config::embedded_default());
        let mut hint = Prefetch::default();
        for _ in 0..5 {
            engine.prefetch(&mut hint); // a hint never started stays inert
        }
        let event = Event::parse_str(r#"{"type":"deposit","ts":0,"account":"nobody","asset":"USDC","amount":"1"}"#);
        let mut hint = engine.prefetch_hint(&event.unwrap()); // no accounts yet: an empty table
        for _ in 0..5 {
            engine.prefetch(&mut hint);
        }
    }
}
