//! The frontier: every model through fleet-wide outages of several lengths,
//! refused and black-holed, each after the model's full start-up.
//!
//! This is the comparison a user choosing a reconnect strategy wants: for
//! each model and outage length, how long after the heal until half and
//! 99 % of the shards have a session again, and how many connection
//! attempts each shard spent getting there. Both axes count: a model that
//! recovers at once by dialling in lockstep and one that waits politely for
//! a minute are both visible. (`compare` keeps its role for one scenario
//! and all its metrics.)

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::{Budget, ModelSpec, RunError};
use crate::report::render;
use crate::scenario::{DownMode, Fault, FaultKind, Scenario, Scope};
use crate::svg::SvgError;

/// The outage lengths, seconds.
pub const OUTAGE_LENGTHS_S: [u64; 7] = [5, 15, 30, 45, 90, 180, 600];
/// How the link is down, in display order.
pub const MODES: [DownMode; 2] = [DownMode::Refuse, DownMode::Blackhole];
/// How long after the heal a run goes on (and every shard must be back).
pub const AFTER_HEAL_MS: u64 = 900_000;
/// Where the outage begins, ms after the last shard's READY.
const FAULT_AT_MS: u64 = 10_000;

/// The mode's name in tables.
#[must_use]
pub const fn mode_name(mode: DownMode) -> &'static str {
    match mode {
        DownMode::Refuse => "refused",
        DownMode::Blackhole => "black-holed",
    }
}

/// The scenario of one cell: `shards` shards, every link down in `mode` for
/// `outage_s`, once every shard has a session.
#[must_use]
pub fn scenario(shards: u32, outage_s: u64, mode: DownMode) -> Scenario {
    let outage_ms = outage_s.saturating_mul(1_000);
    let heal = FAULT_AT_MS + outage_ms;
    Scenario {
        name: format!("outage-{outage_s}s-{}", mode_name(mode)),
        description: format!(
            "every link {} for {outage_s} s after a full start-up",
            match mode {
                DownMode::Refuse => "is reset and refuses connections",
                DownMode::Blackhole => "drops everything silently",
            }
        ),
        shards,
        heal_at_ms: heal,
        recovery_bound_ms: AFTER_HEAL_MS,
        duration_ms: heal + AFTER_HEAL_MS,
        faults: vec![Fault {
            at_ms: FAULT_AT_MS,
            duration_ms: outage_ms,
            scope: Scope::All,
            kind: FaultKind::Outage { mode },
        }],
        ..Scenario::default()
    }
}

/// One model through one outage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The model.
    pub model: String,
    /// `refused` or `black-holed`.
    pub mode: String,
    /// The outage's length, s.
    pub outage_s: u64,
    /// p50 of the time from the heal to a session, ms; `null`: never.
    pub recovery_p50_ms: Option<u64>,
    /// p99, ms; `null`: never.
    pub recovery_p99_ms: Option<u64>,
    /// Connection attempts per judged shard from the fault on.
    pub attempts_per_shard: f64,
    /// Shards without a session at the end.
    pub unrecovered: u64,
    /// The run's verdict (`ok`, or STORM/SLOW/HERD joined by `+`).
    pub verdict: String,
}

/// Runs every model through every outage length and mode, in parallel,
/// calling `progress` with the number of runs finished after each one.
/// The result holds one entry per model, mode and length, in that order.
#[must_use]
pub fn run(
    models: &[ModelSpec],
    shards: u32,
    seed: u64,
    budget: Budget,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<Result<Cell, RunError>> {
    let jobs: Vec<(&ModelSpec, DownMode, u64)> = models
        .iter()
        .flat_map(|m| {
            MODES
                .iter()
                .flat_map(move |&mode| OUTAGE_LENGTHS_S.iter().map(move |&s| (m, mode, s)))
        })
        .collect();
    let done = std::sync::atomic::AtomicUsize::new(0);
    crate::parallel_map(&jobs, |&(m, mode, outage_s)| {
        let sc = scenario(shards, outage_s, mode);
        let r = crate::run_report(&sc, m, seed, budget).map(|r| Cell {
            model: r.model.clone(),
            mode: mode_name(mode).to_owned(),
            outage_s,
            recovery_p50_ms: r.recovery_p50_ms,
            recovery_p99_ms: r.recovery_p99_ms,
            attempts_per_shard: (r.attempts as f64 / r.judged_shards.max(1) as f64 * 100.0).round()
                / 100.0,
            unrecovered: r.unrecovered,
            verdict: r.verdict,
        });
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        r
    })
}

/// The frontier as tables for people: for each mode, p50 and p99 recovery
/// after the heal (s) and attempts per shard, one row per model and one
/// column per outage length. `default_model` is marked with `*`.
#[must_use]
pub fn tables(cells: &[Cell], default_model: &str) -> String {
    let mut models: Vec<&str> = Vec::new();
    for c in cells {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
    }
    let mut header = vec!["model".to_owned()];
    header.extend(OUTAGE_LENGTHS_S.iter().map(|s| format!("{s} s")));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let secs =
        |v: Option<u64>| v.map_or_else(|| "inf".to_owned(), |ms| format!("{:.1}", ms as f64 / 1e3));
    type Pick = fn(&Cell, &dyn Fn(Option<u64>) -> String) -> String;
    let picks: [(&str, Pick); 3] = [
        (
            "p50 recovery after the heal, s",
            |c, f| f(c.recovery_p50_ms),
        ),
        (
            "p99 recovery after the heal, s",
            |c, f| f(c.recovery_p99_ms),
        ),
        ("connection attempts per shard", |c, _| {
            format!("{:.1}", c.attempts_per_shard)
        }),
    ];
    let mut out = String::new();
    for mode in MODES {
        let mode = mode_name(mode);
        for (what, pick) in &picks {
            out.push_str(&format!("\n{what} — every link {mode}\n"));
            let rows: Vec<Vec<String>> = models
                .iter()
                .map(|&m| {
                    let mut row = vec![if m == default_model {
                        format!("{m}*")
                    } else {
                        m.to_owned()
                    }];
                    row.extend(OUTAGE_LENGTHS_S.iter().map(|&s| {
                        cells
                            .iter()
                            .find(|c| c.model == m && c.mode == mode && c.outage_s == s)
                            .map_or_else(|| "error".to_owned(), |c| pick(c, &secs))
                    }));
                    row
                })
                .collect();
            out.push_str(&render(&header, &rows));
        }
    }
    out
}

/// Width of the frontier chart, px.
pub const CHART_WIDTH: u32 = 1_100;
/// Height of the frontier chart, px.
pub const CHART_HEIGHT: u32 = 1_000;
/// Where a recovery that never came is drawn, s (the chart's top).
const NEVER_S: f64 = 2_000.0;

/// Draws p99 recovery after the heal against the outage length, one line
/// per model and one panel per mode (log-log; a recovery that never came
/// sits on the top edge), and returns the SVG text.
///
/// # Errors
///
/// No cells, or plotters failed to draw.
pub fn chart(cells: &[Cell], default_model: &str) -> Result<String, SvgError> {
    let err =
        |what: &'static str| move |e: Box<dyn std::error::Error>| SvgError(format!("{what}: {e}"));
    if cells.is_empty() {
        return Err(SvgError("no cells to draw".to_owned()));
    }
    let mut models: Vec<&str> = Vec::new();
    for c in cells {
        if !models.contains(&c.model.as_str()) {
            models.push(&c.model);
        }
    }
    let mut out = String::new();
    {
        let root =
            SVGBackend::with_string(&mut out, (CHART_WIDTH, CHART_HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| SvgError(format!("background: {e}")))?;
        let root = root
            .titled(
                "Frontier: p99 recovery after the heal against outage length",
                ("sans-serif", 22),
            )
            .map_err(|e| SvgError(format!("title: {e}")))?;
        let (charts, legend) = root.split_horizontally(CHART_WIDTH - 260);
        let panels = charts.split_evenly((2, 1));
        for (panel, mode) in panels.iter().zip(MODES) {
            let mode = mode_name(mode);
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("every link {mode}"), ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d((4.0f64..700.0).log_scale(), (0.1f64..NEVER_S).log_scale())
                .map_err(|e| err("panel")(Box::new(e)))?;
            chart
                .configure_mesh()
                .x_desc("outage length, s (log)")
                .y_desc("p99 recovery, s (log; top: never)")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| {
                    if *v < 1.0 {
                        format!("{v:.1}")
                    } else {
                        format!("{v:.0}")
                    }
                })
                .draw()
                .map_err(|e| err("mesh")(Box::new(e)))?;
            for (i, m) in models.iter().enumerate() {
                let colour = crate::svg::colour_for(i, *m == default_model);
                let points: Vec<(f64, f64)> = OUTAGE_LENGTHS_S
                    .iter()
                    .filter_map(|&s| {
                        let c = cells
                            .iter()
                            .find(|c| c.model == *m && c.mode == mode && c.outage_s == s)?;
                        let y = c
                            .recovery_p99_ms
                            .map_or(NEVER_S, |ms| (ms as f64 / 1e3).clamp(0.1, NEVER_S));
                        Some((s as f64, y))
                    })
                    .collect();
                let width = if *m == default_model { 4 } else { 2 };
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(width)))
                    .map_err(|e| err("line")(Box::new(e)))?;
                chart
                    .draw_series(
                        points
                            .into_iter()
                            .map(|p| Circle::new(p, 3, colour.filled())),
                    )
                    .map_err(|e| err("points")(Box::new(e)))?;
            }
        }
        for (i, m) in models.iter().enumerate() {
            let y = 40 + 22 * i32::try_from(i).unwrap_or(0);
            let colour = crate::svg::colour_for(i, *m == default_model);
            legend
                .draw(&Rectangle::new([(10, y), (30, y + 12)], colour.filled()))
                .map_err(|e| err("legend")(Box::new(e)))?;
            let name = if *m == default_model {
                format!("{m} (default)")
            } else {
                (*m).to_owned()
            };
            legend
                .draw(&Text::new(name, (38, y), ("sans-serif", 14)))
                .map_err(|e| err("legend")(Box::new(e)))?;
        }
        root.present()
            .map_err(|e| SvgError(format!("present: {e}")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_scenario_is_valid_and_feasible() {
        for mode in MODES {
            for s in OUTAGE_LENGTHS_S {
                let sc = scenario(1_000, s, mode);
                sc.validate().unwrap();
                assert_eq!(crate::infeasibility(&sc), None, "{}", sc.name);
                assert!(sc.faults_after_startup);
            }
        }
    }

    #[test]
    fn a_small_frontier_has_a_cell_per_model_mode_and_length_and_draws() {
        let models = [
            crate::model("policy").unwrap(),
            crate::model("twilight").unwrap(),
        ];
        let cells: Vec<Cell> = run(&models, 8, 1, Budget::default(), &|_| {})
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(cells.len(), 2 * MODES.len() * OUTAGE_LENGTHS_S.len());
        for c in &cells {
            assert_eq!(c.unrecovered, 0, "{c:?}");
            assert!(c.attempts_per_shard >= 1.0, "{c:?}");
        }
        let text = tables(&cells, "policy");
        assert!(text.contains("policy*") && text.contains("twilight"));
        let svg = chart(&cells, "policy").unwrap();
        assert!(svg.starts_with("<svg ") && svg.contains("policy (default)"));
    }
}
