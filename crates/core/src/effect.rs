//! Output effects. Each is one JSON line with `type`, `seq` (the 1-based line number of the input
//! event that caused it) and `ts`, then the fields of its kind. `docs/events.md` is the reference.

use crate::error::Error;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effect {
    pub seq: u64,
    pub ts: u64,
    pub kind: EffectKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EffectKind {
    /// The event was refused; the state did not change.
    Rejected { error: String, message: String },
}

impl Effect {
    pub fn rejected(seq: u64, ts: u64, error: &Error) -> Effect {
        Effect { seq, ts, kind: EffectKind::Rejected { error: error.kind().to_string(), message: error.to_string() } }
    }

    /// The effect's `type` name.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            EffectKind::Rejected { .. } => "rejected",
        }
    }

    /// One JSON line (without newline): `{"type":..,"seq":..,"ts":..,<fields>}`.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("effects serialize: all fields are strings and integers")
    }
}

impl Serialize for Effect {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let body = serde_json::to_value(&self.kind).map_err(serde::ser::Error::custom)?;
        let serde_json::Value::Object(fields) = body else {
            return Err(serde::ser::Error::custom("effect kinds serialize to objects"));
        };
        let mut map = serializer.serialize_map(Some(fields.len() + 2))?;
        map.serialize_entry("type", self.type_name())?;
        map.serialize_entry("seq", &self.seq)?;
        map.serialize_entry("ts", &self.ts)?;
        for (key, value) in fields.iter().filter(|(k, _)| k.as_str() != "type") {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
