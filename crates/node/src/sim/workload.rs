//! Random adversarial events: honest deposits, trades, ticks and clocks mixed with off-mark
//! trades, withdrawals beyond balance, poisoned timestamps, unknown auctions, bad params and
//! lines that do not parse.

use super::rng::Rng;

const ACCOUNTS: [&str; 8] = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];
const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];

/// The workload's view of the market: its own price walk and clock.
#[derive(Clone, Debug)]
pub struct Workload {
    pub rng: Rng,
    pub now_ms: u64,
    price: u64,
}

impl Workload {
    pub fn new(seed: u64) -> Workload {
        Workload { rng: Rng::new(seed.rotate_left(17) ^ 0xA5A5), now_ms: 1_700_000_000_000, price: 10_000 }
    }

    /// The next batch of lines a client posts (1 to 8), the clock advanced first.
    pub fn batch(&mut self) -> Vec<String> {
        self.now_ms += self.rng.below(1_500);
        let count = 1 + self.rng.below(8);
        (0..count).map(|_| self.line()).collect()
    }

    fn line(&mut self) -> String {
        let ts = self.ts();
        let a = *self.rng.pick(&ACCOUNTS);
        let b = *self.rng.pick(&ACCOUNTS);
        match self.rng.below(100) {
            0..=29 => self.ticks(ts),
            30..=44 => {
                let amount = 100 + self.rng.below(50_000);
                format!(r#"{{"type":"deposit","ts":{ts},"account":"{a}","asset":"USDC","amount":"{amount}"}}"#)
            }
            45..=47 => {
                let amount = self.rng.below(300) + 1;
                format!(r#"{{"type":"deposit","ts":{ts},"account":"{a}","asset":"BTC","amount":"0.{amount:03}"}}"#)
            }
            48..=54 => {
                let amount = self.rng.below(60_000) + 1;
                format!(r#"{{"type":"withdraw","ts":{ts},"account":"{a}","asset":"USDC","amount":"{amount}"}}"#)
            }
            55..=79 => self.trade(ts, a, b),
            80..=84 => format!(r#"{{"type":"clock","ts":{ts}}}"#),
            85..=86 => {
                let band = *self.rng.pick(&["0.05", "0.10", "0.5", "0", "2"]);
                format!(r#"{{"type":"params","ts":{ts},"market":"BTC-PERP","max_trade_deviation":"{band}"}}"#)
            }
            87..=88 => format!(r#"{{"type":"fund_deposit","ts":{ts},"amount":"{}"}}"#, 1 + self.rng.below(5_000)),
            89..=92 => {
                let id = *self.rng.pick(&["1", "2", "3", "01", "x"]);
                let size = *self.rng.pick(&["0.01", "0.5", "5"]);
                format!(r#"{{"type":"auction_take","ts":{ts},"auction":"{id}","bidder":"{a}","size":"{size}"}}"#)
            }
            _ => self.garbage(ts),
        }
    }

    /// Mostly the clock; sometimes behind it, an hour ahead or u64::MAX (poisoning attempts).
    fn ts(&mut self) -> u64 {
        match self.rng.below(50) {
            0 => u64::MAX,
            1 => self.now_ms + 3_600_000,
            2 => self.now_ms.saturating_sub(10_000),
            _ => self.now_ms,
        }
    }

    fn ticks(&mut self, ts: u64) -> String {
        if self.rng.below(4) == 0 {
            let step = self.rng.below(601) as i64 - 300; // up to 3% either way
            self.price = (self.price as i64 + step * self.price as i64 / 10_000).max(100) as u64;
        }
        let source = *self.rng.pick(&SOURCES);
        let price = if self.rng.below(20) == 0 { self.price * 2 } else { self.price };
        format!(r#"{{"type":"price","ts":{ts},"market":"BTC-PERP","source":"{source}","price":"{price}"}}"#)
    }

    fn trade(&mut self, ts: u64, buyer: &str, seller: &str) -> String {
        let size = *self.rng.pick(&["0.01", "0.1", "1", "3", "0.00000001"]);
        let off = match self.rng.below(10) {
            0 => 20, // off the band: refused
            1 => -20,
            _ => self.rng.below(9) as i64 - 4,
        };
        let price = (self.price as i64 * (100 + off) / 100).max(1);
        format!(
            r#"{{"type":"trade","ts":{ts},"market":"BTC-PERP","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price}"}}"#
        )
    }

    fn garbage(&mut self, ts: u64) -> String {
        match self.rng.below(4) {
            0 => "{".to_string(),
            1 => format!(r#"{{"type":"deposit","ts":{ts},"account":"a0","asset":"USDC","amount":"1e9"}}"#),
            2 => format!(r#"{{"type":"teleport","ts":{ts}}}"#),
            _ => format!(r#"{{"type":"clock","ts":{ts},"ts":{ts}}}"#),
        }
    }
}
