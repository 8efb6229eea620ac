//! Results for the API: page selections (`"0-1,3"`), page metadata for `ListEstimators`,
//! and the chunked stream of `GetResults`.
//!
//! Status codes: a malformed selection is INVALID_ARGUMENT; an unknown estimator, or a
//! selection that matches no page, is NOT_FOUND; a simulation without results yet is
//! FAILED_PRECONDITION.

use db::page_info::PageInfo;
use db::results::{Combined, PageMeta, ResultPage};
use proto::v1 as pb;
use tonic::Status;

/// Values per `ResultsChunk`: with their errors, at most 1 MiB per message.
pub const CHUNK_VALUES: usize = 65_536;
/// Most items (numbers or ranges) in one page selection.
pub const MAX_SELECTION_ITEMS: usize = 256;
/// Most estimator names in one request.
pub const MAX_ESTIMATOR_NAMES: usize = 256;

/// Pages chosen by number and inclusive range, e.g. `"0-1,3"`; empty selects every page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageSelection(Vec<(i32, i32)>);

impl PageSelection {
    /// Parses `"0-1,3"`: comma-separated page numbers and inclusive `a-b` ranges with
    /// `a ≤ b`, all non-negative. Spaces around items are allowed; empty text selects all.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self::default());
        }
        let items: Vec<&str> = text.split(',').collect();
        if items.len() > MAX_SELECTION_ITEMS {
            return Err(format!("pages has more than {MAX_SELECTION_ITEMS} items"));
        }
        let number = |s: &str| -> Result<i32, String> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "pages: {:?} is not a page number (expected e.g. \"0-1,3\")",
                    shorten(s)
                ));
            }
            s.parse::<i32>()
                .map_err(|_| format!("pages: {:?} is too large", shorten(s)))
        };
        let mut ranges = Vec::with_capacity(items.len());
        for item in items {
            let range = match item.split_once('-') {
                Some((a, b)) if a.trim().is_empty() || b.trim().is_empty() => {
                    return Err(format!(
                        "pages: {:?} is not a page number or a range a-b (pages are numbered \
                         from 0, e.g. \"0-1,3\")",
                        shorten(item.trim())
                    ));
                }
                Some((a, b)) => {
                    let (a, b) = (number(a)?, number(b)?);
                    if a > b {
                        return Err(format!("pages: range {a}-{b} is reversed"));
                    }
                    (a, b)
                }
                None => {
                    let n = number(item)?;
                    (n, n)
                }
            };
            ranges.push(range);
        }
        Ok(Self(ranges))
    }

    /// True when every page is selected.
    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether page `n` is selected.
    pub fn contains(&self, n: i32) -> bool {
        self.is_all() || self.0.iter().any(|&(a, b)| a <= n && n <= b)
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Checks the estimator names of a request before anything is read: at most
/// [`MAX_ESTIMATOR_NAMES`], each a name (no NUL, no control characters).
pub fn check_estimator_names(requested: &[String]) -> Result<(), Status> {
    if requested.len() > MAX_ESTIMATOR_NAMES {
        return Err(Status::invalid_argument(format!(
            "more than {MAX_ESTIMATOR_NAMES} estimator names"
        )));
    }
    for name in requested {
        if name.is_empty() {
            return Err(Status::invalid_argument(
                "estimators: an empty name (leave the list empty to read every estimator)",
            ));
        }
        crate::text::validate("estimators", name, crate::text::ESTIMATOR_NAME)?;
    }
    Ok(())
}

/// Checks the estimator names of a request against those that exist.
pub fn check_estimators(requested: &[String], existing: &[&str]) -> Result<(), Status> {
    if requested.len() > MAX_ESTIMATOR_NAMES {
        return Err(Status::invalid_argument(format!(
            "more than {MAX_ESTIMATOR_NAMES} estimator names"
        )));
    }
    for name in requested {
        if !existing.contains(&name.as_str()) {
            return Err(Status::not_found(format!(
                "no estimator named {:?}",
                shorten(name)
            )));
        }
    }
    Ok(())
}

fn number(v: &serde_json::Value, key: &str) -> Option<f64> {
    v.get(key).and_then(serde_json::Value::as_f64)
}

fn numbers(v: &serde_json::Value, key: &str) -> Vec<f64> {
    v.get(key)
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default()
}

/// The axes of a page in API form. Both stored forms are understood: the builtin
/// engine's `{name, unit, bins, min, max}` and pymchelper's `{name, unit, values}`.
pub fn axes_pb(axes: &serde_json::Value) -> Vec<pb::Axis> {
    let Some(list) = axes.as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|a| {
            let text = |k: &str| {
                a.get(k)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let centers = numbers(a, "values");
            let bins = a
                .get("bins")
                .and_then(serde_json::Value::as_i64)
                .and_then(|b| i32::try_from(b).ok())
                .unwrap_or_else(|| i32::try_from(centers.len()).unwrap_or(i32::MAX));
            pb::Axis {
                name: text("name"),
                unit: text("unit"),
                bins,
                min: number(a, "min")
                    .or_else(|| centers.first().copied())
                    .unwrap_or(0.0),
                max: number(a, "max")
                    .or_else(|| centers.last().copied())
                    .unwrap_or(0.0),
                edges: numbers(a, "edges"),
                centers,
            }
        })
        .collect()
}

/// The wire form of a page's description: `count` values, `has_errors` when errors are
/// stored, combined by `aggregation`.
fn page_info_pb(
    meta: &PageMeta,
    page_number: i32,
    count: i64,
    has_errors: bool,
    combined: Combined,
) -> pb::PageInfo {
    pb::PageInfo {
        aggregation: pb::Aggregation::from(combined.aggregation).into(),
        tasks_merged: combined.tasks_merged,
        primaries: combined.primaries,
        page_number,
        page_name: meta.name.clone(),
        dimension: i32::from(meta.dimension),
        axes: axes_pb(&meta.axes),
        value_name: meta.value_name.clone(),
        value_unit: meta.value_unit.clone(),
        value_count: i32::try_from(count).unwrap_or(i32::MAX),
        has_errors,
    }
}

/// Groups page metadata by estimator for `ListEstimators`.
pub fn estimators_pb(pages: &[PageInfo]) -> Vec<pb::Estimator> {
    let mut out: Vec<pb::Estimator> = Vec::new();
    for p in pages {
        let info = page_info_pb(
            &p.meta,
            p.page_number,
            p.value_count,
            p.has_errors,
            Combined {
                aggregation: p.aggregation,
                tasks_merged: p.tasks_merged,
                primaries: p.primaries,
            },
        );
        match out.last_mut() {
            Some(e) if e.name == p.estimator => e.pages.push(info),
            _ => out.push(pb::Estimator {
                name: p.estimator.clone(),
                file_name: p.file_name.clone().unwrap_or_default(),
                pages: vec![info],
            }),
        }
    }
    out
}

/// Keeps the pages the request selects; NOT_FOUND for unknown estimators or when a
/// non-empty selection matches nothing.
pub fn select(
    pages: Vec<ResultPage>,
    estimators: &[String],
    selection: &PageSelection,
) -> Result<Vec<ResultPage>, Status> {
    let mut names: Vec<&str> = pages.iter().map(|p| p.estimator.as_str()).collect();
    names.dedup();
    check_estimators(estimators, &names)?;
    let chosen: Vec<ResultPage> = pages
        .into_iter()
        .filter(|p| estimators.is_empty() || estimators.contains(&p.estimator))
        .filter(|p| selection.contains(p.page_number))
        .collect();
    if chosen.is_empty() {
        return Err(Status::not_found("no page matches the selection"));
    }
    Ok(chosen)
}

/// The messages of a selection's stream: every readable page's chunks ([`chunks`]), then,
/// when pages of it are damaged, `DATA_LOSS` naming them. A damaged page is unreadable on
/// its own: it holds back none of the others. When every selected page is damaged, the
/// `DATA_LOSS` is the answer itself.
pub fn stream(
    chosen: Vec<ResultPage>,
) -> Result<impl Iterator<Item = Result<pb::ResultsChunk, Status>>, Status> {
    let (damaged, readable): (Vec<ResultPage>, Vec<ResultPage>) =
        chosen.into_iter().partition(|p| p.damaged.is_some());
    let loss = (!damaged.is_empty()).then(|| {
        let why: Vec<&str> = damaged
            .iter()
            .filter_map(|p| p.damaged.as_deref())
            .collect();
        tracing::error!(damage = ?why, "requested result pages are damaged");
        Status::data_loss(format!(
            "stored result {}; the other pages were sent",
            why.join("; ")
        ))
    });
    if readable.is_empty() {
        return Err(loss.unwrap_or_else(|| Status::not_found("no page matches the selection")));
    }
    Ok(chunks(readable).map(Ok).chain(loss.map(Err)))
}

/// Splits pages into stream messages of at most [`CHUNK_VALUES`] values each; the first
/// chunk of a page carries its metadata, the last is flagged.
pub fn chunks(pages: Vec<ResultPage>) -> impl Iterator<Item = pb::ResultsChunk> {
    pages.into_iter().flat_map(|p| {
        let count = p.values.len();
        let info = page_info_pb(
            &p.meta,
            p.page_number,
            i64::try_from(count).unwrap_or(i64::MAX),
            p.errors.is_some(),
            Combined {
                aggregation: p.aggregation,
                tasks_merged: p.tasks_merged,
                primaries: p.primaries,
            },
        );
        let starts: Vec<usize> = if count == 0 {
            vec![0]
        } else {
            (0..count).step_by(CHUNK_VALUES).collect()
        };
        let last = starts.len() - 1;
        let mut info = Some(info);
        starts
            .into_iter()
            .enumerate()
            .map(|(i, start)| {
                let end = (start + CHUNK_VALUES).min(count);
                pb::ResultsChunk {
                    estimator: p.estimator.clone(),
                    page: info.take(),
                    page_number: p.page_number,
                    offset: i64::try_from(start).unwrap_or(i64::MAX),
                    values: p.values[start..end].to_vec(),
                    errors: p
                        .errors
                        .as_ref()
                        .map(|e| e.get(start..end).unwrap_or_default().to_vec())
                        .unwrap_or_default(),
                    partial: p.partial,
                    last_chunk_of_page: i == last,
                }
            })
            .collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn selections_parse() {
        assert!(PageSelection::parse("").unwrap().is_all());
        assert!(PageSelection::parse("  ").unwrap().is_all());
        let s = PageSelection::parse("0-1, 3").unwrap();
        assert_eq!(s, PageSelection(vec![(0, 1), (3, 3)]));
        assert!(s.contains(0) && s.contains(1) && s.contains(3));
        assert!(!s.contains(2) && !s.contains(4));
        assert_eq!(
            PageSelection::parse("5-5").unwrap(),
            PageSelection(vec![(5, 5)])
        );
    }

    #[test]
    fn bad_selections_are_rejected() {
        for bad in [
            "3-1",
            "-1",
            "1-",
            "a",
            "1,,2",
            ",",
            "1-2-3",
            "1 2",
            "+1",
            "0x10",
            "99999999999",
            "1;DROP TABLE pages",
        ] {
            assert!(PageSelection::parse(bad).is_err(), "{bad:?}");
        }
        let many = vec!["1"; MAX_SELECTION_ITEMS + 1].join(",");
        assert!(PageSelection::parse(&many).is_err());
        // A half range names the whole item, not its empty side.
        for (bad, item) in [("-1", "\"-1\""), ("2-", "\"2-\""), ("0, -3", "\"-3\"")] {
            let e = PageSelection::parse(bad).unwrap_err();
            assert!(
                e.contains(item) && e.contains("numbered from 0"),
                "{bad}: {e}"
            );
        }
    }

    fn page(name: &str, n: i32, count: usize, errors: bool) -> ResultPage {
        ResultPage {
            estimator: name.into(),
            page_number: n,
            meta: PageMeta::default(),
            aggregation: Default::default(),
            values: (0..count).map(|i| i as f64).collect(),
            errors: errors.then(|| vec![0.5; count]),
            tasks_merged: Some(2),
            primaries: Some(200),
            partial: false,
            damaged: None,
        }
    }

    #[test]
    fn large_pages_are_chunked_in_order() {
        let pages = vec![
            page("a", 0, CHUNK_VALUES * 2 + 7, true),
            page("b", 0, 3, false),
        ];
        let chunks: Vec<_> = chunks(pages).collect();
        assert_eq!(chunks.len(), 4);
        assert!(chunks[0].page.is_some() && chunks[1].page.is_none());
        assert_eq!(chunks[2].offset, (2 * CHUNK_VALUES) as i64);
        assert_eq!(chunks[2].values.len(), 7);
        assert_eq!(chunks[2].errors.len(), 7);
        assert!(!chunks[1].last_chunk_of_page && chunks[2].last_chunk_of_page);
        let joined: Vec<f64> = chunks[..3].iter().flat_map(|c| c.values.clone()).collect();
        assert_eq!(joined, page("a", 0, CHUNK_VALUES * 2 + 7, true).values);
        assert!(chunks[3].errors.is_empty() && chunks[3].last_chunk_of_page);
    }

    #[test]
    fn selection_filters_and_reports_misses() {
        let pages = || {
            vec![
                page("a", 0, 1, false),
                page("a", 1, 1, false),
                page("b", 0, 1, false),
            ]
        };
        let sel = PageSelection::parse("1").unwrap();
        let got = select(pages(), &[], &sel).unwrap();
        assert_eq!(got.len(), 1);
        let got = select(pages(), &["b".into()], &PageSelection::default()).unwrap();
        assert_eq!(got.len(), 1);
        let e = select(pages(), &["zz".into()], &PageSelection::default()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        let e = select(pages(), &[], &PageSelection::parse("7").unwrap()).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }
}
