//! Conversions between the stored enums ([`db::enums`]) and the wire enums ([`crate::v1`]),
//! the only place they are written (feature `db`).
//!
//! Every stored value has a wire value (`From`); a wire value names a stored one unless it
//! is `*_UNSPECIFIED` (`TryFrom`, failing with [`Unspecified`]). Raw `i32` fields are read
//! with the generated `TryFrom<i32>` first.

use crate::v1 as pb;
use db::enums;

/// A wire enum holding its `*_UNSPECIFIED` value, which names no stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {0} is unspecified")]
pub struct Unspecified(pub &'static str);

/// `From` both ways between a stored enum and its wire enum, variant by variant.
macro_rules! wire_enum {
    ($what:literal, $stored:ident { $($variant:ident),+ $(,)? }) => {
        impl From<enums::$stored> for pb::$stored {
            fn from(v: enums::$stored) -> Self {
                match v {
                    $(enums::$stored::$variant => pb::$stored::$variant,)+
                }
            }
        }

        impl TryFrom<pb::$stored> for enums::$stored {
            type Error = Unspecified;

            fn try_from(v: pb::$stored) -> Result<Self, Unspecified> {
                match v {
                    $(pb::$stored::$variant => Ok(enums::$stored::$variant),)+
                    pb::$stored::Unspecified => Err(Unspecified($what)),
                }
            }
        }
    };
}

wire_enum!(
    "simulator type",
    SimType {
        Builtin,
        Shieldhit,
        Topas,
        Fluka
    }
);
wire_enum!("platform", Platform { Direct, Batch });
wire_enum!("input type", InputType { Editor, Files });
wire_enum!(
    "job state",
    JobState {
        Pending,
        Running,
        Merging,
        Completed,
        Failed,
        Canceled
    }
);
wire_enum!(
    "task state",
    TaskState {
        Pending,
        Running,
        Completed,
        Failed,
        Canceled
    }
);

/// How a page's tasks combine ([`db::aggregation::Aggregation`]); shown to clients, never
/// read from them.
impl From<db::aggregation::Aggregation> for pb::Aggregation {
    fn from(a: db::aggregation::Aggregation) -> Self {
        use db::aggregation::Aggregation as A;
        match a {
            A::Mean => pb::Aggregation::Mean,
            A::Sum => pb::Aggregation::Sum,
            A::Copy => pb::Aggregation::Copy,
            A::Concat => pb::Aggregation::Concat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_value_round_trips() {
        for s in enums::JobState::ALL {
            assert_eq!(enums::JobState::try_from(pb::JobState::from(*s)), Ok(*s));
        }
        for s in enums::TaskState::ALL {
            assert_eq!(enums::TaskState::try_from(pb::TaskState::from(*s)), Ok(*s));
        }
        for s in enums::SimType::ALL {
            assert_eq!(enums::SimType::try_from(pb::SimType::from(*s)), Ok(*s));
        }
        assert_eq!(
            enums::JobState::try_from(pb::JobState::Unspecified),
            Err(Unspecified("job state"))
        );
        assert_eq!(
            pb::Platform::from(enums::Platform::Batch),
            pb::Platform::Batch
        );
        assert_eq!(
            pb::InputType::from(enums::InputType::Files),
            pb::InputType::Files
        );
        let names: Vec<&str> = db::aggregation::Aggregation::ALL
            .iter()
            .map(|a| pb::Aggregation::from(*a).as_str_name())
            .collect();
        assert_eq!(
            names,
            [
                "AGGREGATION_MEAN",
                "AGGREGATION_SUM",
                "AGGREGATION_COPY",
                "AGGREGATION_CONCAT"
            ]
        );
    }
}
