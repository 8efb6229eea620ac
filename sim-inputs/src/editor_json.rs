//! The editor's JSON document as Submit takes it: valid JSON in which no object names a key
//! twice. JSON parsers disagree on a repeated key (serde_json's `Value` keeps the last one,
//! others the first), so a document with one would run with physics its author may not have
//! meant (`{"energy_mev": 150, "energy_mev": 10}` ran at 10 MeV); it is refused instead.
//! RFC 8259 §4: "The names within an object SHOULD be unique".

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Why an editor document was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditorJsonError {
    /// Not JSON, or an object repeats a key; serde_json's message, with line and column.
    #[error("editor_json is not valid JSON: {0}")]
    Invalid(String),
}

/// Parses `text` as JSON, refusing a document in which any object repeats a key.
///
/// # Errors
/// [`EditorJsonError::Invalid`] naming the first problem and where it is.
pub fn parse(text: &str) -> Result<serde_json::Value, EditorJsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    de::DeserializeSeed::deserialize(UniqueKeys, &mut de)
        .and_then(|()| de.end())
        .map_err(|e| EditorJsonError::Invalid(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| EditorJsonError::Invalid(e.to_string()))
}

/// Walks a document, failing on the first object that repeats a key.
struct UniqueKeys;

impl<'de> de::DeserializeSeed<'de> for UniqueKeys {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(UniqueKeys)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            map.next_value_seed(UniqueKeys)?;
        }
        Ok(())
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
