//! Every binary format `db` stores: result pages ([`page`], `MCRP`), blobs for inputs and
//! logs ([`blob`]), and the merge's running sums ([`sums`], `MACC`); `deflate` is the
//! raw deflate stream they share, `header` the magic-and-version start and the error
//! conversions of pages and blobs. A page's functions are re-exported here, at their old
//! paths.

pub mod blob;
pub(crate) mod deflate;
mod header;
pub mod page;
pub mod sums;

pub use page::{decode, decode_with_limit, encode, value_count, CodecError, DEFAULT_MAX_VALUES};

/// A stored blob that does not decode, as the database error naming `what` it held.
pub(crate) fn corrupt(what: &str, e: CodecError) -> crate::error::DbError {
    crate::error::DbError::Corrupt(format!("stored {what} cannot be decoded: {e}"))
}
