//! Text from clients that is stored in, or looked up against, a PostgreSQL `text` column.
//!
//! PostgreSQL refuses a NUL byte in text (`invalid byte sequence for encoding "UTF8": 0x00`):
//! sent through to the database, a NUL would fail the statement and come back as an internal
//! error. So every such string is parsed here, at the edge, into a [`StoredText`] first, and a
//! bad one is `INVALID_ARGUMENT` naming the field. protobuf strings are valid UTF-8 already
//! (tonic refuses anything else while decoding), so NUL is the one character left that the
//! database cannot hold.
//!
//! Two kinds:
//! - [`TextKind::Free`] (a title): every character but NUL, up to a number of characters.
//! - [`TextKind::Name`] (a username, a cluster name): not empty, no control characters at all
//!   (names are printed in logs and tables, and a newline or an escape sequence in one is a
//!   mistake or an attack), up to a number of characters.

use tonic::Status;

/// What a string is, and so which characters it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Free text: any character but NUL; may be empty; at most this many characters.
    Free {
        /// The most characters.
        max_chars: usize,
    },
    /// A name: 1 to this many characters, no control characters (NUL included).
    Name {
        /// The most characters.
        max_chars: usize,
    },
}

/// Longest title, in characters (the `simulations.title` check).
pub const MAX_TITLE_CHARS: usize = 1000;
/// A title: up to [`MAX_TITLE_CHARS`] characters, anything but NUL.
pub const TITLE: TextKind = TextKind::Free {
    max_chars: MAX_TITLE_CHARS,
};
/// A username: 1 to 255 characters (the `users.username` check), no control characters.
pub const USERNAME: TextKind = TextKind::Name { max_chars: 255 };
/// A cluster name: 1 to 63 characters (the `clusters.name` check allows fewer kinds of
/// character still; a name it would refuse simply names no cluster).
pub const CLUSTER_NAME: TextKind = TextKind::Name { max_chars: 63 };
/// An estimator name: 1 to 255 characters (the `estimators.name` check), no control
/// characters.
pub const ESTIMATOR_NAME: TextKind = TextKind::Name { max_chars: 255 };

/// A string a client sent that PostgreSQL can store, checked by [`StoredText::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredText(String);

impl StoredText {
    /// Checks `value`, the request field `field`, against `kind`; `INVALID_ARGUMENT` naming
    /// the field and the rule when it breaks one. The value itself is never echoed back.
    pub fn parse(field: &str, value: String, kind: TextKind) -> Result<Self, Status> {
        validate(field, &value, kind)?;
        Ok(Self(value))
    }

    /// The checked string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The checked string, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Display for StoredText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for StoredText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// [`StoredText::parse`] for a string that is only compared, not kept: `INVALID_ARGUMENT`
/// naming `field` when `value` is not text of `kind`.
pub fn validate(field: &str, value: &str, kind: TextKind) -> Result<(), Status> {
    check(value, kind).map_err(|why| Status::invalid_argument(format!("{field} {why}")))
}

/// Why `value` is not text of `kind` (completing "FIELD …"), or `Ok`.
pub fn check(value: &str, kind: TextKind) -> Result<(), String> {
    if value.contains('\0') {
        return Err("must not contain a NUL byte".into());
    }
    match kind {
        TextKind::Free { max_chars } => {
            if value.chars().count() > max_chars {
                return Err(format!("is longer than {max_chars} characters"));
            }
        }
        TextKind::Name { max_chars } => {
            if value.is_empty() {
                return Err("is required".into());
            }
            if value.chars().any(char::is_control) {
                return Err("must not contain control characters".into());
            }
            if value.chars().count() > max_chars {
                return Err(format!("is longer than {max_chars} characters"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TITLE: TextKind = TextKind::Free { max_chars: 5 };
    const NAME: TextKind = TextKind::Name { max_chars: 4 };

    #[test]
    fn nul_is_refused_in_every_kind() {
        for kind in [TITLE, NAME] {
            for bad in ["\0", "a\0b", "ab\0"] {
                let e = StoredText::parse("f", bad.into(), kind).unwrap_err();
                assert_eq!(e.code(), tonic::Code::InvalidArgument);
                assert_eq!(e.message(), "f must not contain a NUL byte");
            }
        }
    }

    #[test]
    fn free_text_takes_control_characters_but_counts_characters() {
        assert_eq!(
            StoredText::parse("title", "a\tb\nc".into(), TITLE)
                .unwrap()
                .as_str(),
            "a\tb\nc"
        );
        assert!(StoredText::parse("title", String::new(), TITLE).is_ok());
        // Five characters, ten bytes.
        assert!(StoredText::parse("title", "ééééé".into(), TITLE).is_ok());
        let e = StoredText::parse("title", "abcdef".into(), TITLE).unwrap_err();
        assert_eq!(e.message(), "title is longer than 5 characters");
    }

    #[test]
    fn names_refuse_control_characters_empty_and_long() {
        for bad in ["a\nb", "\u{1b}[31m", "tab\t", "\u{7f}"] {
            let e = StoredText::parse("username", bad.into(), NAME).unwrap_err();
            assert_eq!(
                e.message(),
                "username must not contain control characters",
                "{bad:?}"
            );
        }
        let e = StoredText::parse("username", String::new(), NAME).unwrap_err();
        assert_eq!(e.message(), "username is required");
        let e = StoredText::parse("username", "abcde".into(), NAME).unwrap_err();
        assert_eq!(e.message(), "username is longer than 4 characters");
        // Four characters, eight bytes.
        assert_eq!(
            &*StoredText::parse("username", "Zoë😀".into(), NAME).unwrap(),
            "Zoë😀"
        );
    }
}
