//! Cache hints. [`read`] asks the processor to start loading the cache line holding a value; it
//! reads nothing the program can observe, changes no state, and cannot fault (a prefetch of any
//! address is allowed). On targets without a prefetch instruction it does nothing.

/// Hint that `value` will be read soon.
#[inline(always)]
pub(crate) fn read<T: ?Sized>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 has no architectural effect (no load is retired, no fault is raised),
        // SSE is part of the x86_64 baseline, and the pointer comes from a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

use crate::engine::Engine;
use crate::event::Event;
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

impl Engine {
    /// Stage 1 of a hint for `event`: hashes the account names it carries and prefetches their
    /// name-table slots.
    pub fn prefetch_hint(&self, event: &Event) -> Prefetch {
        let mut hint = Prefetch { stage: 1, ..Prefetch::default() };
        let names: [Option<&str>; 2] = match event {
            Event::Deposit(t) | Event::Withdraw(t) => [Some(&t.account), None],
            Event::Trade(t) => [Some(&t.buyer), Some(&t.seller)],
            Event::AuctionTake(a) => [Some(&a.bidder), None],
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
