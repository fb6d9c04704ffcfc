//! Fixed-point numbers that carry their scale in their type.
//!
//! | type    | repr | decimals | meaning                                                     |
//! |---------|------|----------|-------------------------------------------------------------|
//! | `Price` | i64  | 8        | quote units per base unit (a mark, an index, a trade price) |
//! | `Size`  | i64  | 8        | base units: a signed position size or a non-settlement collateral balance |
//! | `Quote` | i128 | 16       | settlement-asset value (USDC): balances, PnL, margin        |
//! | `Rate`  | i64  | 8        | dimensionless: margin rates, weights, factors, deviations   |
//!
//! `Size` x `Price` is exactly a `Quote` (8 + 8 = 16 decimals, and the i64 x i64 product always
//! fits an i128), so notional, cost basis and unrealized PnL are exact: no rounding, and value is
//! conserved to the last unit. Rounding happens only where a rate or a division enters, and every
//! such call names its direction with [`Round`]: requirements round up, equity and anything the
//! account receives round down (in favour of solvency).
//!
//! All arithmetic is checked: overflow is [`Overflow`], never a wrap or a panic.

use ethnum::I256;
use std::fmt;
use std::str::FromStr;

/// Direction of rounding for a result that is not exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round {
    /// Toward negative infinity (floor): used for equity and for what an account receives.
    Down,
    /// Toward positive infinity (ceiling): used for requirements and for what an account pays.
    Up,
}

/// An arithmetic result that does not fit its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("arithmetic overflow")]
pub struct Overflow;

/// Why a decimal string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumError {
    #[error("empty number")]
    Empty,
    #[error("exponent notation is not accepted (write plain decimals)")]
    Exponent,
    #[error("not a number (NaN and infinity are refused)")]
    NotANumber,
    #[error("sign error (only a single leading '-' is accepted)")]
    Sign,
    #[error("malformed decimal {0:?}")]
    Malformed(String),
    #[error("too many decimal places: at most {max} are accepted")]
    TooManyDecimals { max: u32 },
    #[error("number too large")]
    Overflow,
}

impl NumError {
    /// Stable snake_case kind used in `rejected` effects.
    pub fn kind(&self) -> &'static str {
        match self {
            NumError::Empty => "empty_number",
            NumError::Exponent => "exponent_notation",
            NumError::NotANumber => "not_a_number",
            NumError::Sign => "sign_error",
            NumError::Malformed(_) => "malformed_number",
            NumError::TooManyDecimals { .. } => "too_many_decimals",
            NumError::Overflow => "number_overflow",
        }
    }
}

/// Longest decimal string we look at; anything longer cannot fit an i128 at 16 decimals anyway.
const MAX_DECIMAL_LEN: usize = 64;

/// Parse a plain decimal (`-?digits(.digits)?`) exactly into an i128 scaled by 10^decimals.
pub fn parse_scaled(text: &str, decimals: u32) -> Result<i128, NumError> {
    match parse_scaled_plain(text, decimals) {
        Some(value) => Ok(value),
        None => parse_scaled_general(text, decimals),
    }
}

/// One pass over the common case: `-?digits(.digits)?`, at most `decimals` decimals, well inside
/// the i128 range. `None` for anything else, which [`parse_scaled_general`] then decides (every
/// error is its); where this answers, the general path gives the same value.
fn parse_scaled_plain(text: &str, decimals: u32) -> Option<i128> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    if digits.is_empty() || bytes.len() > MAX_DECIMAL_LEN {
        return None;
    }
    let mut value: i128 = 0;
    let mut fraction: Option<u32> = None;
    for (k, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' if value < 1 << 120 => {
                value = value * 10 + i128::from(b - b'0');
                if let Some(f) = fraction.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction.is_none() && k > 0 && k + 1 < digits.len() => fraction = Some(0),
            _ => return None,
        }
    }
    let pad = decimals.checked_sub(fraction.unwrap_or(0))?;
    let value = value.checked_mul(10i128.pow(pad))?;
    Some(if negative { -value } else { value })
}

/// [`parse_scaled`] for every input, with its typed errors.
fn parse_scaled_general(text: &str, decimals: u32) -> Result<i128, NumError> {
    if text.is_empty() {
        return Err(NumError::Empty);
    }
    let has = |word: &[u8]| text.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word));
    if has(b"nan") || has(b"inf") {
        return Err(NumError::NotANumber);
    }
    let numeric = |b: u8| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E');
    if !text.bytes().all(numeric) {
        return Err(NumError::Malformed(text.chars().take(MAX_DECIMAL_LEN).collect()));
    }
    let (negative, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => return Err(NumError::Sign),
        _ => (false, text),
    };
    if body.contains(['e', 'E']) {
        return Err(NumError::Exponent);
    }
    if body.contains(['-', '+']) {
        return Err(NumError::Sign);
    }
    if text.len() > MAX_DECIMAL_LEN {
        return Err(NumError::Overflow);
    }
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(int_part) || frac_part.is_some_and(|f| !digits_only(f)) {
        return Err(NumError::Malformed(text.to_string()));
    }
    let frac = frac_part.unwrap_or("");
    if frac.len() > decimals as usize {
        return Err(NumError::TooManyDecimals { max: decimals });
    }
    let mut value: i128 = 0;
    for b in int_part.bytes().chain(frac.bytes()) {
        value = value.checked_mul(10).and_then(|v| v.checked_add(i128::from(b - b'0'))).ok_or(NumError::Overflow)?;
    }
    let pad = decimals - frac.len() as u32;
    value = value.checked_mul(10i128.pow(pad)).ok_or(NumError::Overflow)?;
    Ok(if negative { -value } else { value })
}

/// Render an i128 scaled by 10^decimals exactly, without trailing zeros ("1.5", "-0.25", "300").
pub fn format_scaled(raw: i128, decimals: u32, out: &mut fmt::Formatter<'_>) -> fmt::Result {
    let scale = 10u128.pow(decimals);
    let magnitude = raw.unsigned_abs();
    let int = magnitude / scale;
    let frac = magnitude % scale;
    let sign = if raw < 0 { "-" } else { "" };
    if frac == 0 {
        return write!(out, "{sign}{int}");
    }
    let frac_text = format!("{:0width$}", frac, width = decimals as usize);
    write!(out, "{sign}{int}.{}", frac_text.trim_end_matches('0'))
}

/// (a x b) / d rounded as asked, exact for any i128 inputs (256-bit intermediate).
pub fn mul_div(a: i128, b: i128, d: i128, round: Round) -> Result<i128, Overflow> {
    if d == 0 {
        return Err(Overflow);
    }
    // The product fits i128 (magnitudes below 2^126): one i128 division, same rounding.
    if a.unsigned_abs().leading_zeros() + b.unsigned_abs().leading_zeros() >= 130 && d != -1 {
        let product = a * b;
        if d == 100_000_000 {
            return Ok(div_1e8(product, round)); // rates: the common divisor, without a division
        }
        let (quotient, remainder) = (product / d, product % d);
        if remainder == 0 {
            return Ok(quotient);
        }
        let positive = (remainder > 0) == (d > 0);
        return Ok(match (round, positive) {
            (Round::Up, true) => quotient + 1,
            (Round::Down, false) => quotient - 1,
            _ => quotient,
        });
    }
    mul_div_wide(a, b, d, round)
}

/// [`mul_div`] with a 256-bit intermediate (any i128 inputs, `d` != 0).
fn mul_div_wide(a: i128, b: i128, d: i128, round: Round) -> Result<i128, Overflow> {
    let product = I256::from(a) * I256::from(b);
    let divisor = I256::from(d);
    let quotient = product / divisor;
    let remainder = product % divisor;
    let mut result = quotient;
    if remainder != I256::ZERO {
        let positive = (remainder > I256::ZERO) == (divisor > I256::ZERO);
        match (round, positive) {
            (Round::Up, true) => result += I256::ONE,
            (Round::Down, false) => result -= I256::ONE,
            _ => {}
        }
    }
    i128::try_from(result).map_err(|_| Overflow)
}

/// `n / 10^8` and `n % 10^8` without a 128-bit division: long division in 32-bit limbs, each
/// step a 64-bit division by a constant (which compiles to a multiplication).
#[inline]
pub fn divrem_1e8(n: u128) -> (u128, u64) {
    const D: u64 = 100_000_000;
    let limbs = [
        (n >> 96) as u64,
        ((n >> 64) as u64) & 0xffff_ffff,
        ((n >> 32) as u64) & 0xffff_ffff,
        (n as u64) & 0xffff_ffff,
    ];
    let (mut quotient, mut remainder) = (0u128, 0u64);
    for limb in limbs {
        let current = (remainder << 32) | limb; // remainder < D < 2^27: no overflow
        quotient = (quotient << 32) | u128::from(current / D);
        remainder = current % D;
    }
    (quotient, remainder)
}

/// `n / 10^8` rounded as asked, for any i128 (`Round::Down` is the floor).
#[inline]
pub fn div_1e8(n: i128, round: Round) -> i128 {
    let (quotient, remainder) = divrem_1e8(n.unsigned_abs());
    let quotient = quotient as i128; // |n| / 10^8 < 2^101
    let inexact = i128::from(remainder != 0);
    match (n >= 0, round) {
        (true, Round::Down) => quotient,
        (true, Round::Up) => quotient + inexact,
        (false, Round::Down) => -quotient - inexact,
        (false, Round::Up) => -quotient,
    }
}

/// `n / 10^16` rounded up, for n >= 0 (two steps of 10^8: floor(floor(n / a) / b) = floor(n / ab)).
#[inline]
pub fn ceil_div_1e16(n: i128) -> i128 {
    debug_assert!(n >= 0);
    let (first, r1) = divrem_1e8(n.unsigned_abs());
    let (second, r2) = divrem_1e8(first);
    second as i128 + i128::from(r1 != 0 || r2 != 0)
}

/// n / d rounded as asked.
pub fn div_round(n: i128, d: i128, round: Round) -> Result<i128, Overflow> {
    mul_div(n, 1, d, round)
}

macro_rules! fixed_point {
    ($(#[$doc:meta])* $name:ident, $repr:ty, $decimals:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name($repr);

        impl $name {
            /// Number of decimal places carried by this type.
            pub const DECIMALS: u32 = $decimals;
            /// Raw value of 1.0.
            pub const ONE_RAW: $repr = (10 as $repr).pow($decimals);
            pub const ZERO: Self = Self(0);
            pub const ONE: Self = Self(Self::ONE_RAW);
            pub const MAX: Self = Self(<$repr>::MAX);

            pub const fn from_raw(raw: $repr) -> Self {
                Self(raw)
            }
            pub const fn raw(self) -> $repr {
                self.0
            }
            /// A whole number of units.
            pub fn from_int(units: i64) -> Result<Self, Overflow> {
                <$repr>::try_from(units)
                    .ok()
                    .and_then(|u| u.checked_mul(Self::ONE_RAW))
                    .map(Self)
                    .ok_or(Overflow)
            }
            /// Exact parse of a plain decimal string.
            pub fn parse(text: &str) -> Result<Self, NumError> {
                let raw = parse_scaled(text, Self::DECIMALS)?;
                <$repr>::try_from(raw).map(Self).map_err(|_| NumError::Overflow)
            }
            pub fn checked_add(self, other: Self) -> Result<Self, Overflow> {
                self.0.checked_add(other.0).map(Self).ok_or(Overflow)
            }
            pub fn checked_sub(self, other: Self) -> Result<Self, Overflow> {
                self.0.checked_sub(other.0).map(Self).ok_or(Overflow)
            }
            pub fn checked_neg(self) -> Result<Self, Overflow> {
                self.0.checked_neg().map(Self).ok_or(Overflow)
            }
            pub fn checked_abs(self) -> Result<Self, Overflow> {
                self.0.checked_abs().map(Self).ok_or(Overflow)
            }
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }
            pub const fn is_positive(self) -> bool {
                self.0 > 0
            }
            pub const fn is_negative(self) -> bool {
                self.0 < 0
            }
            pub const fn signum(self) -> i32 {
                if self.0 > 0 {
                    1
                } else if self.0 < 0 {
                    -1
                } else {
                    0
                }
            }
            /// Multiply by a rate, rounding as asked.
            pub fn mul_rate(self, rate: Rate, round: Round) -> Result<Self, Overflow> {
                let raw = mul_div(self.0 as i128, rate.raw() as i128, Rate::ONE_RAW as i128, round)?;
                <$repr>::try_from(raw).map(Self).map_err(|_| Overflow)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_scaled(self.0 as i128, Self::DECIMALS, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = NumError;
            fn from_str(text: &str) -> Result<Self, NumError> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

fixed_point!(
    /// Quote units per base unit, 8 decimals. Valid market prices are strictly positive.
    Price, i64, 8
);
fixed_point!(
    /// Base units, 8 decimals: a signed position size (short < 0) or a collateral balance.
    Size, i64, 8
);
fixed_point!(
    /// Settlement-asset value, 16 decimals: exactly `Size` x `Price`.
    Quote, i128, 16
);
fixed_point!(
    /// A dimensionless rate or factor, 8 decimals (0.025 = 2.5%).
    Rate, i64, 8
);

impl Size {
    /// Exact notional: size x price. Never rounds and never overflows (i64 x i64 fits i128).
    pub fn mul_price(self, price: Price) -> Quote {
        Quote(i128::from(self.0) * i128::from(price.0))
    }
}

impl Quote {
    /// quote / size as a price, rounded as asked (entry price, liquidation price).
    pub fn div_size(self, size: Size, round: Round) -> Result<Price, Overflow> {
        let raw = div_round(self.0, i128::from(size.0), round)?;
        i64::try_from(raw).map(Price).map_err(|_| Overflow)
    }
    /// quote / price as a size, rounded as asked.
    pub fn div_price(self, price: Price, round: Round) -> Result<Size, Overflow> {
        let raw = div_round(self.0, i128::from(price.0), round)?;
        i64::try_from(raw).map(Size).map_err(|_| Overflow)
    }
    /// self x numerator / denominator for sizes (a pro-rata share), rounded as asked.
    pub fn mul_ratio(self, numerator: Size, denominator: Size, round: Round) -> Result<Quote, Overflow> {
        mul_div(self.0, i128::from(numerator.0), i128::from(denominator.0), round).map(Quote)
    }
    /// self x numerator / denominator for quote amounts, rounded as asked.
    pub fn mul_ratio_quote(self, numerator: Quote, denominator: Quote, round: Round) -> Result<Quote, Overflow> {
        mul_div(self.0, numerator.0, denominator.0, round).map(Quote)
    }
    pub fn min(self, other: Quote) -> Quote {
        if self <= other {
            self
        } else {
            other
        }
    }
    pub fn max(self, other: Quote) -> Quote {
        if self >= other {
            self
        } else {
            other
        }
    }
}

impl Rate {
    /// Whether the rate lies in [0, 1].
    pub fn is_fraction(self) -> bool {
        self.0 >= 0 && self.0 <= Self::ONE_RAW
    }
}

impl Price {
    /// Price x rate, rounded as asked.
    pub fn scale(self, rate: Rate, round: Round) -> Result<Price, Overflow> {
        self.mul_rate(rate, round)
    }
}

/// A seeded xorshift64 generator for the unit tests' random cases (deterministic, no crate).
#[cfg(test)]
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    assert!(seed != 0, "xorshift needs a non-zero seed");
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_exact_and_display_round_trip() {
        for text in ["0", "1", "-1", "7900.5", "0.00000001", "123456789.12345678", "-0.25"] {
            assert_eq!(Price::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Price::parse("7900.50").unwrap().to_string(), "7900.5");
        assert_eq!(Price::parse("007").unwrap().raw(), 700_000_000);
        assert_eq!(Quote::parse("0.0000000000000001").unwrap().raw(), 1);
        assert_eq!(Price::parse("-0").unwrap(), Price::ZERO);
    }

    #[test]
    fn parse_errors_are_typed() {
        assert_eq!(Price::parse(""), Err(NumError::Empty));
        assert_eq!(Price::parse("1e5"), Err(NumError::Exponent));
        assert_eq!(Price::parse("1E-5"), Err(NumError::Exponent));
        assert_eq!(Price::parse("NaN"), Err(NumError::NotANumber));
        assert_eq!(Price::parse("-inf"), Err(NumError::NotANumber));
        assert_eq!(Price::parse("+1"), Err(NumError::Sign));
        assert_eq!(Price::parse("--1"), Err(NumError::Sign));
        assert_eq!(Price::parse("1-"), Err(NumError::Sign));
        assert_eq!(Price::parse("0.123456789"), Err(NumError::TooManyDecimals { max: 8 }));
        assert_eq!(Price::parse("92233720369"), Err(NumError::Overflow));
        assert_eq!(Quote::parse("1234567890123456789012345678901234567890"), Err(NumError::Overflow));
        assert!(matches!(Price::parse(".5"), Err(NumError::Malformed(_))));
        assert!(matches!(Price::parse("5."), Err(NumError::Malformed(_))));
        assert!(matches!(Price::parse("1 "), Err(NumError::Malformed(_))));
        assert!(matches!(Price::parse("0x10"), Err(NumError::Malformed(_))));
        assert!(matches!(Price::parse("ten"), Err(NumError::Malformed(_))));
        assert!(matches!(Price::parse(&"x".repeat(100)), Err(NumError::Malformed(_))));
        assert!(matches!(Price::parse("1.2.3"), Err(NumError::Malformed(_))));
    }

    /// The one-pass path and the general one agree on every input the fast one answers.
    #[test]
    fn plain_parse_agrees_with_general() {
        let inputs = [
            "0",
            "-0",
            "007",
            "1.5",
            "-1.5",
            "0.00000001",
            "0.000000001",
            "1.",
            ".5",
            "1..2",
            "1.2.3",
            "-",
            "--1",
            "1e5",
            "92233720368.54775807",
            "92233720368.54775808",
            "170141183460469231731687303715884105727",
            "99999999999999999999999999999999999999",
            "12345678901234567890.1234567890123456",
            "+1",
            "1-",
            "",
        ];
        for text in inputs {
            for decimals in [8, 16] {
                if let Some(value) = parse_scaled_plain(text, decimals) {
                    assert_eq!(Ok(value), parse_scaled_general(text, decimals), "{text}");
                }
                assert_eq!(parse_scaled(text, decimals), parse_scaled_general(text, decimals), "{text}");
            }
        }
    }

    #[test]
    fn division_by_powers_of_ten_without_dividing() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..50_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let wide = (u128::from(state) << 64 | u128::from(state.rotate_left(17))) >> (round % 128);
            let n = (wide >> 1) as i128 * if round % 2 == 0 { 1 } else { -1 };
            assert_eq!(
                divrem_1e8(n.unsigned_abs()),
                (n.unsigned_abs() / 100_000_000, (n.unsigned_abs() % 100_000_000) as u64)
            );
            assert_eq!(div_1e8(n, Round::Down), n.div_euclid(100_000_000));
            assert_eq!(div_1e8(n, Round::Up), -((-n).div_euclid(100_000_000)));
            let m = n.abs();
            let expected = m / 10i128.pow(16) + i128::from(m % 10i128.pow(16) != 0);
            assert_eq!(ceil_div_1e16(m), expected);
        }
    }

    /// The i128 path of `mul_div` agrees with the 256-bit one in both directions of rounding,
    /// for every sign combination and magnitudes on both sides of the fast path's limit.
    #[test]
    fn mul_div_fast_path_agrees_with_wide() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let bits = [8u32, 30, 60, 63, 64, 100, 126][round % 7];
            let mut value = |bits: u32| {
                let v = ((u128::from(next()) << 64) | u128::from(next())) >> (128 - bits);
                if next().is_multiple_of(2) {
                    v as i128
                } else {
                    -(v as i128)
                }
            };
            let (a, b) = (value(bits), value(64 - bits.min(63)));
            let d_bits = 1 + (a.unsigned_abs() % 64) as u32;
            let d = value(d_bits);
            if d == 0 {
                continue;
            }
            for r in [Round::Down, Round::Up] {
                assert_eq!(mul_div(a, b, d, r), mul_div_wide(a, b, d, r), "{a} x {b} / {d}");
            }
        }
    }

    #[test]
    fn size_times_price_is_exact() {
        let size = Size::parse("300").unwrap();
        let price = Price::parse("10000").unwrap();
        assert_eq!(size.mul_price(price), Quote::parse("3000000").unwrap());
        let tiny = Size::parse("0.00000001").unwrap();
        let cheap = Price::parse("0.00000001").unwrap();
        assert_eq!(tiny.mul_price(cheap), Quote::from_raw(1));
        let big = Size::from_raw(i64::MAX).mul_price(Price::from_raw(i64::MAX));
        assert!(big.is_positive());
    }

    #[test]
    fn rounding_directions() {
        let third = Quote::parse("1").unwrap().mul_ratio(Size::ONE, Size::from_int(3).unwrap(), Round::Down).unwrap();
        let third_up = Quote::parse("1").unwrap().mul_ratio(Size::ONE, Size::from_int(3).unwrap(), Round::Up).unwrap();
        assert_eq!(third_up.raw() - third.raw(), 1);
        let neg = Quote::parse("-1").unwrap().mul_ratio(Size::ONE, Size::from_int(3).unwrap(), Round::Down).unwrap();
        assert_eq!(neg.raw(), -third_up.raw());
        assert_eq!(mul_div(7, 1, 2, Round::Down), Ok(3));
        assert_eq!(mul_div(7, 1, 2, Round::Up), Ok(4));
        assert_eq!(mul_div(-7, 1, 2, Round::Down), Ok(-4));
        assert_eq!(mul_div(-7, 1, 2, Round::Up), Ok(-3));
        assert_eq!(mul_div(7, 1, -2, Round::Down), Ok(-4));
        assert_eq!(mul_div(i128::MAX, 2, 2, Round::Down), Ok(i128::MAX));
        assert_eq!(mul_div(i128::MAX, 2, 1, Round::Down), Err(Overflow));
        assert_eq!(mul_div(1, 1, 0, Round::Down), Err(Overflow));
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(Size::MAX.checked_add(Size::from_raw(1)), Err(Overflow));
        assert_eq!(Size::from_raw(i64::MIN).checked_neg(), Err(Overflow));
        assert_eq!(Quote::MAX.mul_rate(Rate::from_int(2).unwrap(), Round::Up), Err(Overflow));
        assert_eq!(Quote::from_int(i64::MAX).map(|q| q.is_positive()), Ok(true));
        assert_eq!(Size::from_int(i64::MAX), Err(Overflow));
    }

    #[test]
    fn mul_rate_rounds_as_asked() {
        let q = Quote::from_raw(3);
        let half = Rate::parse("0.5").unwrap();
        assert_eq!(q.mul_rate(half, Round::Up).unwrap().raw(), 2);
        assert_eq!(q.mul_rate(half, Round::Down).unwrap().raw(), 1);
    }
}
