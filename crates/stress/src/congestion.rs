//! Settlement delay and congestion of the backstop makers.
//!
//! On Black Thursday (12-13 March 2020) Maker's collateral auctions ran while
//! gas prices rose about 6x: keepers' bids arrived late or never, and 36% of the
//! auctions were won with zero bids. The lab models that as a **congestion
//! window** of engine time: an auction that starts inside it is answered
//! `delay_ms` later than usual, or, with probability `no_bid_fraction` (drawn
//! from the run's seeded stream), not at all. A late answer that would land at
//! or after the auction's end is missed: the engine would refuse it, and the
//! remainder is re-auctioned (and drawn again) like any expired auction. The
//! makers never bid past the auction's duration, so no fill is ever below the
//! floor the core's Dutch price decays to (`auction_floor_discount` worse than
//! the live mark).
//!
//! Every run measures the window (the protocol's inventory held during it), so a
//! congested run and the same run without congestion are read side by side.

use crate::error::{check, Result, StressError};
use crate::scenario::Scenario;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// After the trough of a scenario's largest fall, the crash window lasts this much longer.
pub const CRASH_TAIL_MS: u64 = 30 * 60_000;
/// Longest congestion delay accepted (one day).
pub const MAX_DELAY_MS: u64 = 86_400_000;
/// Latest end of an explicit window (30 days from the run's start).
pub const MAX_WINDOW_END_S: u64 = 30 * 86_400;

/// When the makers are congested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CongestionWindow {
    /// Never: no congested runs.
    Off,
    /// During each scenario's crash: from the peak before its largest peak-to-trough
    /// fall to [`CRASH_TAIL_MS`] after the trough.
    Crash,
    /// From `start_s` for `length_s` seconds after the run's start, in every scenario.
    Fixed { start_s: u64, length_s: u64 },
}

impl CongestionWindow {
    /// `off`, `crash`, or `START+LENGTH` in seconds from the run's start (`3600+1800`).
    pub fn parse(text: &str) -> Result<CongestionWindow> {
        let bad = |reason: &str| StressError::InvalidOption { name: "congestion_window", reason: reason.to_string() };
        match text.trim() {
            "off" | "none" => return Ok(CongestionWindow::Off),
            "crash" => return Ok(CongestionWindow::Crash),
            _ => {}
        }
        let (start, length) = text
            .trim()
            .split_once('+')
            .ok_or_else(|| bad(&format!("`{text}`: expected `off`, `crash` or START+LENGTH in seconds")))?;
        let number =
            |s: &str| s.trim().parse::<u64>().map_err(|_| bad(&format!("`{s}` is not a whole number of seconds")));
        let window = CongestionWindow::Fixed { start_s: number(start)?, length_s: number(length)? };
        window.validate()?;
        Ok(window)
    }

    fn validate(&self) -> Result<()> {
        if let CongestionWindow::Fixed { start_s, length_s } = *self {
            check("congestion_window", length_s, length_s >= 1, "the length must be at least 1 second")?;
            let end = start_s.saturating_add(length_s);
            check("congestion_window", end, end <= MAX_WINDOW_END_S, "must end within 30 days of the run's start")?;
        }
        Ok(())
    }

    /// The name used in the report.
    pub fn describe(&self) -> String {
        match self {
            CongestionWindow::Off => "off".into(),
            CongestionWindow::Crash => "crash".into(),
            CongestionWindow::Fixed { start_s, length_s } => format!("{start_s}+{length_s}"),
        }
    }
}

/// The congestion model's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CongestionSettings {
    /// Extra delay of the makers' answer inside the window, milliseconds.
    pub delay_ms: u64,
    pub window: CongestionWindow,
    /// Share of the auctions starting inside the window that nobody bids on.
    pub no_bid_fraction: f64,
}

impl Default for CongestionSettings {
    fn default() -> Self {
        CongestionSettings { delay_ms: 30_000, window: CongestionWindow::Crash, no_bid_fraction: 0.36 }
    }
}

impl CongestionSettings {
    pub fn validate(&self) -> Result<()> {
        let delay = self.delay_ms;
        check("congestion_delay_ms", delay, delay <= MAX_DELAY_MS, "must be at most 86,400,000 (one day)")?;
        let p = self.no_bid_fraction;
        check("no_bid_fraction", p, p.is_finite() && (0.0..=1.0).contains(&p), "must be in [0, 1]")?;
        self.window.validate()
    }

    /// Whether congested runs are made at all.
    pub fn enabled(&self) -> bool {
        self.window != CongestionWindow::Off
    }
}

/// The window of `scenario` in offsets from the run's start, `[start, end)` ms.
pub fn window_offsets_ms(settings: &CongestionSettings, scenario: &Scenario) -> Option<(u64, u64)> {
    match settings.window {
        CongestionWindow::Off => None,
        CongestionWindow::Fixed { start_s, length_s } => Some((start_s * 1_000, (start_s + length_s) * 1_000)),
        CongestionWindow::Crash => crash_window_ms(scenario),
    }
}

/// From the peak before the largest peak-to-trough fall of the scenario's own path
/// to [`CRASH_TAIL_MS`] after its trough (`None` on a path that never falls).
pub fn crash_window_ms(scenario: &Scenario) -> Option<(u64, u64)> {
    let mut peak = 0usize;
    let mut best: Option<(usize, usize, f64)> = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        if step.price_factor > scenario.steps[peak].price_factor {
            peak = i;
        }
        let fall = 1.0 - step.price_factor / scenario.steps[peak].price_factor;
        if fall > 0.0 && best.is_none_or(|(_, _, f)| fall > f) {
            best = Some((peak, i, fall));
        }
    }
    let (peak, trough, _) = best?;
    let steps = &scenario.steps;
    Some((steps[peak].offset_ms, steps[trough].offset_ms + CRASH_TAIL_MS))
}

/// How the makers answer one auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// A take at this engine time.
    TakeAt(u64),
    /// Nobody bids (drawn at the no-bid fraction).
    NoBid,
    /// The answer would land at or after the auction's end.
    Missed,
}

/// The congestion of one run: its window in engine time and its random stream.
#[derive(Debug, Clone)]
pub struct Congestion {
    /// `[start, end)` engine ms; `None` when the scenario has no window.
    pub window_ms: Option<(u64, u64)>,
    /// Whether the makers are congested in the window (false: the window is only measured).
    pub active: bool,
    pub delay_ms: u64,
    pub no_bid_fraction: f64,
    rng: ChaCha8Rng,
}

impl Congestion {
    pub fn new(window_ms: Option<(u64, u64)>, active: bool, settings: &CongestionSettings, rng: ChaCha8Rng) -> Self {
        Congestion { window_ms, active, delay_ms: settings.delay_ms, no_bid_fraction: settings.no_bid_fraction, rng }
    }

    /// Whether engine time `ts` is inside the window.
    pub fn in_window(&self, ts: u64) -> bool {
        self.window_ms.is_some_and(|(a, b)| ts >= a && ts < b)
    }

    /// The makers' answer to an auction that started at `start_ts` and lasts
    /// `duration_ms`, usually answered `take_delay_ms` after its start.
    /// One draw per congested auction, in the order the run meets them.
    pub fn answer(&mut self, start_ts: u64, duration_ms: u64, take_delay_ms: u64) -> Answer {
        assert!(take_delay_ms < duration_ms, "the usual answer must fall inside the auction");
        if !(self.active && self.in_window(start_ts)) {
            return Answer::TakeAt(start_ts + take_delay_ms);
        }
        if self.rng.gen::<f64>() < self.no_bid_fraction {
            return Answer::NoBid;
        }
        let at = start_ts + take_delay_ms + self.delay_ms;
        if at >= start_ts + duration_ms {
            Answer::Missed
        } else {
            Answer::TakeAt(at)
        }
    }
}

/// The congestion stream of a run: the seed's stream for congestion, keyed by the
/// scenario's name (FNV-1a), so a run's draws depend only on the seed and the scenario.
pub fn stream_for(scenario_name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scenario_name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    crate::rng::STREAM_CONGESTION | (hash & ((1 << 40) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream_rng;

    #[test]
    fn windows_parse_and_bad_ones_name_the_option() {
        assert_eq!(CongestionWindow::parse("crash").unwrap(), CongestionWindow::Crash);
        assert_eq!(CongestionWindow::parse("off").unwrap(), CongestionWindow::Off);
        let fixed = CongestionWindow::parse("3600+1800").unwrap();
        assert_eq!(fixed, CongestionWindow::Fixed { start_s: 3_600, length_s: 1_800 });
        assert_eq!(fixed.describe(), "3600+1800");
        for bad in ["", "soon", "3600", "-5+10", "10+0", "10+x", "0+2600000"] {
            match CongestionWindow::parse(bad) {
                Err(StressError::InvalidOption { name, .. }) => assert_eq!(name, "congestion_window", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn answers_outside_the_window_are_on_time_and_inside_late_missed_or_none() {
        let settings = CongestionSettings { delay_ms: 30_000, window: CongestionWindow::Crash, no_bid_fraction: 0.5 };
        let mut c = Congestion::new(Some((100_000, 200_000)), true, &settings, stream_rng(1, stream_for("x")));
        assert_eq!(c.answer(50_000, 60_000, 20_000), Answer::TakeAt(70_000));
        assert_eq!(c.answer(200_000, 60_000, 20_000), Answer::TakeAt(220_000));
        let answers: Vec<Answer> = (0..400).map(|k| c.answer(100_000 + k, 60_000, 20_000)).collect();
        let none = answers.iter().filter(|a| **a == Answer::NoBid).count();
        assert!((140..=260).contains(&none), "{none} of 400 at 0.5");
        assert!(answers.iter().all(|a| matches!(a, Answer::NoBid | Answer::TakeAt(_))));
        assert!(answers.contains(&Answer::TakeAt(150_000)));
        // A 40 s delay on a 20 s answer to a 60 s auction lands at its end: missed.
        let late = CongestionSettings { delay_ms: 40_000, no_bid_fraction: 0.0, ..settings };
        let mut c = Congestion::new(Some((0, 1_000)), true, &late, stream_rng(1, 7));
        assert_eq!(c.answer(0, 60_000, 20_000), Answer::Missed);
        // A measured-only window never changes an answer.
        let mut c = Congestion::new(Some((0, 1_000)), false, &late, stream_rng(1, 7));
        assert_eq!(c.answer(0, 60_000, 20_000), Answer::TakeAt(20_000));
    }

    #[test]
    fn the_crash_window_runs_from_the_peak_to_half_an_hour_after_the_trough() {
        let scenario = crate::scenario::fixed_shocks(1).into_iter().find(|s| s.name.contains("30pct")).unwrap();
        let (start, end) = crash_window_ms(&scenario).unwrap();
        let factor = |t: u64| scenario.steps.iter().find(|s| s.offset_ms == t).unwrap().price_factor;
        let low = scenario.steps.iter().map(|s| s.price_factor).fold(f64::INFINITY, f64::min);
        assert!(1.0 - low / factor(start) > 0.29, "the window starts before the fall");
        let trough = end - CRASH_TAIL_MS;
        assert_eq!(factor(trough), low);
        assert!(start < trough && trough - start <= 3_600_000);
    }
}
