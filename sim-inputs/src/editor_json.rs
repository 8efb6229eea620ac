//! The editor's JSON document as Submit takes it: valid JSON in which no object names a key
//! twice. JSON parsers disagree on a repeated key (serde_json's `Value` keeps the last one,
//! others the first), so a document with one would run with physics its author may not have
//! meant (`{"energy_mev": 150, "energy_mev": 10}` ran at 10 MeV); it is refused instead.
//! RFC 8259 §4: "The names within an object SHOULD be unique".

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Why an editor document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditorJsonError {
    /// Not JSON, or an object repeats a key; serde_json's message, with line and column.
    #[error("editor_json is not valid JSON: {0}")]
    Invalid(String),
}

/// Parses `text` as JSON, refusing a document in which any object repeats a key. One pass:
/// the value is built as the keys are checked.
///
/// # Errors
/// [`EditorJsonError::Invalid`] naming the first problem and where it is.
pub fn parse(text: &str) -> Result<Value, EditorJsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    de::DeserializeSeed::deserialize(UniqueKeys, &mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| EditorJsonError::Invalid(e.to_string()))
}

/// Builds a [`Value`], failing on the first object that repeats a key.
struct UniqueKeys;

impl<'de> de::DeserializeSeed<'de> for UniqueKeys {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json reads only finite numbers, which `Value::from` keeps as numbers.
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeys)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let value = map.next_value_seed(UniqueKeys)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_wherever_it_is() {
        for text in [
            r#"{"beam": {"energy_mev": 150, "energy_mev": 10}}"#,
            r#"{"seed": 1, "seed": 1}"#,
            r#"{"a": [{"b": 1}, {"c": 2, "c": 3}]}"#,
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains("appears twice") && e.contains("column"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn the_same_key_in_different_objects_is_fine() {
        let v = parse(r#"{"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]}"#).unwrap();
        assert_eq!(v["c"][1]["x"], 4);
        assert_eq!(parse("[1, 2.5, \"s\", null, true]").unwrap()[1], 2.5);
    }

    /// The value built while the keys are checked is serde_json's own.
    #[test]
    fn the_value_is_what_serde_json_reads() {
        let doc = r#"{"beam": {"energy_mev": 150.0, "sigma_cm": 3e-1, "position_cm": [0, -1.5]},
                     "seed": 18446744073709551615, "n": -7, "s": "a\"b\u00e9", "z": null,
                     "on": true, "list": [[], {}, [{"k": false}]]}"#;
        assert_eq!(
            parse(doc).unwrap(),
            serde_json::from_str::<Value>(doc).unwrap()
        );
    }

    #[test]
    fn invalid_json_says_what_and_where() {
        for (text, what) in [
            ("{", "EOF"),
            (r#"{"e": 1e999}"#, "number out of range"),
            (r#"{"e": NaN}"#, "expected value"),
            ("{} x", "trailing characters"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("line 1"), "{text}: {e}");
        }
    }
}
