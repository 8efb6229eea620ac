//! The one rule for an input file's name, used by `sim-api` at Submit and by the worker when
//! it writes the file into a task's work directory.

use crate::InputError;

/// An input file's name: a plain name that is safe to create inside a work directory. Not
/// empty, at most 255 bytes, no `/` or `\`, no control characters (NUL included), and not `.`
/// or `..` (names that only start with dots, like `.hidden` or `..notes`, are plain).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

impl FileName {
    /// The most bytes a name may have (a usual filesystem's limit).
    pub const MAX_BYTES: usize = 255;

    /// Checks `name`; the error says what is wrong with it.
    pub fn parse(name: &str) -> Result<Self, InputError> {
        let why = if name.is_empty() {
            Some("is empty")
        } else if name.len() > Self::MAX_BYTES {
            Some("is longer than 255 bytes")
        } else if name.contains(['/', '\\']) {
            Some("contains a path separator")
        } else if name.chars().any(char::is_control) {
            Some("contains a control character")
        } else if name == "." || name == ".." {
            Some("is not a plain file name")
        } else {
            None
        };
        match why {
            Some(why) => Err(InputError::new(format!("input file name {name:?} {why}"))),
            None => Ok(Self(name.to_string())),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        for ok in [
            "beam.dat",
            "geo.dat",
            "info.json",
            "a b.txt",
            "..hidden",
            ".hidden",
            "a..b",
        ] {
            assert_eq!(
                FileName::parse(ok).map(|f| f.to_string()),
                Ok(ok.to_string())
            );
        }
        let long = "x".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "x\0y",
            "/abs",
            "new\nline",
            &long,
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
        let e = FileName::parse("a/b").unwrap_err();
        assert!(e.0.contains("path separator"), "{e}");
    }
}
