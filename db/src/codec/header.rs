//! The start the page and blob formats share: four magic bytes, a version byte, then fields
//! of the format's own; and the errors both formats name alike.

/// Why a stored header was refused before any of its own fields were read.
#[derive(Debug)]
pub(super) enum HeaderError {
    TooShort { len: usize },
    BadMagic,
    UnsupportedVersion(u8),
}

/// The first `len` bytes of `bytes`, once they are long enough and start with `magic` and
/// `version`.
pub(super) fn split_header(
    bytes: &[u8],
    magic: [u8; 4],
    version: u8,
    len: usize,
) -> Result<&[u8], HeaderError> {
    let header = bytes
        .get(..len)
        .ok_or(HeaderError::TooShort { len: bytes.len() })?;
    if header[..4] != magic {
        return Err(HeaderError::BadMagic);
    }
    if header[4] != version {
        return Err(HeaderError::UnsupportedVersion(header[4]));
    }
    Ok(header)
}

/// The little-endian unsigned number in `bytes` (at most 8 of them).
pub(super) fn le_u64(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0, |acc, &b| acc << 8 | u64::from(b))
}

/// Converts the shared header and inflate errors into a format's error type, which names
/// them with the same variants (`TooShort`, `BadMagic`, `UnsupportedVersion`, `Truncated`,
/// `LengthMismatch`, `Corrupt`).
macro_rules! format_error_from_shared {
    ($error:ident) => {
        impl From<$crate::codec::header::HeaderError> for $error {
            fn from(e: $crate::codec::header::HeaderError) -> Self {
                use $crate::codec::header::HeaderError;
                match e {
                    HeaderError::TooShort { len } => $error::TooShort { len },
                    HeaderError::BadMagic => $error::BadMagic,
                    HeaderError::UnsupportedVersion(v) => $error::UnsupportedVersion(v),
                }
            }
        }

        impl From<$crate::codec::deflate::InflateError> for $error {
            fn from(e: $crate::codec::deflate::InflateError) -> Self {
                use $crate::codec::deflate::InflateError;
                match e {
                    InflateError::Truncated => $error::Truncated,
                    InflateError::LengthMismatch => $error::LengthMismatch,
                    InflateError::Corrupt(msg) => $error::Corrupt(msg),
                }
            }
        }
    };
}
pub(super) use format_error_from_shared;
