//! CSV candle loader.
//!
//! Two layouts, recognized by their column count, header optional:
//! - Binance klines, 12 columns: `open_time, open, high, low, close, volume,
//!   close_time, quote_volume, trades, taker_base, taker_quote, ignore`
//!   (only the first six are used; `open_time` in epoch milliseconds, or
//!   microseconds as Binance's spot files use from 2025: values above 1e14
//!   are taken as microseconds);
//! - plain, 6 columns: `date, open, high, low, close, volume`, with `date` an
//!   ISO-8601 date (`2020-03-12`, midnight UTC), datetime
//!   (`2020-03-12T02:16:00Z`, `2020-03-12 02:16:00`, optional fraction and
//!   `Z`/`+HH:MM` offset) or epoch milliseconds.
//!
//! Every row is checked (positive prices, low <= open, close <= high,
//! volume >= 0, strictly increasing time); errors carry the 1-based line.

use serde::{Deserialize, Serialize};
use std::path::Path;
use thiserror::Error;

/// One OHLCV candle; `open_time_ms` is epoch milliseconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    pub open_time_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Which layout a file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CandleFormat {
    BinanceKline,
    Plain,
}

/// Loader errors, each with the 1-based line where it applies.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CandleError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("line {line}: expected {expected} columns, found {found}")]
    ColumnCount { line: usize, expected: &'static str, found: usize },
    #[error("line {line}: column `{column}`: `{value}` is not a number")]
    Number { line: usize, column: &'static str, value: String },
    #[error("line {line}: `{value}` is not an ISO-8601 date, datetime or epoch milliseconds")]
    Time { line: usize, value: String },
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("line {line}: time {ts_ms} is not after the previous row's {previous_ms}")]
    NotIncreasing { line: usize, ts_ms: i64, previous_ms: i64 },
    #[error("no candles in the input")]
    Empty,
}

const COLUMNS: [&str; 6] = ["time", "open", "high", "low", "close", "volume"];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Milliseconds of "HH:MM[:SS[.fff]]" followed by an optional offset.
fn parse_clock_ms(t: &str) -> Option<i64> {
    let (clock, offset_ms) = if let Some(c) = t.strip_suffix('Z') {
        (c, 0)
    } else if t.len() > 6 && matches!(&t[t.len() - 6..t.len() - 5], "+" | "-") {
        let (c, o) = t.split_at(t.len() - 6);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':')?;
        (c, sign * (num(oh)? * 60 + num(om)?) * 60_000)
    } else {
        (t, 0)
    };
    let mut parts = clock.splitn(3, ':');
    let (h, m) = (num(parts.next()?)?, num(parts.next()?)?);
    let (s, frac_ms) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let frac_ms = if frac.is_empty() { 0 } else { num(&format!("{:0<3}", &frac[..frac.len().min(3)]))? };
            (num(whole)?, frac_ms)
        }
    };
    (h < 24 && m < 60 && s < 60).then_some(((h * 60 + m) * 60 + s) * 1_000 + frac_ms - offset_ms)
}

/// Parses an ISO-8601 date or datetime, or epoch milliseconds (values above
/// 1e14 are taken as microseconds), to epoch milliseconds.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    if let Some(v) = num(s) {
        return Some(if v > 100_000_000_000_000 { v / 1_000 } else { v });
    }
    let (date, clock) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (num(parts.next()?)?, num(parts.next()?)?, num(parts.next()?)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day_ms = days_from_civil(y, m, d) * 86_400_000;
    Some(day_ms + clock.map_or(Some(0), parse_clock_ms)?)
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (milliseconds
/// appended when not zero).
pub fn format_time_ms(ts_ms: i64) -> String {
    let (days, ms) = (ts_ms.div_euclid(86_400_000), ts_ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1_000 % 60, ms % 1_000);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
    }
}

fn parse_row(line: usize, fields: &[&str]) -> Result<Candle, CandleError> {
    let time = parse_time_ms(fields[0]).ok_or_else(|| CandleError::Time { line, value: fields[0].to_string() })?;
    let mut v = [0.0; 5];
    for (i, slot) in v.iter_mut().enumerate() {
        let raw = fields[i + 1];
        *slot = raw.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| CandleError::Number {
            line,
            column: COLUMNS[i + 1],
            value: raw.to_string(),
        })?;
    }
    let c = Candle { open_time_ms: time, open: v[0], high: v[1], low: v[2], close: v[3], volume: v[4] };
    let invalid = |message: &str| Err(CandleError::Invalid { line, message: message.to_string() });
    if c.open <= 0.0 || c.high <= 0.0 || c.low <= 0.0 || c.close <= 0.0 {
        return invalid("prices must be positive");
    }
    if c.volume < 0.0 {
        return invalid("volume must not be negative");
    }
    if c.low > c.open.min(c.close) || c.high < c.open.max(c.close) || c.low > c.high {
        return invalid("need low <= open, close <= high");
    }
    Ok(c)
}

fn split_fields(line: &str) -> Vec<&str> {
    line.split(',').map(|f| f.trim().trim_matches('"')).collect()
}

/// Parses CSV text in either layout.
pub fn parse_candles(text: &str) -> Result<(CandleFormat, Vec<Candle>), CandleError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut format: Option<CandleFormat> = None;
    let mut out: Vec<Candle> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let fields = split_fields(raw);
        let this = match fields.len() {
            12 => CandleFormat::BinanceKline,
            6 => CandleFormat::Plain,
            found => return Err(CandleError::ColumnCount { line, expected: "6 or 12", found }),
        };
        if format.is_none() && out.is_empty() && parse_time_ms(fields[0]).is_none() && fields[1].parse::<f64>().is_err()
        {
            format = Some(this); // header row
            continue;
        }
        match format {
            Some(f) if f != this => {
                let expected = if f == CandleFormat::Plain { "6" } else { "12" };
                return Err(CandleError::ColumnCount { line, expected, found: fields.len() });
            }
            _ => format = Some(this),
        }
        let c = parse_row(line, &fields)?;
        if let Some(prev) = out.last().filter(|p| c.open_time_ms <= p.open_time_ms) {
            return Err(CandleError::NotIncreasing { line, ts_ms: c.open_time_ms, previous_ms: prev.open_time_ms });
        }
        out.push(c);
    }
    match format {
        Some(f) if !out.is_empty() => Ok((f, out)),
        _ => Err(CandleError::Empty),
    }
}

/// Reads and parses a CSV file.
pub fn load_candles(path: &Path) -> Result<(CandleFormat, Vec<Candle>), CandleError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CandleError::Io { path: path.display().to_string(), message: e.to_string() })?;
    parse_candles(&text)
}

/// Close-to-close log returns (n - 1 values for n candles).
pub fn log_returns(candles: &[Candle]) -> Vec<f64> {
    candles.windows(2).map(|w| (w[1].close / w[0].close).ln()).collect()
}

/// Writes candles in the plain layout with a header, ISO datetimes and
/// prices as given by `{}` formatting of the values.
pub fn to_plain_csv(candles: &[Candle]) -> String {
    let mut s = String::from("date,open,high,low,close,volume\n");
    for c in candles {
        s.push_str(&format!(
            "{},{},{},{},{},{}\n",
            format_time_ms(c.open_time_ms),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume
        ));
    }
    s
}

#[cfg(test)]
mod tests;
