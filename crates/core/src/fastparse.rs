//! The hot path of the JSON Lines parser: the event types that dominate a stream (price, trade,
//! deposit, withdraw, clock), read straight from the bytes into an [`Event`], without the
//! intermediate field table of [`crate::json`].
//!
//! It accepts only what it is sure of: one flat object, string values without escapes or control
//! characters and unsigned integers (no nulls, floats, nested values, duplicate or unknown keys),
//! every required field present and valid (ids, positive amounts, prices and sizes, non-negative
//! fees and `conf`), no `sig`. For anything else it returns `None` and [`Event::parse_str`] takes
//! the general path, which decides the input (and reports every error) exactly as before. Where
//! this path answers, the general one gives the same event (a test below checks it on mutated
//! lines).

use crate::event::{validate_id, Event, PriceTick, StringPool, Trade, Transfer};
use crate::json::flat::{scan_object, Token};
use crate::num::{NumError, Price, Quote, Size};

/// Most fields the fast path reads (a trade with both fees has nine).
const MAX_FAST_FIELDS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value<'a> {
    Str(&'a str),
    Uint(u64),
}

/// The object's fields, in order.
struct Flat<'a> {
    fields: [(&'a str, Value<'a>); MAX_FAST_FIELDS],
    len: usize,
    /// Bit i set: field i was read.
    used: u16,
}

impl<'a> Flat<'a> {
    fn parse(text: &'a str) -> Option<Flat<'a>> {
        let mut flat = Flat { fields: [("", Value::Uint(0)); MAX_FAST_FIELDS], len: 0, used: 0 };
        scan_object(text, |key, token| {
            let value = match token {
                Token::Str(s) => Value::Str(s),
                Token::U64(v) => Value::Uint(v),
                Token::Bool(_) | Token::Null => return None,
            };
            // A duplicate key needs no check of its own: every lookup takes the first field of a
            // name, so a second one stays unread and `all_used` declines the line.
            if flat.len == MAX_FAST_FIELDS {
                return None;
            }
            flat.fields[flat.len] = (key, value);
            flat.len += 1;
            Some(())
        })?;
        Some(flat)
    }

    fn get(&mut self, key: &str) -> Option<Value<'a>> {
        let k = self.position(key)?;
        self.used |= 1 << k;
        Some(self.fields[k].1)
    }

    /// The index of a field named `key`. Lines usually list their fields in the order the readers
    /// below ask for them, so the field after the highest one read is tried first. Which of two
    /// fields of the same name is found does not matter: the other stays unread, and
    /// `all_used` declines the line.
    fn position(&self, key: &str) -> Option<usize> {
        let fields = &self.fields[..self.len];
        let next = (u16::BITS - self.used.leading_zeros()) as usize; // after the highest field read
        if fields.get(next).is_some_and(|(name, _)| *name == key) {
            return Some(next);
        }
        fields.iter().position(|(name, _)| *name == key)
    }

    fn str(&mut self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            Value::Uint(_) => None,
        }
    }

    fn id(&mut self, key: &str, pool: &mut StringPool) -> Option<String> {
        let s = self.str(key)?;
        validate_id(s).ok().map(|()| pool.take(s))
    }

    fn ts(&mut self) -> Option<u64> {
        match self.get("ts")? {
            Value::Uint(v) => Some(v),
            Value::Str(_) => None,
        }
    }

    fn positive<T: Copy + Ord + Default>(&mut self, key: &str, parse: fn(&str) -> Result<T, NumError>) -> Option<T> {
        parse(self.str(key)?).ok().filter(|v| *v > T::default())
    }

    /// An optional non-negative decimal: `Some(None)` when absent, `None` when invalid.
    fn optional<T: Copy + Ord + Default>(
        &mut self,
        key: &str,
        parse: fn(&str) -> Result<T, NumError>,
    ) -> Option<Option<T>> {
        if self.position(key).is_none() {
            return Some(None);
        }
        parse(self.str(key)?).ok().filter(|v| *v >= T::default()).map(Some)
    }

    /// Every field was read (an unread one is unknown to the event type).
    fn all_used(&self) -> bool {
        u32::from(self.used) == (1u32 << self.len) - 1
    }
}

fn transfer(flat: &mut Flat, pool: &mut StringPool) -> Option<Transfer> {
    Some(Transfer {
        ts: flat.ts()?,
        account: flat.id("account", pool)?,
        asset: flat.id("asset", pool)?,
        amount: flat.positive("amount", Quote::parse)?,
    })
}

fn price(flat: &mut Flat, pool: &mut StringPool) -> Option<PriceTick> {
    Some(PriceTick {
        ts: flat.ts()?,
        market: flat.id("market", pool)?,
        source: flat.id("source", pool)?,
        price: flat.positive("price", Price::parse)?,
        conf: flat.optional("conf", Price::parse)?,
        sig: None,
    })
}

fn trade(flat: &mut Flat, pool: &mut StringPool) -> Option<Trade> {
    Some(Trade {
        ts: flat.ts()?,
        market: flat.id("market", pool)?,
        buyer: flat.id("buyer", pool)?,
        seller: flat.id("seller", pool)?,
        size: flat.positive("size", Size::parse)?,
        price: flat.positive("price", Price::parse)?,
        buyer_fee: flat.optional("buyer_fee", Quote::parse)?.unwrap_or_default(),
        seller_fee: flat.optional("seller_fee", Quote::parse)?.unwrap_or_default(),
        // The flags are booleans, which this path does not read: such lines take the general one.
        buyer_isolated: false,
        seller_isolated: false,
    })
}

/// The event of `text` when it is one of the common, valid cases; `None` otherwise. Its strings
/// come from `pool` where it has some.
pub(crate) fn event(text: &str, pool: &mut StringPool) -> Option<Event> {
    let mut flat = Flat::parse(text)?;
    let event = match flat.str("type")? {
        "price" => Event::Price(price(&mut flat, pool)?),
        "trade" => Event::Trade(trade(&mut flat, pool)?),
        "deposit" => Event::Deposit(transfer(&mut flat, pool)?),
        "withdraw" => Event::Withdraw(transfer(&mut flat, pool)?),
        "clock" => Event::Clock { ts: flat.ts()? },
        _ => return None,
    };
    flat.all_used().then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever the fast path answers, the general parser gives the same event; mutations of real
    /// lines probe the edges where it must decline.
    #[test]
    fn fast_path_agrees_with_the_general_parser() {
        let seeds = [
            r#"{"type":"price","ts":1700000000000,"market":"BTC-PERP","source":"s1","price":"7900.5"}"#,
            r#"{"type":"price","ts":5,"market":"BTC-PERP","source":"s1","price":"7900.5","conf":"1.5"}"#,
            r#"{"type":"trade","ts":0,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1.5","price":"7900","buyer_fee":"0.1"}"#,
            r#"{"type":"deposit","ts":0,"account":"alice","asset":"USDC","amount":"400000"}"#,
            r#"{"type":"withdraw","ts":9,"account":"bob","asset":"BTC","amount":"0.5"}"#,
            r#" { "type" : "clock" , "ts" : 0 } "#,
        ];
        let mut next = crate::num::xorshift(0x2545_f491_4f6c_dd1d);
        let (mut fast, mut total) = (0, 0);
        for seed in seeds {
            let mut pool = StringPool::default();
            assert_eq!(event(seed, &mut pool).as_ref(), Event::parse_str(seed).ok().as_ref(), "{seed}");
            assert!(event(seed, &mut pool).is_some(), "the fast path takes {seed}");
            for _ in 0..4_000 {
                let edits = 1 + (next() % 2) as usize;
                let bytes = crate::json::mutated(seed, edits, &mut next);
                let Ok(text) = std::str::from_utf8(&bytes) else { continue };
                total += 1;
                if let Some(e) = event(text, &mut StringPool::default()) {
                    fast += 1;
                    assert_eq!(Ok(e), Event::parse_str(text), "{text}");
                }
            }
        }
        assert!(fast > total / 20, "the fast path answers often enough to be tested ({fast} of {total})");
    }

    /// A repeated key is never taken by the fast path (whichever copy a lookup finds, the other
    /// stays unread), so the general parser reports it.
    #[test]
    fn repeated_keys_are_declined() {
        let lines = [
            r#"{"type":"price","ts":5,"ts":5,"market":"BTC-PERP","source":"s1","price":"7900.5"}"#,
            r#"{"type":"price","ts":5,"market":"BTC-PERP","source":"s1","price":"7900.5","market":"BTC-PERP"}"#,
            r#"{"type":"price","ts":5,"market":"BTC-PERP","source":"s1","price":"1","conf":"1","conf":"2"}"#,
            r#"{"type":"trade","ts":0,"market":"M","buyer":"a","seller":"b","size":"1","price":"7","buyer":"a"}"#,
            r#"{"type":"deposit","type":"deposit","ts":0,"account":"a","asset":"USDC","amount":"4"}"#,
            r#"{"type":"clock","ts":0,"ts":1}"#,
        ];
        for line in lines {
            assert_eq!(event(line, &mut StringPool::default()), None, "{line}");
            assert!(Event::parse_str(line).is_err(), "{line}");
        }
    }
}
