//! The size of every result page a SHIELD-HIT12A `detect.dat` asks for, so that Submit can
//! refuse a page over [`crate::MAX_PAGE_VALUES`] before any task runs (the worker would
//! refuse it after every task had run).
//!
//! The current format (SHIELD-HIT12A ≥ 0.7) is made of blocks, each opened by a line whose
//! first word is `Geometry`, `Filter`, `Output`, `Scoring` or `Settings` (keywords are
//! case-insensitive):
//!
//! - `Geometry Mesh` bins along `X`, `Y` and `Z`, `Geometry Cyl` along `R`, `Z` (and
//!   `Phi`): each axis line is `AXIS low high bins`; an axis that is not given has one bin.
//!   `Geometry Plane` is one bin, `Geometry Zone` one bin per zone listed on its `Zone` lines.
//! - `Output` writes one page per `Quantity` line on the geometry named by `Geo`. A `Diff1`
//!   (and `Diff2`) line, `Diff1 low high bins [LOG]`, adds a differential axis to the
//!   `Quantity` before it (to every `Quantity` of the output when it comes before the first),
//!   which multiplies that page by its bins. A `Quantity MCPL` page is a phase-space file:
//!   its size is the particles recorded, not bins, and it is not counted here.
//!
//! The old fixed format (one card per estimator, as pymchelper's generated inputs write it)
//! has `MSH`, `CYL` and `GEOMAP` cards whose continuation line gives the bins of the three
//! axes in its first three 10-column fields; a `PLANE` card is one bin, a `ZONE` card one per
//! zone from its first field's zone to its second's.

/// One result page a `detect.dat` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The output file it goes into (`Filename`, or the old format's last field).
    pub output: String,
    /// The quantity it scores (`Dose`, `Fluence`, …).
    pub quantity: String,
    /// The scoring geometry's name (`Geo`), or the old format's card keyword.
    pub geometry: String,
    /// How its values come about, e.g. `X 200 × Y 200 × Z 100 × Diff1 10`.
    pub binning: String,
    /// Its number of values: the product of its bins (saturating).
    pub values: u64,
}

/// A scoring geometry: its bins along each axis it names, or the bins of a zone list.
#[derive(Debug, Clone, Default)]
struct Geometry {
    kind: String,
    axes: Vec<(String, u64)>,
    zones: u64,
}

impl Geometry {
    fn bins(&self) -> (u64, Vec<String>) {
        let mut n = 1u64;
        let mut parts = Vec::new();
        for (axis, bins) in &self.axes {
            n = n.saturating_mul(*bins);
            parts.push(format!("{axis} {bins}"));
        }
        if self.zones > 1 {
            n = n.saturating_mul(self.zones);
            parts.push(format!("{} zones", self.zones));
        }
        (n, parts)
    }
}

/// The bins a count field gives: its whole part, at least 1 (`None` when it is no number).
fn bin_count(field: &str) -> Option<u64> {
    let v: f64 = field.trim().replace(['d', 'D'], "E").parse().ok()?;
    // A count below 1 is not a count SHIELD-HIT12A accepts; it cannot make a page larger.
    Some(if v >= 1.0 {
        v.min(u64::MAX as f64) as u64
    } else {
        1
    })
}

/// Whether `word` is the block keyword `k`, in any case.
fn is(word: &str, k: &str) -> bool {
    word.eq_ignore_ascii_case(k)
}

/// Every result page that `detect` asks for, in the order of its outputs.
pub fn pages(detect: &str) -> Vec<Page> {
    let lines: Vec<&str> = detect.lines().filter(|l| !super::is_comment(l)).collect();
    let current = lines.iter().any(|l| {
        l.split_whitespace().next().is_some_and(|w| {
            ["Geometry", "Output", "Filter", "Scoring"]
                .iter()
                .any(|k| is(w, k))
        })
    });
    if current {
        current_format(&lines)
    } else {
        old_format(&lines)
    }
}

/// One `Output` block as read so far.
#[derive(Default)]
struct Output {
    file: String,
    geo: String,
    /// Differential bins before the first `Quantity`: for every quantity.
    shared_diff: Vec<(String, u64)>,
    /// Each quantity with the differential axes that follow it.
    quantities: Vec<(String, Vec<(String, u64)>)>,
}

fn current_format(lines: &[&str]) -> Vec<Page> {
    enum Block {
        Geometry(String, Geometry),
        Output(Output),
        Other,
    }
    let mut geometries: Vec<(String, Geometry)> = Vec::new();
    let mut outputs: Vec<Output> = Vec::new();
    let mut block = Block::Other;
    let close = |block: Block, geometries: &mut Vec<(String, Geometry)>, outputs: &mut Vec<_>| {
        match block {
            Block::Geometry(name, g) => geometries.push((name, g)),
            Block::Output(o) => outputs.push(o),
            Block::Other => {}
        }
    };
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(&key) = words.first() else { continue };
        let arg = |i: usize| words.get(i).copied().unwrap_or_default();
        if ["Geometry", "Output", "Filter", "Scoring", "Settings"]
            .iter()
            .any(|k| is(key, k))
        {
            close(
                std::mem::replace(&mut block, Block::Other),
                &mut geometries,
                &mut outputs,
            );
            block = if is(key, "Geometry") {
                let geometry = Geometry {
                    kind: arg(1).to_string(),
                    ..Geometry::default()
                };
                Block::Geometry(String::new(), geometry)
            } else if is(key, "Output") {
                Block::Output(Output::default())
            } else {
                Block::Other
            };
            continue;
        }
        match &mut block {
            Block::Geometry(name, g) => {
                if is(key, "Name") {
                    *name = arg(1).to_string();
                } else if is(key, "Zone") {
                    g.zones += words.len().saturating_sub(1).max(1) as u64;
                } else if ["X", "Y", "Z", "R", "Phi"].iter().any(|a| is(key, a)) {
                    if let Some(bins) = words.get(3).and_then(|w| bin_count(w)) {
                        g.axes.push((key.to_string(), bins));
                    }
                }
            }
            Block::Output(o) => {
                if is(key, "Filename") {
                    o.file = arg(1).to_string();
                } else if is(key, "Geo") {
                    o.geo = arg(1).to_string();
                } else if is(key, "Quantity") {
                    o.quantities.push((arg(1).to_string(), Vec::new()));
                } else if is(key, "Diff1") || is(key, "Diff2") {
                    if let Some(bins) = words.get(3).and_then(|w| bin_count(w)) {
                        let axis = (key.to_string(), bins);
                        match o.quantities.last_mut() {
                            Some((_, diff)) => diff.push(axis),
                            None => o.shared_diff.push(axis),
                        }
                    }
                }
            }
            Block::Other => {}
        }
    }
    close(block, &mut geometries, &mut outputs);
    let mut pages = Vec::new();
    for o in outputs {
        let geometry = geometries
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case(&o.geo))
            .map(|(_, g)| g.clone())
            .unwrap_or_default();
        let (geo_bins, geo_parts) = geometry.bins();
        for (quantity, diff) in &o.quantities {
            if is(quantity, "MCPL") {
                continue;
            }
            let mut values = geo_bins;
            let mut parts = geo_parts.clone();
            for (axis, bins) in o.shared_diff.iter().chain(diff) {
                values = values.saturating_mul(*bins);
                parts.push(format!("{axis} {bins}"));
            }
            let geometry_name = if geometry.kind.is_empty() {
                o.geo.clone()
            } else {
                format!("{} ({})", o.geo, geometry.kind)
            };
            pages.push(Page {
                output: o.file.clone(),
                quantity: quantity.clone(),
                geometry: geometry_name,
                binning: if parts.is_empty() {
                    "1 bin".to_string()
                } else {
                    parts.join(" × ")
                },
                values,
            });
        }
    }
    pages
}

/// The 10-column field `n` (0 is the keyword) of a fixed-format line.
fn field(line: &str, n: usize) -> String {
    line.chars().skip(10 * n).take(10).collect()
}

fn old_format(lines: &[&str]) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let keyword = field(lines[i], 0).trim().to_ascii_uppercase();
        let binned = ["MSH", "CYL", "GEOMAP"].contains(&keyword.as_str());
        let single = ["PLANE", "ZONE"].contains(&keyword.as_str());
        if !(binned || single) {
            i += 1;
            continue;
        }
        // MSH, CYL, GEOMAP and PLANE take a continuation line; ZONE is one line.
        let last = if keyword == "ZONE" {
            lines[i]
        } else {
            lines.get(i + 1).copied().unwrap_or_default()
        };
        // The quantity and the file name are the fields at columns 51-60 and 61-70.
        let output = field(last, 6).trim().to_string();
        let quantity = field(last, 5).trim().to_string();
        let (values, binning) = if binned {
            let bins: Vec<u64> = (1..=3)
                .map(|n| bin_count(&field(last, n)).unwrap_or(1))
                .collect();
            let parts: Vec<String> = bins.iter().map(u64::to_string).collect();
            (
                bins.iter().fold(1u64, |a, b| a.saturating_mul(*b)),
                parts.join(" × "),
            )
        } else if keyword == "ZONE" {
            // WHAT(1) and WHAT(2): the first and the last zone, one bin each.
            let zone = |n| {
                field(last, n)
                    .trim()
                    .parse::<f64>()
                    .map_or(0, |v| v.trunc() as i64)
            };
            let zones = (zone(2) - zone(1) + 1).max(1) as u64;
            (zones, format!("{zones} zones"))
        } else {
            (1, "1 bin".to_string())
        };
        pages.push(Page {
            output,
            quantity,
            geometry: keyword.clone(),
            binning,
            values,
        });
        i += if keyword == "ZONE" { 1 } else { 2 };
    }
    pages
}
