//! A strict, allocation-light reader for one flat JSON object.
//!
//! Fields are read into borrowed strings where the input has no escapes; nested values (only the
//! `tiers` array of `params` uses them) become `serde_json::Value`. Duplicate keys, non-objects,
//! trailing garbage and more than [`MAX_FIELDS`] fields are refused with typed errors.

use crate::error::Error;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Most fields an event object may have.
pub const MAX_FIELDS: usize = 32;

#[derive(Debug, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64,
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
    not_object: bool,
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
fn parse_object_general(text: &str) -> Result<Fields<'_>, Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let object: Object = de::Deserialize::deserialize(&mut de).map_err(|e| Error::InvalidJson(e.to_string()))?;
    de.end().map_err(|e| Error::InvalidJson(e.to_string()))?;
    if object.not_object {
        return Err(Error::NotAnObject);
    }
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
            Some(Scalar::F64) | Some(Scalar::Bool(_)) | Some(Scalar::Null) => {
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
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::I64(v))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::F64)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
        let value = de::Deserialize::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(Scalar::Json(Box::new(value)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
        let value = de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Scalar::Json(Box::new(value)))
    }
}

impl<'de> de::Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor)
    }
}

struct ObjectVisitor;

impl ObjectVisitor {
    fn not_object<'de>() -> Object<'de> {
        Object { fields: Fields::default(), not_object: true, duplicate: None, too_many: false }
    }
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Object<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object<'de>, A::Error> {
        let mut object = Object { fields: Fields::default(), not_object: false, duplicate: None, too_many: false };
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
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Object<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::not_object())
    }
    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Object<'de>, E> {
        Ok(Self::not_object())
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
    pub(crate) fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
        while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    }

    /// A string without escapes starting at `i` (its opening quote): contents and the index
    /// after it; `None` for an escape, a control character or no closing quote.
    pub(crate) fn string(text: &str, i: usize) -> Option<(&str, usize)> {
        let bytes = text.as_bytes();
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let len = bytes[i + 1..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        let end = i + 1 + len;
        (bytes[end] == b'"').then(|| (&text[i + 1..end], end + 1))
    }

    fn scalar(text: &str, i: usize) -> Option<(Scalar<'_>, usize)> {
        let bytes = text.as_bytes();
        let literal = |word: &str, value: Scalar<'static>| {
            bytes[i..].starts_with(word.as_bytes()).then_some((value, i + word.len()))
        };
        match *bytes.get(i)? {
            b'"' => string(text, i).map(|(s, next)| (Scalar::Str(Cow::Borrowed(s)), next)),
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
                Some((Scalar::U64(value), next))
            }
            b't' => literal("true", Scalar::Bool(true)),
            b'f' => literal("false", Scalar::Bool(false)),
            b'n' => literal("null", Scalar::Null),
            _ => None,
        }
    }

    pub(super) fn parse(text: &str) -> Option<Fields<'_>> {
        let bytes = text.as_bytes();
        let mut i = skip_ws(bytes, 0);
        if bytes.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(bytes, i + 1);
        let mut entries: Vec<(Cow<'_, str>, Option<Scalar<'_>>)> = Vec::with_capacity(8);
        if bytes.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                let (key, next) = string(text, i)?;
                i = skip_ws(bytes, next);
                if bytes.get(i) != Some(&b':') {
                    return None;
                }
                let (value, next) = scalar(text, skip_ws(bytes, i + 1))?;
                if entries.len() >= MAX_FIELDS || entries.iter().any(|(k, _)| k == key) {
                    return None;
                }
                entries.push((Cow::Borrowed(key), Some(value)));
                i = skip_ws(bytes, next);
                match bytes.get(i) {
                    Some(b',') => i = skip_ws(bytes, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        (skip_ws(bytes, i) == bytes.len()).then_some(Fields { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let alphabet = b"{}[]\":,. 0123456789-+eE\\tnulrfas\n\x01";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut fast, mut total) = (0, 0);
        for seed in seeds {
            for _ in 0..3_000 {
                let mut bytes = seed.as_bytes().to_vec();
                for _ in 0..1 + next(3) {
                    let at = next(bytes.len().max(1));
                    match next(3) {
                        0 if !bytes.is_empty() => {
                            bytes.remove(at.min(bytes.len() - 1));
                        }
                        1 => bytes.insert(at, alphabet[next(alphabet.len())]),
                        _ if !bytes.is_empty() => {
                            let len = bytes.len();
                            bytes[at.min(len - 1)] = alphabet[next(alphabet.len())];
                        }
                        _ => {}
                    }
                }
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
