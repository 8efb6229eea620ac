//! How the tasks of a simulation combine into one page: the rule SHIELD-HIT12A writes into
//! every page header (`page_normalized`) and pymchelper follows when it merges
//! (`pymchelper.input_output.AggregationType`, pymchelper 2.9.6).
//!
//! | `page_normalized` | pymchelper aggregator | [`Aggregation`] | pages |
//! |---|---|---|---|
//! | 0 | `NoAggregator` | [`Aggregation::Copy`] | material, density (RHO) |
//! | 1 | `SumAggregator` | [`Aggregation::Sum`] | COUNT |
//! | 2 | `WeightedStatsAggregator` | [`Aggregation::Mean`] | dose, fluence ("cumulative") |
//! | 3 | `WeightedStatsAggregator` | [`Aggregation::Mean`] | DLET, TLET ("per primary") |
//! | 4 | `ConcatenatingAggregator` | [`Aggregation::Concat`] | MCPL phase space |
//! | absent | `WeightedStatsAggregator` | [`Aggregation::Mean`] | older `.bdo`, FLUKA |

use serde::{Deserialize, Serialize};

/// How a page's values from several tasks combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// The mean weighted by each task's primaries, `Σ Nᵢ·xᵢ / Σ Nᵢ` per bin, with its
    /// standard error. Values are per primary (dose in MeV/g/primary, fluence in
    /// cm⁻²/primary, LET in MeV/cm).
    #[default]
    Mean,
    /// The plain sum `Σ xᵢ` per bin (counters), with the standard error of the sum.
    Sum,
    /// The first task's values (geometry maps, equal in every task); no error.
    Copy,
    /// Every task's values appended in task order (phase-space records); no error.
    Concat,
}

impl Aggregation {
    /// Every variant.
    pub const ALL: [Aggregation; 4] = [Self::Mean, Self::Sum, Self::Copy, Self::Concat];

    /// The name stored in the database and shown to clients: `mean`, `sum`, `copy`, `concat`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Sum => "sum",
            Self::Copy => "copy",
            Self::Concat => "concat",
        }
    }

    /// The variant named by [`Aggregation::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The rule for SHIELD-HIT12A's `page_normalized` flag (see the module table). An unknown
    /// value is `None`; a missing one is [`Aggregation::Mean`], as pymchelper assumes.
    pub fn from_page_normalized(flag: Option<i64>) -> Option<Self> {
        match flag {
            None | Some(2) | Some(3) => Some(Self::Mean),
            Some(0) => Some(Self::Copy),
            Some(1) => Some(Self::Sum),
            Some(4) => Some(Self::Concat),
            Some(_) => None,
        }
    }

    /// Whether the page's standard error can be estimated from the spread between tasks.
    pub fn has_errors(self) -> bool {
        matches!(self, Self::Mean | Self::Sum)
    }
}

impl std::fmt::Display for Aggregation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_flags_follow_pymchelper() {
        for a in Aggregation::ALL {
            assert_eq!(Aggregation::parse(a.as_str()), Some(a));
        }
        assert_eq!(Aggregation::parse("total"), None);
        let flags: Vec<_> = (0..=5)
            .map(|f| Aggregation::from_page_normalized(Some(f)))
            .collect();
        use Aggregation::*;
        assert_eq!(
            flags,
            [
                Some(Copy),
                Some(Sum),
                Some(Mean),
                Some(Mean),
                Some(Concat),
                None
            ]
        );
        assert_eq!(Aggregation::from_page_normalized(None), Some(Mean));
    }
}
