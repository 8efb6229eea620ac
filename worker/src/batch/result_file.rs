//! The file an array element leaves its results in (`element-<i>/result`, see
//! [`slurm::job_dir`]), and the batch component reads back: the primaries the element really
//! simulated and every page, each page's values in the `db` page codec ([`db::codec::page`],
//! base64), so that no value (not even a NaN) changes on the way.
//!
//! ```json
//! {"format": 1, "primaries": 1000,
//!  "pages": [{"estimator": "z_profile_", "page_number": 0, "meta": {…PageMeta…},
//!             "aggregation": "mean", "values": "<base64 of the encoded page>"}]}
//! ```

use base64::Engine as _;
use db::aggregation::Aggregation;
use db::results::{PageMeta, TaskPage};
use serde::{Deserialize, Serialize};

/// This version of the format (`format` in the file).
pub const FORMAT: u32 = 1;

/// What one element produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementResult {
    /// Primaries the element really simulated (its merge weight).
    pub primaries: i64,
    /// Every page of every estimator.
    pub pages: Vec<TaskPage>,
}

/// A result file that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ResultFileError {
    /// Not the JSON this module writes (truncated, foreign, another version).
    #[error("the result file is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// A format version this worker does not know.
    #[error("the result file has format {0}; this worker reads format {FORMAT}")]
    Version(u32),
    /// A page's aggregation rule is unknown.
    #[error("page {estimator}/{page}: unknown aggregation {rule:?}")]
    Aggregation {
        /// The estimator.
        estimator: String,
        /// The page number.
        page: i32,
        /// What the file says.
        rule: String,
    },
    /// A page's values are not valid base64 or do not decode.
    #[error("page {estimator}/{page}: values cannot be decoded: {why}")]
    Values {
        /// The estimator.
        estimator: String,
        /// The page number.
        page: i32,
        /// The decoder's words.
        why: String,
    },
}

#[derive(Serialize, Deserialize)]
struct FileForm {
    format: u32,
    primaries: i64,
    pages: Vec<PageForm>,
}

#[derive(Serialize, Deserialize)]
struct PageForm {
    estimator: String,
    page_number: i32,
    meta: PageMeta,
    aggregation: String,
    values: String,
}

impl ElementResult {
    /// The file's bytes. Fails only for a page of more than `u32::MAX` values.
    pub fn to_bytes(&self) -> Result<Vec<u8>, db::codec::CodecError> {
        let pages = self
            .pages
            .iter()
            .map(|p| {
                Ok(PageForm {
                    estimator: p.estimator.clone(),
                    page_number: p.page_number,
                    meta: p.meta.clone(),
                    aggregation: p.aggregation.as_str().to_owned(),
                    values: base64::engine::general_purpose::STANDARD
                        .encode(db::codec::encode(&p.values)?),
                })
            })
            .collect::<Result<Vec<_>, db::codec::CodecError>>()?;
        let form = FileForm {
            format: FORMAT,
            primaries: self.primaries,
            pages,
        };
        // Serializing plain strings, numbers and `serde_json::Value`s cannot fail.
        Ok(serde_json::to_vec(&form).unwrap_or_default())
    }

    /// Reads a result file back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ResultFileError> {
        let form: FileForm = serde_json::from_slice(bytes)?;
        if form.format != FORMAT {
            return Err(ResultFileError::Version(form.format));
        }
        let pages = form
            .pages
            .into_iter()
            .map(|p| {
                let aggregation = Aggregation::parse(&p.aggregation).ok_or_else(|| {
                    ResultFileError::Aggregation {
                        estimator: p.estimator.clone(),
                        page: p.page_number,
                        rule: p.aggregation.clone(),
                    }
                })?;
                let values = base64::engine::general_purpose::STANDARD
                    .decode(&p.values)
                    .map_err(|e| e.to_string())
                    .and_then(|b| db::codec::decode(&b).map_err(|e| e.to_string()))
                    .map_err(|why| ResultFileError::Values {
                        estimator: p.estimator.clone(),
                        page: p.page_number,
                        why,
                    })?;
                Ok(TaskPage {
                    estimator: p.estimator,
                    page_number: p.page_number,
                    meta: p.meta,
                    aggregation,
                    values,
                })
            })
            .collect::<Result<Vec<_>, ResultFileError>>()?;
        Ok(Self {
            primaries: form.primaries,
            pages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(values: Vec<f64>, aggregation: Aggregation) -> TaskPage {
        TaskPage {
            estimator: "z_profile_".into(),
            page_number: 0,
            meta: PageMeta {
                name: "DOSE".into(),
                dimension: 1,
                axes: serde_json::json!([{"name": "z", "bins": values.len()}]),
                value_name: "dose".into(),
                value_unit: "MeV/g".into(),
                ..PageMeta::default()
            },
            aggregation,
            values,
        }
    }

    /// Every value, NaN and signed zero included, comes back bit for bit.
    #[test]
    fn results_round_trip_bit_for_bit() {
        let r = ElementResult {
            primaries: 1234,
            pages: vec![
                page(vec![0.0, -0.0, 1.5e-300, f64::NAN, 7.25], Aggregation::Mean),
                page(vec![3.0, 4.0], Aggregation::Sum),
            ],
        };
        let back = ElementResult::from_bytes(&r.to_bytes().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.primaries, 1234);
        assert_eq!(back.pages.len(), 2);
        for (a, b) in r.pages.iter().zip(&back.pages) {
            let bits = |p: &TaskPage| p.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b));
            assert_eq!((&a.meta, a.aggregation), (&b.meta, b.aggregation));
        }
    }

    #[test]
    fn damaged_files_are_refused_with_the_reason() {
        let good = ElementResult {
            primaries: 1,
            pages: vec![page(vec![1.0], Aggregation::Mean)],
        }
        .to_bytes()
        .unwrap_or_default();
        let half = &good[..good.len() / 2];
        assert!(matches!(
            ElementResult::from_bytes(half),
            Err(ResultFileError::Json(_))
        ));
        let text = String::from_utf8(good).unwrap_or_default();
        let v2 = text.replace("\"format\":1", "\"format\":2");
        assert!(matches!(
            ElementResult::from_bytes(v2.as_bytes()),
            Err(ResultFileError::Version(2))
        ));
        let bad_rule = text.replace("\"mean\"", "\"median\"");
        assert!(matches!(
            ElementResult::from_bytes(bad_rule.as_bytes()),
            Err(ResultFileError::Aggregation { .. })
        ));
        let bad_values = text.replace("\"values\":\"", "\"values\":\"!!");
        assert!(matches!(
            ElementResult::from_bytes(bad_values.as_bytes()),
            Err(ResultFileError::Values { .. })
        ));
    }
}
