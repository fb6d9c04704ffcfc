//! A strict, allocation-light reader for one flat JSON object.
//!
//! Fields are read into borrowed strings where the input has no escapes; nested values (only the
//! `tiers` array of `params` uses them) become `serde_json::Value`. Duplicate keys, non-objects,
//! trailing garbage and more than [`MAX_FIELDS`] fields are refused with typed errors.

use crate::error::Error;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Most fields an event object may have.
pub const MAX_FIELDS: usize = 32;

#[derive(Debug, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    /// A number that is not an integer of 64 bits (a fraction, an exponent, or too large). Kept
    /// only as a kind: its text is never converted, so no float ever exists here.
    NonInteger,
    Bool(bool),
    Null,
    /// Boxed: nested values are rare (`tiers`), and a small `Scalar` is cheap to move.
    Json(Box<serde_json::Value>),
}

/// The fields of one object, consumed by name; what is left at the end is an unknown field.
/// A consumed entry's value is taken (`None`), so that the order of the rest is kept.
#[derive(Debug, Default, PartialEq)]
pub struct Fields<'a> {
    entries: Vec<(Cow<'a, str>, Option<Scalar<'a>>)>,
}

struct Object<'a> {
    fields: Fields<'a>,
    duplicate: Option<String>,
    too_many: bool,
}

/// Parse `text` as exactly one JSON object.
pub fn parse_object(text: &str) -> Result<Fields<'_>, Error> {
    if let Some(fields) = flat::parse(text) {
        return Ok(fields);
    }
    parse_object_general(text)
}

/// [`parse_object`] through serde_json: every input, every error.
/// The line is first read as one raw JSON value (syntax, nesting limit, trailing garbage), so
/// that a value of another kind is `not_an_object` without ever being converted.
fn parse_object_general(text: &str) -> Result<Fields<'_>, Error> {
    let invalid = |e: serde_json::Error| Error::InvalidJson(e.to_string());
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: &RawValue = de::Deserialize::deserialize(&mut de).map_err(invalid)?;
    de.end().map_err(invalid)?;
    if !raw.get().starts_with('{') {
        return Err(Error::NotAnObject);
    }
    let object: Object = serde_json::from_str(raw.get()).map_err(invalid)?;
    if let Some(key) = object.duplicate {
        return Err(Error::DuplicateField(key));
    }
    if object.too_many {
        return Err(Error::InvalidJson(format!("more than {MAX_FIELDS} fields")));
    }
    Ok(object.fields)
}

impl<'a> Fields<'a> {
    fn take(&mut self, name: &str) -> Option<Scalar<'a>> {
        let entry = self.entries.iter_mut().find(|(key, value)| value.is_some() && key == name)?;
        match entry.1.take()? {
            Scalar::Null => None,
            value => Some(value),
        }
    }

    /// A string field (absent or null: `None`).
    pub fn take_string(&mut self, name: &str) -> Result<Option<Cow<'a, str>>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(_) => Err(Error::InvalidFieldType { field: name.to_string(), expected: "a string" }),
        }
    }

    /// A non-negative integer field (absent or null: `None`).
    pub fn take_u64(&mut self, name: &str) -> Result<Option<u64>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Scalar::U64(v)) => Ok(Some(v)),
            Some(_) => Err(Error::InvalidFieldType { field: name.to_string(), expected: "a non-negative integer" }),
        }
    }

    /// A boolean field (absent or null: `None`).
    pub fn take_bool(&mut self, name: &str) -> Result<Option<bool>, Error> {
        match self.take(name) {
            None => Ok(None),
            Some(Scalar::Bool(v)) => Ok(Some(v)),
            Some(_) => Err(Error::InvalidFieldType { field: name.to_string(), expected: "true or false" }),
        }
    }

    /// Any JSON value, for nested fields.
    pub fn take_json(&mut self, name: &str) -> Result<Option<serde_json::Value>, Error> {
        Ok(match self.take(name) {
            None => None,
            Some(Scalar::Json(v)) => Some(*v),
            Some(Scalar::Str(s)) => Some(serde_json::Value::String(s.into_owned())),
            Some(Scalar::U64(v)) => Some(v.into()),
            Some(Scalar::I64(v)) => Some(v.into()),
            Some(Scalar::NonInteger) | Some(Scalar::Bool(_)) | Some(Scalar::Null) => {
                return Err(Error::InvalidFieldType { field: name.to_string(), expected: "an array" })
            }
        })
    }

    /// Fail with `unknown_field` if a field was not consumed.
    pub fn finish(self, event_type: &str) -> Result<(), Error> {
        match self.entries.into_iter().find(|(_, value)| value.is_some()) {
            None => Ok(()),
            Some((key, _)) => Err(Error::UnknownField {
                field: key.chars().take(64).collect(),
                event_type: event_type.chars().take(64).collect(),
            }),
        }
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    /// Read the value's raw text and classify it; numbers are parsed as integers or kept as a
    /// kind ([`Scalar::NonInteger`]), never converted to a float.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: &'de RawValue = de::Deserialize::deserialize(d)?;
        Scalar::classify(raw.get()).map_err(de::Error::custom)
    }
}

impl<'de> Scalar<'de> {
    /// Pure: the scalar of one syntactically valid JSON value's text.
    fn classify(text: &'de str) -> Result<Scalar<'de>, serde_json::Error> {
        Ok(match text.as_bytes().first() {
            Some(b'"') if !text.contains('\\') => Scalar::Str(Cow::Borrowed(&text[1..text.len() - 1])),
            Some(b'"') => Scalar::Str(Cow::Owned(serde_json::from_str::<String>(text)?)),
            Some(b'{' | b'[') => Scalar::Json(Box::new(serde_json::from_str(text)?)),
            Some(b't') => Scalar::Bool(true),
            Some(b'f') => Scalar::Bool(false),
            Some(b'n') => Scalar::Null,
            _ => match (text.parse::<u64>(), text.parse::<i64>()) {
                (Ok(v), _) => Scalar::U64(v),
                (_, Ok(v)) => Scalar::I64(v),
                _ => Scalar::NonInteger,
            },
        })
    }
}

impl<'de> de::Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut object = Object { fields: Fields::default(), duplicate: None, too_many: false };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if object.fields.entries.len() >= MAX_FIELDS {
                object.too_many = true;
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value = map.next_value::<Scalar<'de>>()?;
            if object.duplicate.is_none() && object.fields.entries.iter().any(|(k, _)| *k == key) {
                object.duplicate = Some(key.chars().take(64).collect());
            }
            object.fields.entries.push((key, Some(value)));
        }
        Ok(object)
    }
}

/// The common case without serde: one flat object whose values are strings without escapes,
/// unsigned integers, booleans or null, with at most [`MAX_FIELDS`] distinct keys. Anything else
/// (escapes, control characters, nested values, negative or non-integer numbers, duplicates,
/// malformed input) returns `None`, and the general parser above decides it, errors included,
/// exactly as it always has. Where this path answers, it gives the same fields the general one
/// would (borrowed keys and strings, `U64`, `Bool`, `Null`).
pub(crate) mod flat {
    use super::{Fields, Scalar, MAX_FIELDS};
    use std::borrow::Cow;

    /// The index of the first byte at or after `i` that is not JSON whitespace.
    fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
        while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    }

    /// A string without escapes starting at `i` (its opening quote): contents and the index
    /// after it; `None` for an escape, a control character or no closing quote.
    fn string(text: &str, i: usize) -> Option<(&str, usize)> {
        let bytes = text.as_bytes();
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let len = bytes[i + 1..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = i + 1 + len;
        (bytes[end] == b'"').then(|| (&text[i + 1..end], end + 1))
    }

    /// One value of a flat object, as scanned.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(crate) enum Token<'t> {
        /// A string without escapes (its contents).
        Str(&'t str),
        U64(u64),
        Bool(bool),
        Null,
    }

    fn token(text: &str, i: usize) -> Option<(Token<'_>, usize)> {
        let bytes = text.as_bytes();
        let literal = |word: &str, value: Token<'static>| {
            bytes[i..].starts_with(word.as_bytes()).then_some((value, i + word.len()))
        };
        match *bytes.get(i)? {
            b'"' => string(text, i).map(|(s, next)| (Token::Str(s), next)),
            b'0'..=b'9' => {
                let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                let next = i + digits;
                if (digits > 1 && bytes[i] == b'0') || matches!(bytes.get(next), Some(b'.' | b'e' | b'E')) {
                    return None;
                }
                let mut value = 0u64;
                for &b in &bytes[i..next] {
                    value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                }
                Some((Token::U64(value), next))
            }
            b't' => literal("true", Token::Bool(true)),
            b'f' => literal("false", Token::Bool(false)),
            b'n' => literal("null", Token::Null),
            _ => None,
        }
    }

    /// Scan `text` as exactly one flat JSON object of [`Token`]s, handing each (key, value) to
    /// `field` in order. `None` as soon as the input is anything else, or `field` declines.
    pub(crate) fn scan_object<'t>(
        text: &'t str,
        mut field: impl FnMut(&'t str, Token<'t>) -> Option<()>,
    ) -> Option<()> {
        let bytes = text.as_bytes();
        let mut i = skip_ws(bytes, 0);
        if bytes.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        if bytes.get(i) == Some(&b'}') {
            return (skip_ws(bytes, i + 1) == bytes.len()).then_some(());
        }
        loop {
            let (key, next) = string(text, i)?;
            i = skip_ws(bytes, next);
            if bytes.get(i) != Some(&b':') {
                return None;
            }
            let (value, next) = token(text, skip_ws(bytes, i + 1))?;
            field(key, value)?;
            i = skip_ws(bytes, next);
            match bytes.get(i) {
                Some(b',') => i = skip_ws(bytes, i + 1),
                Some(b'}') => return (skip_ws(bytes, i + 1) == bytes.len()).then_some(()),
                _ => return None,
            }
        }
    }

    pub(super) fn parse(text: &str) -> Option<Fields<'_>> {
        let mut entries: Vec<(Cow<'_, str>, Option<Scalar<'_>>)> = Vec::with_capacity(8);
        scan_object(text, |key, value| {
            if entries.len() >= MAX_FIELDS || entries.iter().any(|(k, _)| k == key) {
                return None;
            }
            let scalar = match value {
                Token::Str(s) => Scalar::Str(Cow::Borrowed(s)),
                Token::U64(v) => Scalar::U64(v),
                Token::Bool(v) => Scalar::Bool(v),
                Token::Null => Scalar::Null,
            };
            entries.push((Cow::Borrowed(key), Some(scalar)));
            Some(())
        })?;
        Some(Fields { entries })
    }
}

/// Tests: `line` after `edits` random one-byte edits (a byte removed, inserted or replaced, the
/// new bytes drawn from JSON's punctuation, digits, escapes and a few letters), to probe a
/// parser's edges. `next` is the caller's seeded generator.
#[cfg(test)]
pub(crate) fn mutated(line: &str, edits: usize, next: &mut impl FnMut() -> u64) -> Vec<u8> {
    const ALPHABET: &[u8] = b"{}[]\":,. 0123456789-+eE\\tnulrfas\n\x01";
    let mut bytes = line.as_bytes().to_vec();
    for _ in 0..edits {
        let at = (next() % (bytes.len() as u64 + 1)) as usize;
        let byte = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
        match next() % 3 {
            1 => bytes.insert(at, byte),
            _ if at == bytes.len() => {}
            0 => {
                bytes.remove(at);
            }
            _ => bytes[at] = byte,
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers are integers or a kind: fractions, exponents (even beyond any float's range) and
    /// integers beyond 64 bits are refused as a field type, never converted.
    #[test]
    fn non_integer_numbers_are_a_kind_not_a_value() {
        let line = r#"{"a":1.5,"b":1e400,"c":18446744073709551616,"d":-3,"e":7,"f":"x\u0079","g":[1.25]}"#;
        let mut fields = parse_object(line).unwrap();
        for name in ["a", "b", "c", "d"] {
            let error = fields.take_u64(name).unwrap_err();
            assert!(matches!(error, Error::InvalidFieldType { .. }), "{name}: {error:?}");
        }
        assert_eq!(fields.take_u64("e").unwrap(), Some(7));
        assert_eq!(fields.take_string("f").unwrap().as_deref(), Some("xy"));
        assert!(fields.take_json("g").unwrap().is_some_and(|v| v.is_array()));
        fields.finish("test").unwrap();
        assert!(matches!(parse_object("2.5"), Err(Error::NotAnObject)));
        assert!(matches!(parse_object("{\"a\":1} 2"), Err(Error::InvalidJson(_))));
    }

    /// Wherever the fast path answers, the general parser gives the same fields; mutations of
    /// real lines (deleted, duplicated, replaced bytes) probe the edges where it must decline.
    #[test]
    fn flat_path_agrees_with_serde() {
        let seeds = [
            r#"{"type":"price","ts":1700000000000,"market":"BTC-PERP","source":"s1","price":"7900.5"}"#,
            r#"{"type":"trade","ts":0,"market":"BTC-PERP","buyer":"alice","seller":"bob","size":"1.5","price":"7900"}"#,
            r#" { "type" : "clock" , "ts" : 0 } "#,
            r#"{"type":"params","ts":0,"market":"BTC-PERP","adl_enabled":true,"conf":null,"x":false}"#,
            r#"{}"#,
        ];
        let mut next = crate::num::xorshift(0x2545_f491_4f6c_dd1d);
        let (mut fast, mut total) = (0, 0);
        for seed in seeds {
            for _ in 0..3_000 {
                let edits = 1 + (next() % 3) as usize;
                let bytes = super::mutated(seed, edits, &mut next);
                let Ok(text) = std::str::from_utf8(&bytes) else { continue };
                total += 1;
                if let Some(fields) = flat::parse(text) {
                    fast += 1;
                    assert_eq!(Ok(fields), parse_object_general(text), "{text}");
                }
            }
            assert_eq!(flat::parse(seed), parse_object_general(seed).ok(), "{seed}");
        }
        assert!(fast > total / 20, "the fast path answers often enough to be tested ({fast} of {total})");
    }
}
