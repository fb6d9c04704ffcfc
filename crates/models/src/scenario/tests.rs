use super::*;
use crate::candles::{format_time_ms, parse_candles, to_plain_csv};

#[test]
fn shipped_csv_is_exactly_the_generator_output() {
    let s = black_thursday().unwrap();
    let text = to_plain_csv(&s.candles);
    if std::env::var_os("SOLVENT_REGENERATE_DATA").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/btc_black_thursday_2020-03-11_13_1m_synthetic.csv");
        std::fs::write(path, &text).unwrap();
    }
    assert_eq!(text, BLACK_THURSDAY_CSV);
    let (_, parsed) = parse_candles(BLACK_THURSDAY_CSV).unwrap();
    assert_eq!(parsed, s.candles);
}

#[test]
fn matches_the_published_facts() {
    let s = black_thursday().unwrap();
    let c = &s.candles;
    assert_eq!(c.len(), 4_320);
    assert_eq!(format_time_ms(c[0].open_time_ms), "2020-03-11T00:00:00Z");
    assert_eq!(format_time_ms(c[4_319].open_time_ms), "2020-03-13T23:59:00Z");
    // 11 Mar close 7,900; 13 Mar close 5,600 (anchors are hit exactly).
    assert_eq!(c[1_439].close, 7_900.0);
    assert_eq!(c[4_319].close, 5_600.0);
    let (low_i, low) =
        c.iter().enumerate().map(|(i, x)| (i, x.low)).fold((0, f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
    let drawdown = 1.0 - low / 7_900.0;
    eprintln!("low {low} at {} ({:.1}% below 7,900)", format_time_ms(c[low_i].open_time_ms), 100.0 * drawdown);
    assert!((3_600.0..=3_900.0).contains(&low), "low {low}");
    assert!((0.50..=0.55).contains(&drawdown), "drawdown {drawdown}");
    // The low falls on 13 March between 02:00 and the end of the outage.
    assert!(c[low_i].open_time_ms >= T0 + 2 * 86_400_000 + 7_200_000 && c[low_i].open_time_ms < BITMEX_OUTAGE_END_MS);
    assert_eq!(format_time_ms(s.outage_start_ms), "2020-03-13T02:16:00Z");
    assert_eq!(format_time_ms(s.outage_end_ms), "2020-03-13T02:40:00Z");
    for a in &s.anchors[1..] {
        let i = ((a.ts_ms - T0) / MIN_MS) as usize;
        assert_eq!(c[i - 1].close, a.price, "{}", a.source);
    }
}

#[test]
fn generator_is_deterministic_and_validates() {
    let a = black_thursday_anchors();
    assert_eq!(bridge_minute_candles(&a, 6, 1).unwrap(), bridge_minute_candles(&a, 6, 1).unwrap());
    assert_ne!(bridge_minute_candles(&a, 6, 1).unwrap(), bridge_minute_candles(&a, 6, 2).unwrap());
    assert!(bridge_minute_candles(&a[..1], 6, 1).is_err());
    let mut bad = a.clone();
    bad[2].ts_ms = bad[1].ts_ms;
    assert!(bridge_minute_candles(&bad, 6, 1).is_err());
}
