//! A sweep's summary, and sweeps split into parts that run anywhere.
//!
//! A sweep runs one model through one scenario for every seed of `A..B` and
//! keeps, for each metric, the worst value and the seed that produced it
//! ([`Summary`]). A long sweep can be cut into `N` parts ([`Part`]): each
//! part runs its own contiguous slice of the seeds, on any machine, and
//! writes one [`Line`] of JSON per seed; [`merge`] checks that the lines
//! cover every seed of `A..B` exactly once, from the same scenario and
//! model, and gives the same [`Summary`] a single run gives.
//!
//! ```
//! use reconnect_sim::sweep::{Line, Part, Summary, merge};
//! use reconnect_sim::{Budget, Scenario, model, run_report};
//!
//! let mut scenario = Scenario::builtin("outage-30s").unwrap();
//! scenario.shards = 10;
//! let m = model("policy").unwrap();
//! let seeds = 1..4;
//! let run = |s| run_report(&scenario, &m, s, Budget::default()).unwrap();
//! let single = Summary::new(&seeds.clone().map(run).collect::<Vec<_>>());
//! let mut lines = Vec::new();
//! for k in 1..=2 {
//!     let part: Part = format!("{k}/2").parse().unwrap();
//!     for seed in part.seeds(seeds.clone()) {
//!         lines.push(Line::new(seeds.clone(), part, run(seed)));
//!     }
//! }
//! assert_eq!(merge(lines).unwrap(), single);
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::report::Report;

/// Part `index` of `count` (1-based, `K/N` on the command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// Which part, from 1 to `count`.
    pub index: u32,
    /// How many parts the sweep is cut into.
    pub count: u32,
}

impl Part {
    /// The whole sweep as one part.
    pub const WHOLE: Self = Self { index: 1, count: 1 };

    /// This part's contiguous slice of `seeds`: the parts of one range are
    /// disjoint, in order, and together cover it.
    #[must_use]
    pub fn seeds(self, seeds: Range<u64>) -> Range<u64> {
        let len = u128::from(seeds.end.saturating_sub(seeds.start));
        let at = |k: u32| {
            let offset = len * u128::from(k) / u128::from(self.count.max(1));
            seeds
                .start
                .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX))
        };
        at(self.index.saturating_sub(1))..at(self.index)
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Part {
    type Err = SweepError;

    fn from_str(text: &str) -> Result<Self, SweepError> {
        let bad = || {
            SweepError(format!(
                "a part looks like K/N with 1 <= K <= N, not {text:?}"
            ))
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

/// One seed's result in a part's output: a line of JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The first seed of the whole sweep.
    pub seeds_from: u64,
    /// The end of the whole sweep's seeds (excluded).
    pub seeds_to: u64,
    /// Which part ran this seed (1-based).
    pub part: u32,
    /// How many parts the sweep was cut into.
    pub parts: u32,
    /// The run's report (its `seed` is the seed).
    pub report: Report,
}

impl Line {
    /// The line for `report`, run as `part` of a sweep over `seeds`.
    #[must_use]
    pub const fn new(seeds: Range<u64>, part: Part, report: Report) -> Self {
        Self {
            seeds_from: seeds.start,
            seeds_to: seeds.end,
            part: part.index,
            parts: part.count,
            report,
        }
    }

    /// Reads the lines of a part's output; `source` names it in errors.
    /// Blank lines are skipped.
    ///
    /// # Errors
    ///
    /// A line that is not a [`Line`], with its number.
    pub fn parse_all(source: &str, text: &str) -> Result<Vec<Self>, SweepError> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| SweepError(format!("{source}:{}: not a sweep line: {e}", i + 1)))
            })
            .collect()
    }
}

/// The worst value of a metric over a sweep, and its seed. In JSON the
/// value is a number (`null` for a recovery that never came).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Worst {
    /// The metric's name (a [`Report`] field).
    pub metric: &'static str,
    /// Its worst value (infinite: a recovery that never came).
    pub value: f64,
    /// The lowest seed that produced it.
    pub seed: u64,
}

/// What a sweep found: the worst case of each metric with its seed.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// The model's name.
    pub model: String,
    /// How many seeds ran.
    pub seeds: usize,
    /// The worst case of each metric, in a fixed order.
    pub worst: Vec<Worst>,
    /// How many runs stormed.
    pub storms: usize,
}

impl Summary {
    /// The summary of a sweep's reports (of one scenario and model).
    #[must_use]
    pub fn new(reports: &[Report]) -> Self {
        Self {
            scenario: reports
                .first()
                .map(|r| r.scenario.clone())
                .unwrap_or_default(),
            model: reports.first().map(|r| r.model.clone()).unwrap_or_default(),
            seeds: reports.len(),
            worst: worst_cases(reports),
            storms: reports.iter().filter(|r| r.storm).count(),
        }
    }

    /// The summary as text for people.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} × {} seeds with {}\n",
            self.scenario, self.seeds, self.model
        );
        for w in &self.worst {
            out.push_str(&format!(
                "{:<32} {:>12}  (seed {})\n",
                w.metric, w.value, w.seed
            ));
        }
        out.push_str(&format!("storms: {} of {}\n", self.storms, self.seeds));
        out
    }
}

/// The worst value of each metric over `reports` and the lowest seed that
/// produced it (the order of `reports` does not matter).
#[must_use]
pub fn worst_cases(reports: &[Report]) -> Vec<Worst> {
    type Getter = fn(&Report) -> f64;
    let metrics: [(&'static str, Getter); 9] = [
        ("max_attempts_per_client_60s", |r| {
            f64::from(r.max_attempts_per_client_60s)
        }),
        ("peak_arrivals_1s", |r| f64::from(r.peak_arrivals_1s)),
        ("identify_violations", |r| r.identify_violations as f64),
        ("recovery_max_ms", |r| {
            r.recovery_max_ms.map_or(f64::INFINITY, |v| v as f64)
        }),
        ("unrecovered", |r| r.unrecovered as f64),
        ("sync_index", |r| r.sync_index),
        ("events_lost", |r| r.events_lost as f64),
        ("events_duplicated", |r| r.events_duplicated as f64),
        ("healthy_link_reconnects", |r| {
            r.healthy_link_reconnects as f64
        }),
    ];
    metrics
        .iter()
        .filter_map(|(metric, get)| {
            let worst = reports
                .iter()
                .max_by(|a, b| get(a).total_cmp(&get(b)).then(b.seed.cmp(&a.seed)))?;
            Some(Worst {
                metric,
                value: get(worst),
                seed: worst.seed,
            })
        })
        .collect()
}

/// Combines the lines of every part of one sweep into its [`Summary`],
/// the same as a single run over all the seeds gives.
///
/// # Errors
///
/// No lines; lines from different sweeps (scenario, model, seeds or part
/// count differ); a seed outside its part, or twice; a seed or a whole
/// part missing.
pub fn merge(lines: Vec<Line>) -> Result<Summary, SweepError> {
    let first = lines
        .first()
        .ok_or_else(|| SweepError("no sweep lines to merge".to_owned()))?;
    let (from, to, parts) = (first.seeds_from, first.seeds_to, first.parts);
    let (scenario, model) = (first.report.scenario.clone(), first.report.model.clone());
    let mut seen = BTreeSet::new();
    for l in &lines {
        let r = &l.report;
        if (l.seeds_from, l.seeds_to, l.parts) != (from, to, parts)
            || r.scenario != scenario
            || r.model != model
        {
            return Err(SweepError(format!(
                "the lines are from different sweeps: {scenario} with {model}, seeds {from}..{to} in {parts} parts, and {} with {}, seeds {}..{} in {} parts",
                r.scenario, r.model, l.seeds_from, l.seeds_to, l.parts
            )));
        }
        let part = Part {
            index: l.part,
            count: l.parts,
        };
        if l.part == 0 || l.part > l.parts || !part.seeds(from..to).contains(&r.seed) {
            return Err(SweepError(format!(
                "seed {} does not belong to part {part} of seeds {from}..{to}",
                r.seed
            )));
        }
        if !seen.insert(r.seed) {
            return Err(SweepError(format!(
                "seed {} appears twice (was a part merged twice?)",
                r.seed
            )));
        }
    }
    let expected = to.saturating_sub(from);
    if seen.len() as u64 != expected {
        let missing: Vec<String> = (1..=parts)
            .map(|index| Part {
                index,
                count: parts,
            })
            .filter(|p| {
                let s = p.seeds(from..to);
                !s.is_empty() && !seen.contains(&s.start)
            })
            .map(|p| {
                format!(
                    "{p} (seeds {}..{})",
                    p.seeds(from..to).start,
                    p.seeds(from..to).end
                )
            })
            .collect();
        return Err(SweepError(format!(
            "{} of {expected} seeds of {from}..{to} are missing; parts without any line: {}",
            expected - seen.len() as u64,
            if missing.is_empty() {
                "none (some part's output is cut short)".to_owned()
            } else {
                missing.join(", ")
            }
        )));
    }
    let mut reports: Vec<Report> = lines.into_iter().map(|l| l.report).collect();
    reports.sort_by_key(|r| r.seed);
    Ok(Summary::new(&reports))
}

/// Why a part could not be parsed or parts could not be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepError(String);

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SweepError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_disjoint_in_order_and_cover_the_seeds() {
        for (from, to) in [(1, 21), (0, 3), (5, 6), (1, 1_000_001)] {
            for n in 1..=7 {
                let mut next = from;
                for k in 1..=n {
                    let s = Part { index: k, count: n }.seeds(from..to);
                    assert_eq!(s.start, next, "{from}..{to} part {k}/{n}");
                    next = s.end;
                }
                assert_eq!(next, to);
            }
        }
    }

    #[test]
    fn a_part_parses_and_bad_parts_are_refused() {
        assert_eq!("2/3".parse::<Part>().unwrap(), Part { index: 2, count: 3 });
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", ""] {
            let e = bad.parse::<Part>().unwrap_err();
            assert!(e.to_string().contains("K/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn merging_nothing_is_an_error() {
        assert!(
            merge(Vec::new())
                .unwrap_err()
                .to_string()
                .contains("no sweep lines")
        );
    }

    #[test]
    fn a_bad_line_names_its_source_and_number() {
        let e = Line::parse_all("part-2.jsonl", "\n{\"nope\": 1}\n").unwrap_err();
        assert!(e.to_string().starts_with("part-2.jsonl:2: "), "{e}");
    }
}
