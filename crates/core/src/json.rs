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

#[derive(Debug)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64,
    Bool(bool),
    Null,
    Json(serde_json::Value),
}

/// The fields of one object, consumed by name; what is left at the end is an unknown field.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    entries: Vec<(Cow<'a, str>, Scalar<'a>)>,
}

struct Object<'a> {
    fields: Fields<'a>,
    not_object: bool,
    duplicate: Option<String>,
    too_many: bool,
}

/// Parse `text` as exactly one JSON object.
pub fn parse_object(text: &str) -> Result<Fields<'_>, Error> {
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
        let position = self.entries.iter().position(|(key, _)| key == name)?;
        match self.entries.remove(position).1 {
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
            Some(Scalar::Json(v)) => Some(v),
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
        match self.entries.into_iter().next() {
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
        Ok(Scalar::Json(value))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
        let value = de::Deserialize::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Scalar::Json(value))
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
            object.fields.entries.push((key, value));
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
