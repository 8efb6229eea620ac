//! Submit's checks of its plain fields: the title, the task and primary counts, and the
//! cluster name of a batch submission. Each failure is `INVALID_ARGUMENT` naming the field
//! and, for a limit, the limit and the flag that sets it.

use crate::text::{self, StoredText};
use crate::Limits;
use tonic::Status;

/// The title: at most [`crate::text::MAX_TITLE_CHARS`] characters, no NUL.
pub fn title(title: String) -> Result<StoredText, Status> {
    StoredText::parse("title", title, text::TITLE)
}

/// `ntasks` within `1..=max_ntasks`, `primaries` within `1..=max_primaries`, and at least one
/// primary per task.
pub fn counts(ntasks: i32, primaries: i64, limits: &Limits) -> Result<(), Status> {
    if ntasks < 1 || ntasks > limits.max_ntasks {
        return Err(Status::invalid_argument(format!(
            "ntasks must be between 1 and {}",
            limits.max_ntasks
        )));
    }
    if primaries < 1 {
        return Err(Status::invalid_argument("primaries must be above 0"));
    }
    if primaries > limits.max_primaries {
        return Err(Status::invalid_argument(format!(
            "primaries must be at most {} (this server's --max-primaries)",
            limits.max_primaries
        )));
    }
    if primaries < i64::from(ntasks) {
        return Err(Status::invalid_argument(
            "primaries must be at least ntasks (each task needs one)",
        ));
    }
    Ok(())
}

/// The cluster name of a batch submission: required, at most 63 characters, no control
/// characters (so no NUL).
pub fn cluster(name: String) -> Result<StoredText, Status> {
    StoredText::parse("batch.cluster", name, text::CLUSTER_NAME)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn primaries_above_the_limit_name_it() {
        let limits = Limits {
            max_primaries: 1000,
            ..Limits::default()
        };
        counts(4, 1000, &limits).unwrap();
        let e = counts(4, 1001, &limits).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            e.message(),
            "primaries must be at most 1000 (this server's --max-primaries)"
        );
        assert!(counts(4, i64::MAX, &Limits::default()).is_err());
        assert!(counts(4, 3, &limits).is_err());
        assert!(counts(0, 10, &limits).is_err());
        assert!(counts(1, 0, &limits).is_err());
    }
}
