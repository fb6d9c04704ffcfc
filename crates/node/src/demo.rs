//! `--demo`: a built-in simulated feed, so a newcomer sees effects flow within a minute.
//!
//! Timeline (wall clock, from start): five sources tick BTC-PERP (10,000) and ETH-PERP (500)
//! every 250 ms with small jitter; at 1 s deposits arrive, at 2 s trades build leveraged longs
//! (whale 300 BTC on 400k, carol 50 BTC on 100k, degen 40 BTC on 60k, dave 800 ETH on 50k) against
//! two market makers; from 5 s prices fall 30% over 30 s (source s5 reports 5% high for a while:
//! an outlier the oracle drops); whale tries to withdraw paper money mid-crash (rejected); then
//! prices hold at the bottom. Every leveraged long goes below maintenance margin and is
//! liquidated under the venue rules (buffer, minimum notional, 20% chunks 30 s apart for large
//! positions), into the protocol's inventory, which is auctioned.
//!
//! Two backstop makers (`backstop1` on BTC-PERP, `backstop2` on ETH-PERP) take a live auction
//! once it has run 15 s (its price has decayed from 1% above mark to mark), except from 15 s to
//! 45 s, when they stop bidding (as keepers froze on Black Thursday): the protocol then carries
//! what it took over into the fall, its net position (fund + inventory PnL at mark - bad debt)
//! goes below zero with a `protocol_insolvent` alert, and comes back when the makers return and
//! buy the inventory. The status line shows the net position. The feed stops after
//! `max_duration`.
//!
//! The script is a pure function of the elapsed time and the engine's state ([`DemoScript`]),
//! so a test drives it against an engine in simulated time and checks the story.

use crate::sequencer::{SequencerHandle, Shared};
use crate::worker::quote_as_f64;
use solvent_core::{margin, Engine};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The feed stops posting after this long.
    pub max_duration: Duration,
    /// Print effects (a few per type per second) and a status line to stdout.
    pub print: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions { max_duration: Duration::from_secs(600), print: true }
    }
}

const TICK: Duration = Duration::from_millis(250);
const CRASH_START_SECS: f64 = 5.0;
const CRASH_SECS: f64 = 30.0;
const CRASH_FRACTION: f64 = 0.30;
const SOURCES: [&str; 5] = ["s1", "s2", "s3", "s4", "s5"];
const MARKETS: [(&str, f64); 2] = [("BTC-PERP", 10_000.0), ("ETH-PERP", 500.0)];
/// The backstop makers do not bid in this window (seconds from start).
pub const QUIET_SECS: std::ops::Range<f64> = 20.0..50.0;
/// A maker takes a live auction once it has run this long (its price is then at mark).
const TAKE_AFTER_MS: u64 = 2_000;
/// A maker takes the same auction again (what joined it since) at most this often.
const RETAKE_MS: u64 = 1_000;
/// Per market, the backstop maker that bids on its auctions.
const BACKSTOPS: [(&str, &str); 2] = [("BTC-PERP", "backstop1"), ("ETH-PERP", "backstop2")];

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Price multiplier at `elapsed_secs`: 1 before the crash, falling linearly to 0.7.
pub fn crash_factor(elapsed_secs: f64) -> f64 {
    let progress = ((elapsed_secs - CRASH_START_SECS) / CRASH_SECS).clamp(0.0, 1.0);
    1.0 - CRASH_FRACTION * progress
}

/// A small deterministic generator for price jitter.
struct Jitter(u64);

impl Jitter {
    /// Uniform in [-1, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn price_lines(elapsed_secs: f64, ts: u64, jitter: &mut Jitter) -> Vec<Vec<u8>> {
    let factor = crash_factor(elapsed_secs);
    let rogue = (12.0..24.0).contains(&elapsed_secs);
    let mut lines = Vec::with_capacity(MARKETS.len() * SOURCES.len());
    for (market, base) in MARKETS {
        for source in SOURCES {
            let mut price = base * factor * (1.0 + 0.0005 * jitter.next());
            if rogue && source == "s5" {
                price *= 1.05;
            }
            let line =
                format!(r#"{{"type":"price","ts":{ts},"market":"{market}","source":"{source}","price":"{price:.2}"}}"#);
            lines.push(line.into_bytes());
        }
    }
    lines
}

fn deposit(ts: u64, account: &str, amount: u64) -> Vec<u8> {
    format!(r#"{{"type":"deposit","ts":{ts},"account":"{account}","asset":"USDC","amount":"{amount}"}}"#).into_bytes()
}

fn trade(ts: u64, market: &str, buyer: &str, seller: &str, size: &str, price: f64) -> Vec<u8> {
    let line = format!(
        r#"{{"type":"trade","ts":{ts},"market":"{market}","buyer":"{buyer}","seller":"{seller}","size":"{size}","price":"{price:.2}"}}"#
    );
    line.into_bytes()
}

/// One-off events of the scenario due at `elapsed_secs` (each step fires once).
fn scripted(step: &mut usize, elapsed_secs: f64, ts: u64) -> Vec<Vec<u8>> {
    let btc = 10_000.0 * crash_factor(elapsed_secs);
    let script: [(f64, Vec<Vec<u8>>); 4] = [
        (
            1.0,
            vec![
                deposit(ts, "mm1", 5_000_000),
                deposit(ts, "mm2", 1_000_000),
                deposit(ts, "whale", 400_000),
                deposit(ts, "carol", 100_000),
                deposit(ts, "degen", 60_000),
                deposit(ts, "dave", 50_000),
                deposit(ts, "backstop1", 8_000_000),
                deposit(ts, "backstop2", 2_000_000),
            ],
        ),
        (
            2.0,
            vec![
                trade(ts, "BTC-PERP", "whale", "mm1", "300", 10_000.0),
                trade(ts, "BTC-PERP", "carol", "mm1", "50", 10_000.0),
                trade(ts, "BTC-PERP", "degen", "mm1", "40", 10_000.0),
                trade(ts, "ETH-PERP", "dave", "mm1", "800", 500.0),
            ],
        ),
        (
            18.0,
            vec![format!(r#"{{"type":"withdraw","ts":{ts},"account":"whale","asset":"USDC","amount":"100000"}}"#)
                .into_bytes()],
        ),
        (40.0, vec![trade(ts, "BTC-PERP", "mm2", "mm1", "1", btc)]),
    ];
    let mut due = Vec::new();
    while *step < script.len() && script[*step].0 <= elapsed_secs {
        due.extend(script[*step].1.iter().cloned());
        *step += 1;
    }
    due
}

/// The demo's events as a function of time and of the engine's state: prices, the scripted
/// one-off events, and the backstop makers' auction takes.
pub struct DemoScript {
    jitter: Jitter,
    step: usize,
    /// Per auction id, the engine time of the maker's last take: at most one take per auction
    /// per [`RETAKE_MS`], whatever the view's lag.
    taken: BTreeMap<u64, u64>,
}

impl Default for DemoScript {
    fn default() -> Self {
        DemoScript { jitter: Jitter(0x9E37_79B9_7F4A_7C15), step: 0, taken: Default::default() }
    }
}

impl DemoScript {
    /// Everything due at `elapsed_secs` (engine time `ts`), given the latest state `engine`.
    pub fn lines(&mut self, elapsed_secs: f64, ts: u64, engine: &Engine) -> Vec<Vec<u8>> {
        let mut lines = price_lines(elapsed_secs, ts, &mut self.jitter);
        lines.extend(scripted(&mut self.step, elapsed_secs, ts));
        lines.extend(self.backstop_takes(elapsed_secs, ts, engine));
        lines
    }

    /// Outside the quiet window, each market's maker takes the whole inventory of a live auction
    /// that has run [`TAKE_AFTER_MS`].
    fn backstop_takes(&mut self, elapsed_secs: f64, ts: u64, engine: &Engine) -> Vec<Vec<u8>> {
        if QUIET_SECS.contains(&elapsed_secs) {
            return Vec::new();
        }
        let mut lines = Vec::new();
        for (market_name, bidder) in BACKSTOPS {
            let Some(market) = engine.markets().iter().find(|m| &*m.name == market_name) else { continue };
            let Some(auction) = market.auction else { continue };
            let size = market.inventory.size.checked_abs().unwrap_or(solvent_core::Size::ZERO);
            let recently = self.taken.get(&auction.id).is_some_and(|last| ts < last.saturating_add(RETAKE_MS));
            if ts < auction.start_ts.saturating_add(TAKE_AFTER_MS) || size.is_zero() || recently {
                continue;
            }
            self.taken.insert(auction.id, ts);
            let line = format!(
                r#"{{"type":"auction_take","ts":{ts},"auction":"{}","bidder":"{bidder}","size":"{size}"}}"#,
                auction.id
            );
            lines.push(line.into_bytes());
        }
        lines
    }
}

/// The feed: runs until `max_duration` has passed.
pub async fn run(options: DemoOptions, handle: SequencerHandle, shared: Arc<Shared>) {
    let started = Instant::now();
    let mut script = DemoScript::default();
    let mut last_status = Instant::now();
    if let Err(error) = handle.submit(vec![format!(r#"{{"type":"clock","ts":{}}}"#, wall_ms()).into_bytes()]).await {
        tracing::error!(%error, "demo feed could not start");
        return;
    }
    let printer = options.print.then(|| tokio::spawn(print_effects(shared.clone())));
    let mut interval = tokio::time::interval(TICK);
    while started.elapsed() < options.max_duration {
        interval.tick().await;
        let elapsed_secs = started.elapsed().as_secs_f64();
        let ts = wall_ms();
        let lines = script.lines(elapsed_secs, ts, shared.view.load().engine());
        if let Err(error) = handle.submit(lines).await {
            tracing::warn!(%error, "demo feed: submission refused");
        }
        if options.print && last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            println!("{}", status_line(&shared, elapsed_secs));
        }
    }
    tracing::info!("demo feed finished (max duration reached); the server keeps running");
    if let Some(printer) = printer {
        printer.abort();
    }
}

/// Marks and the accounts below maintenance margin, one line.
fn status_line(shared: &Shared, elapsed_secs: f64) -> String {
    let view = shared.view.load();
    let engine = view.engine();
    let marks: Vec<String> =
        engine.markets().iter().filter_map(|m| m.mark_price.map(|p| format!("{} {}", m.name, p))).collect();
    let mut below = Vec::new();
    for account in engine.accounts() {
        if let Ok(health) = margin::health(account, engine.assets(), engine.markets()) {
            if health.below_maintenance() {
                let equity = quote_as_f64(health.equity);
                let mm = quote_as_f64(health.maintenance_margin);
                below.push(format!("{} (equity {equity:.0} < MM {mm:.0})", account.name));
            }
        }
    }
    let below = if below.is_empty() { "none".to_string() } else { below.join(", ") };
    let protocol = protocol_status(engine);
    let quiet = if QUIET_SECS.contains(&elapsed_secs) { " | backstop makers not bidding" } else { "" };
    format!(
        "[demo t={elapsed_secs:>4.0}s seq {}] marks: {} | {protocol}{quiet} | below maintenance: {below}",
        engine.last_seq(),
        marks.join(", ")
    )
}

/// The protocol's book in one phrase: net position = fund + inventory (and collateral holdings)
/// PnL - bad debt.
pub fn protocol_status(engine: &Engine) -> String {
    match engine.protocol_book() {
        Ok(book) => format!(
            "protocol net {} (fund {} + inventory PnL {} + collateral PnL {} - bad debt {}){}",
            book.net_position,
            book.insurance_fund,
            book.inventory_unrealized_pnl,
            book.collateral_unrealized_pnl,
            book.bad_debt,
            if book.solvent { "" } else { " INSOLVENT" }
        ),
        Err(_) => "protocol book overflows".to_string(),
    }
}

/// Print effects as they happen: at most 3 lines per effect type per second, the rest counted.
async fn print_effects(shared: Arc<Shared>) {
    let mut subscription = shared.hub.subscribe(None);
    let mut window_start = Instant::now();
    let mut printed: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut skipped: BTreeMap<&'static str, u64> = BTreeMap::new();
    loop {
        let item = match subscription.live.recv().await {
            Ok(item) => item,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                *skipped.entry("(lagged)").or_default() += missed;
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if window_start.elapsed() >= Duration::from_secs(1) {
            if !skipped.is_empty() {
                let counts: Vec<String> = skipped.iter().map(|(kind, n)| format!("{n} more {kind}")).collect();
                println!("  ... {}", counts.join(", "));
            }
            window_start = Instant::now();
            printed.clear();
            skipped.clear();
        }
        for effect in &item.effects {
            let shown = printed.entry(effect.type_name()).or_default();
            if *shown < 3 {
                println!("  effect {}", effect.to_json_line());
                *shown += 1;
            } else {
                *skipped.entry(effect.type_name()).or_default() += 1;
            }
        }
    }
}
