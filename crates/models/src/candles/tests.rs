use super::*;

const BINANCE: &str =
    "open_time,open,high,low,close,volume,close_time,quote_volume,trades,taker_base,taker_quote,ignore
1583971200000,7934.57,7966.17,7800.00,7894.56,4508.02,1583971259999,35503372.7,1234,2200.1,17330000.2,0
1583971260000,7894.56,7900.00,7850.10,7860.00,1200.5,1583971319999,9450000.0,800,600.2,4720000.0,0
";

#[test]
fn parses_binance_klines_with_and_without_header() {
    let (f, c) = parse_candles(BINANCE).unwrap();
    assert_eq!(f, CandleFormat::BinanceKline);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].open_time_ms, 1_583_971_200_000);
    assert_eq!(format_time_ms(c[0].open_time_ms), "2020-03-12T00:00:00Z");
    assert_eq!(c[1].close, 7860.0);
    let no_header: String = BINANCE.lines().skip(1).collect::<Vec<_>>().join("\r\n");
    assert_eq!(parse_candles(&no_header).unwrap().1, c);
    // Microsecond timestamps (Binance spot files from 2025).
    let micro = BINANCE.replace("1583971200000,", "1583971200000000,").replace("1583971260000,", "1583971260000000,");
    assert_eq!(parse_candles(&micro).unwrap().1[0].open_time_ms, 1_583_971_200_000);
}

#[test]
fn parses_plain_dates_datetimes_and_epoch() {
    let text = "\u{feff}date,open,high,low,close,volume
2020-03-11,7900,8000,7600,7911,100
2020-03-12T02:16:00Z,7000,7100,6900,6950,10
2020-03-12 02:17:30.5,6950,6960,6900,6910,10
2020-03-12T06:00:00+02:00,6910,6920,6900,6901,1
1584000000000,6900,6900,6800,6850,0
";
    let (f, c) = parse_candles(text).unwrap();
    assert_eq!(f, CandleFormat::Plain);
    let t: Vec<i64> = c.iter().map(|x| x.open_time_ms).collect();
    assert_eq!(t[0], 1_583_884_800_000);
    assert_eq!(t[1], 1_583_979_360_000);
    assert_eq!(t[2], 1_583_979_450_500);
    assert_eq!(t[3], 1_583_985_600_000);
    assert_eq!(format_time_ms(t[3]), "2020-03-12T04:00:00Z");
    assert_eq!(t[4], 1_584_000_000_000);
    let r = log_returns(&c);
    assert_eq!(r.len(), 4);
    assert!((r[0] - (6950.0f64 / 7911.0).ln()).abs() < 1e-15);
}

#[test]
fn time_parsing_round_trips_and_rejects_nonsense() {
    for ts in [0, 951_782_400_000, 1_583_979_360_000, 4_102_444_799_000, 1_583_979_450_500] {
        assert_eq!(parse_time_ms(&format_time_ms(ts)), Some(ts));
    }
    assert_eq!(parse_time_ms("2000-02-29"), Some(951_782_400_000));
    for bad in ["2019-02-29", "2020-13-01", "2020-03-12T25:00:00Z", "12/03/2020", "2020-03-12T02:16:00+2", "", "x"] {
        assert_eq!(parse_time_ms(bad), None, "{bad}");
    }
}

#[test]
fn errors_carry_line_numbers() {
    let cases: Vec<(String, CandleError)> = vec![
        (
            "date,open,high,low,close,volume\n2020-03-11,1,2,0.5,1.5,1\n2020-03-12,1,2,0.5\n".into(),
            CandleError::ColumnCount { line: 3, expected: "6 or 12", found: 4 },
        ),
        (
            "2020-03-11,1,2,0.5,1.5,1\n2020-03-12,1,abc,0.5,1.5,1\n".into(),
            CandleError::Number { line: 2, column: "high", value: "abc".into() },
        ),
        (
            "2020-03-11,1,2,0.5,1.5,1\n2020-03-41,1,2,0.5,1.5,1\n".into(),
            CandleError::Time { line: 2, value: "2020-03-41".into() },
        ),
        (
            "2020-03-11,1,2,0.5,1.5,1\n2020-03-11,1,2,0.5,1.5,1\n".into(),
            CandleError::NotIncreasing { line: 2, ts_ms: 1_583_884_800_000, previous_ms: 1_583_884_800_000 },
        ),
        (
            "2020-03-11,1,2,0.5,2.5,1\n".into(),
            CandleError::Invalid { line: 1, message: "need low <= open, close <= high".into() },
        ),
        (
            "2020-03-11,0,2,0.5,1,1\n".into(),
            CandleError::Invalid { line: 1, message: "prices must be positive".into() },
        ),
        (
            "2020-03-11,1,2,0.5,1,-1\n".into(),
            CandleError::Invalid { line: 1, message: "volume must not be negative".into() },
        ),
        ("2020-03-11,1,2,0.5,1,NaN\n".into(), CandleError::Number { line: 1, column: "volume", value: "NaN".into() }),
        ("date,open,high,low,close,volume\n\n".into(), CandleError::Empty),
        ("".into(), CandleError::Empty),
    ];
    for (text, err) in cases {
        assert_eq!(parse_candles(&text).unwrap_err(), err, "{text}");
    }
    let mixed = format!("2020-03-11,1,2,0.5,1.5,1\n{}", BINANCE.lines().nth(1).unwrap());
    assert_eq!(parse_candles(&mixed).unwrap_err(), CandleError::ColumnCount { line: 2, expected: "6", found: 12 });
    assert!(matches!(load_candles(Path::new("/nonexistent/x.csv")), Err(CandleError::Io { .. })));
}

#[test]
fn plain_csv_round_trip() {
    let (_, c) = parse_candles(BINANCE).unwrap();
    let text = to_plain_csv(&c);
    assert!(text.starts_with("date,open,high,low,close,volume\n2020-03-12T00:00:00Z,7934.57,"));
    assert_eq!(parse_candles(&text).unwrap(), (CandleFormat::Plain, c));
}
