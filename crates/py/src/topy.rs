//! A serde serializer that builds Python objects, so that effects and the state dump reach
//! Python with the same fields as their JSON, but with every amount as `decimal.Decimal`.
//!
//! The engine's fixed-point numbers (`Price`, `Size`, `Quote`, `Rate`) serialize through
//! `collect_str`, plain text through `serialize_str`: that is how a decimal is told from a name
//! (an account called "1001" stays a `str`). A few amounts are carried as `String` in the core's
//! output types (a tier's `from`, which is a size or a notional by the market's basis; the
//! collateral balances of an account; an ADL `rank_score`); they are named in
//! [`DECIMAL_TEXT_FIELDS`] and become decimals too.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::IntoPyObjectExt;
use serde::ser::{self, Serialize};
use std::fmt;

/// Fields whose `String` values are decimal amounts (their map values too, for `collateral`).
const DECIMAL_TEXT_FIELDS: &[&str] = &["from", "rank_score", "collateral"];

/// A Python error raised while building an object, carried through serde.
pub struct SerError(pub PyErr);

impl fmt::Debug for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError(PyValueError::new_err(msg.to_string()))
    }
}

impl From<PyErr> for SerError {
    fn from(error: PyErr) -> Self {
        SerError(error)
    }
}

type Result<T> = std::result::Result<T, SerError>;

/// `-?digits(.digits)?`: the only text the engine writes for an amount.
pub fn is_decimal_text(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && frac.is_none_or(all_digits)
}

/// The serializer: `decimal` is the `decimal.Decimal` class.
#[derive(Clone, Copy)]
pub struct ToPy<'a, 'py> {
    py: Python<'py>,
    decimal: &'a Bound<'py, PyAny>,
    /// `serialize_str` values are amounts here (a field of [`DECIMAL_TEXT_FIELDS`]).
    text_is_decimal: bool,
}

impl<'a, 'py> ToPy<'a, 'py> {
    pub fn new(py: Python<'py>, decimal: &'a Bound<'py, PyAny>) -> Self {
        ToPy { py, decimal, text_is_decimal: false }
    }

    fn plain(self) -> Self {
        ToPy { text_is_decimal: false, ..self }
    }

    fn text(self, value: &str, decimal: bool) -> Result<Bound<'py, PyAny>> {
        if decimal && is_decimal_text(value) {
            Ok(self.decimal.call1((value,))?)
        } else {
            Ok(PyString::new(self.py, value).into_any())
        }
    }

    fn any<T: for<'x> IntoPyObject<'x>>(self, value: T) -> Result<Bound<'py, PyAny>> {
        Ok(value.into_bound_py_any(self.py)?)
    }
}

/// Build the Python object of `value`.
pub fn to_py<'py, T: Serialize + ?Sized>(
    py: Python<'py>,
    decimal: &Bound<'py, PyAny>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    value.serialize(ToPy::new(py, decimal)).map_err(|e| e.0)
}

pub struct Seq<'a, 'py> {
    ser: ToPy<'a, 'py>,
    list: Bound<'py, PyList>,
    /// For a tuple or struct variant: `{variant: ...}`.
    variant: Option<&'static str>,
}

pub struct Map<'a, 'py> {
    ser: ToPy<'a, 'py>,
    dict: Bound<'py, PyDict>,
    key: Option<Bound<'py, PyAny>>,
    variant: Option<&'static str>,
}

fn wrap_variant<'py>(
    py: Python<'py>,
    variant: Option<&'static str>,
    value: Bound<'py, PyAny>,
) -> Result<Bound<'py, PyAny>> {
    match variant {
        None => Ok(value),
        Some(name) => {
            let outer = PyDict::new(py);
            outer.set_item(name, value)?;
            Ok(outer.into_any())
        }
    }
}

impl<'a, 'py> ser::Serializer for ToPy<'a, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    type SerializeSeq = Seq<'a, 'py>;
    type SerializeTuple = Seq<'a, 'py>;
    type SerializeTupleStruct = Seq<'a, 'py>;
    type SerializeTupleVariant = Seq<'a, 'py>;
    type SerializeMap = Map<'a, 'py>;
    type SerializeStruct = Map<'a, 'py>;
    type SerializeStructVariant = Map<'a, 'py>;

    fn serialize_bool(self, v: bool) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_i8(self, v: i8) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_i16(self, v: i16) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_i32(self, v: i32) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_i64(self, v: i64) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_i128(self, v: i128) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_u16(self, v: u16) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_u32(self, v: u32) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_u64(self, v: u64) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_f32(self, v: f32) -> Result<Self::Ok> {
        self.any(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Self::Ok> {
        self.any(v)
    }
    fn serialize_char(self, v: char) -> Result<Self::Ok> {
        self.text(v.encode_utf8(&mut [0; 4]), false)
    }
    fn serialize_str(self, v: &str) -> Result<Self::Ok> {
        self.text(v, self.text_is_decimal)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Self::Ok> {
        Ok(PyBytes::new(self.py, v).into_any())
    }
    fn serialize_none(self) -> Result<Self::Ok> {
        Ok(self.py.None().into_bound(self.py))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Self::Ok> {
        self.serialize_none()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<Self::Ok> {
        self.text(variant, false)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<Self::Ok> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok> {
        let inner = value.serialize(self.plain())?;
        wrap_variant(self.py, Some(variant), inner)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Ok(Seq { ser: self, list: PyList::empty(self.py), variant: None })
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Ok(Seq { ser: self.plain(), list: PyList::empty(self.py), variant: Some(variant) })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Ok(Map { ser: self, dict: PyDict::new(self.py), key: None, variant: None })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        Ok(Map { ser: self.plain(), dict: PyDict::new(self.py), key: None, variant: None })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Ok(Map { ser: self.plain(), dict: PyDict::new(self.py), key: None, variant: Some(variant) })
    }
    /// The engine's amounts (`Display` of a fixed-point number) become `Decimal`.
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<Self::Ok> {
        self.text(&value.to_string(), true)
    }
}

impl<'py> ser::SerializeSeq for Seq<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.list.append(value.serialize(self.ser)?)?;
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        wrap_variant(self.ser.py, self.variant, self.list.into_any())
    }
}

impl<'py> ser::SerializeTuple for Seq<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Self::Ok> {
        ser::SerializeSeq::end(self)
    }
}

impl<'py> ser::SerializeTupleStruct for Seq<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Self::Ok> {
        ser::SerializeSeq::end(self)
    }
}

impl<'py> ser::SerializeTupleVariant for Seq<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Self::Ok> {
        ser::SerializeSeq::end(self)
    }
}

impl<'py> ser::SerializeMap for Map<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.key = Some(key.serialize(self.ser.plain())?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self.key.take().ok_or_else(|| <SerError as ser::Error>::custom("map value without a key"))?;
        self.dict.set_item(key, value.serialize(self.ser)?)?;
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        wrap_variant(self.ser.py, self.variant, self.dict.into_any())
    }
}

impl<'py> ser::SerializeStruct for Map<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        let ser = ToPy { text_is_decimal: DECIMAL_TEXT_FIELDS.contains(&key), ..self.ser };
        self.dict.set_item(key, value.serialize(ser)?)?;
        Ok(())
    }
    fn end(self) -> Result<Self::Ok> {
        wrap_variant(self.ser.py, self.variant, self.dict.into_any())
    }
}

impl<'py> ser::SerializeStructVariant for Map<'_, 'py> {
    type Ok = Bound<'py, PyAny>;
    type Error = SerError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<()> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<Self::Ok> {
        ser::SerializeStruct::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::is_decimal_text;

    #[test]
    fn decimal_text() {
        for ok in ["0", "-1", "12.5", "-0.00000001", "100000000000000000000.0000000000000001"] {
            assert!(is_decimal_text(ok), "{ok}");
        }
        for bad in ["", "-", ".5", "5.", "1e5", "alice", "1.2.3", "+1", " 1", "0x10"] {
            assert!(!is_decimal_text(bad), "{bad}");
        }
    }
}
