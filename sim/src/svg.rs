//! Charts of a comparison, as one SVG file (`reconnect-sim compare --svg`).
//!
//! Two charts, stacked:
//!
//! 1. **Connection attempts per second** over simulated time, from a
//!    minute before the first fault to a little after the last attempt
//!    (the fleet's start-up and the quiet end are left out), one line per model, on a logarithmic axis (a
//!    storming model makes thousands a second, a calm one a handful).
//!    Seconds with no attempt sit on the bottom edge. Grey vertical lines mark when each fault starts, the
//!    dashed one the heal. Long runs are binned (the most in any one second
//!    of each bin) so a file stays small.
//! 2. **Recovery time distribution**: for each model the fraction of shards
//!    that have a session again, against the time since the heal (an
//!    empirical CDF, logarithmic time axis). A curve that stops below 1
//!    belongs to a model that left shards without a session; the legend
//!    says how many.
//!
//! The charts are drawn with `plotters`' SVG backend without its `ttf`
//! feature: text is written as SVG `<text>` elements (font family
//! `sans-serif`) for the viewer to render, so no font files are needed to
//! make a chart. The output is a pure function of the runs: no time stamps.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Series;
use crate::report::Report;
use crate::scenario::Scenario;

/// Width of the SVG, px.
pub const WIDTH: u32 = 1_100;
/// Height of the SVG (both charts), px.
pub const HEIGHT: u32 = 1_300;
/// The most points one line of the attempts chart gets; longer runs are
/// binned.
pub const MAX_TIME_POINTS: usize = 2_000;
/// The most steps one recovery curve gets; larger fleets are sampled at
/// evenly spaced ranks.
pub const MAX_CDF_STEPS: usize = 1_000;
/// Width of the legend column on the right, px.
const LEGEND_WIDTH: u32 = 250;
/// Where the recovery axis starts, s: faster recoveries are drawn here.
const MIN_RECOVERY_S: f64 = 0.1;

/// Line colours (Tableau 10), in model order; the production default (the
/// first model) is drawn thicker, in [`DEFAULT_COLOUR`].
const COLOURS: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    // The lighter half of the same palette, for the peer models.
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// Why a chart could not be drawn or written.
#[derive(Debug)]
pub struct SvgError(pub String);

impl std::fmt::Display for SvgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SvgError {}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> SvgError {
    move |e| SvgError(format!("{what}: {e}"))
}

/// Draws the two charts for `runs` (one report and series per model, in
/// legend order) of `scenario`, and returns the SVG text.
///
/// # Errors
///
/// `runs` is empty, or plotters failed to draw.
pub fn render(scenario: &Scenario, runs: &[(Report, Series)]) -> Result<String, SvgError> {
    if runs.is_empty() {
        return Err(SvgError("no runs to draw".to_owned()));
    }
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err("background"))?;
        let seed = runs[0].0.seed;
        let title = format!(
            "{} — {} shards, seed {seed}",
            scenario.name, scenario.shards
        );
        let root = root
            .titled(&title, ("sans-serif", 24))
            .map_err(err("title"))?;
        let (charts, legend_area) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let (top, bottom) = charts.split_vertically(HEIGHT / 2 - 20);
        attempts_chart(&top, scenario, runs)?;
        recovery_chart(&bottom, scenario, runs)?;
        legend(&legend_area, runs)?;
        root.present().map_err(err("present"))?;
    }
    Ok(out)
}

/// [`render`], written to `path`.
///
/// # Errors
///
/// See [`render`]; or the file could not be written.
pub fn write(path: &Path, scenario: &Scenario, runs: &[(Report, Series)]) -> Result<(), SvgError> {
    let text = render(scenario, runs)?;
    std::fs::write(path, text).map_err(|e| SvgError(format!("{}: {e}", path.display())))
}

/// The production default's colour: near-black, which no other series
/// and no marker line uses.
pub const DEFAULT_COLOUR: RGBColor = RGBColor(17, 17, 17);

/// The colour of the `index`-th series: [`DEFAULT_COLOUR`] for the
/// production default, the palette otherwise.
#[must_use]
pub fn colour_for(index: usize, is_default: bool) -> RGBColor {
    if is_default {
        DEFAULT_COLOUR
    } else {
        COLOURS[index % COLOURS.len()]
    }
}

/// The `i`-th model of a comparison: the first is the production default.
fn colour(i: usize) -> RGBColor {
    colour_for(i, i == 0)
}

/// The colour of the lines of the `index`-th model, as SVG writes it
/// (`#1F77B4`; the first model, the production default, `#111111`);
/// colours repeat after twenty models.
#[must_use]
pub fn colour_hex(index: usize) -> String {
    let RGBColor(r, g, b) = colour(index);
    format!("#{r:02X}{g:02X}{b:02X}")
}

fn width(i: usize) -> u32 {
    if i == 0 { 3 } else { 2 }
}

/// The second the attempts chart starts at: a minute before the first
/// fault (the fleet's start-up before it is another story), or 0.
fn window_start(scenario: &Scenario) -> usize {
    scenario
        .faults
        .iter()
        .map(|f| f.at_ms)
        .min()
        .map_or(0, |at| (at.saturating_sub(60_000) / 1_000) as usize)
}

/// `attempts` binned into at most [`MAX_TIME_POINTS`] points `(start of
/// the bin in s, most attempts in one second of it)`, and the bin width.
fn binned(attempts: &[u32]) -> (Vec<(f64, u32)>, usize) {
    let bin = attempts.len().div_ceil(MAX_TIME_POINTS).max(1);
    let points = attempts
        .chunks(bin)
        .enumerate()
        .map(|(i, c)| ((i * bin) as f64, c.iter().copied().max().unwrap_or(0)))
        .collect();
    (points, bin)
}

fn attempts_chart(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    scenario: &Scenario,
    runs: &[(Report, Series)],
) -> Result<(), SvgError> {
    // To the last attempt of any model, with a margin, or the end of the run.
    let length = runs
        .iter()
        .map(|(_, s)| s.attempts_per_s.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let last = runs
        .iter()
        .filter_map(|(_, s)| s.attempts_per_s.iter().rposition(|&a| a > 0))
        .max()
        .unwrap_or(length);
    let seconds = (last + 1 + last / 20).clamp(1, length);
    let from = window_start(scenario).min(seconds - 1);
    let peak = runs
        .iter()
        .flat_map(|(_, s)| s.attempts_per_s.iter().skip(from).copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let floor = 0.8;
    let top = f64::from(peak) * 2.0;
    let bin = (seconds - from).div_ceil(MAX_TIME_POINTS).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Connection attempts per second (all shards)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(from as f64..seconds as f64, (floor..top).log_scale())
        .map_err(err("attempts chart"))?;
    let y_desc = if bin > 1 {
        format!("attempts per second (most in any second of each {bin} s)")
    } else {
        "attempts per second".to_owned()
    };
    chart
        .configure_mesh()
        .x_desc(if from > 0 {
            "simulated time (s), from a minute before the first fault"
        } else {
            "simulated time (s)"
        })
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err("attempts mesh"))?;

    let grey = RGBColor(170, 170, 170);
    let visible = |x: f64| (from as f64..=seconds as f64).contains(&x);
    for fault in scenario.faults.iter().take(50) {
        let x = fault.at_ms as f64 / 1_000.0;
        if !visible(x) {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                [(x, floor), (x, top)],
                grey.stroke_width(1),
            ))
            .map_err(err("fault line"))?;
    }
    let heal = scenario.heal_at_ms as f64 / 1_000.0;
    if visible(heal) {
        chart
            .draw_series(DashedLineSeries::new(
                [(heal, floor), (heal, top)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(err("heal line"))?;
    }

    for (i, (_, series)) in runs.iter().enumerate() {
        let c = colour(i);
        let end = seconds.min(series.attempts_per_s.len());
        let tail = series.attempts_per_s.get(from..end).unwrap_or_default();
        let (points, _) = binned(tail);
        chart
            .draw_series(LineSeries::new(
                points
                    .into_iter()
                    .map(|(x, v)| (x + from as f64, f64::from(v).max(floor))),
                c.stroke_width(width(i)),
            ))
            .map_err(err("attempts line"))?;
    }
    Ok(())
}

/// The steps of the empirical CDF of `recovery_ms` over `shards` shards:
/// `(seconds, fraction recovered)`, at most about 2 × [`MAX_CDF_STEPS`]
/// points, starting at the axis floor with 0.
fn cdf(recovery_ms: &[u64], shards: u32) -> Vec<(f64, f64)> {
    let n = f64::from(shards.max(1));
    let x = |ms: u64| (ms as f64 / 1_000.0).max(MIN_RECOVERY_S);
    let mut points = vec![(MIN_RECOVERY_S, 0.0)];
    let k = recovery_ms.len();
    if k == 0 {
        return points;
    }
    let ranks: Vec<usize> = if k <= MAX_CDF_STEPS {
        (0..k).collect()
    } else {
        (1..=MAX_CDF_STEPS)
            .map(|j| j * k / MAX_CDF_STEPS - 1)
            .collect()
    };
    let mut below = 0.0;
    for r in ranks {
        let t = x(recovery_ms[r]);
        points.push((t, below));
        below = (r + 1) as f64 / n;
        points.push((t, below));
    }
    points
}

fn recovery_chart(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    scenario: &Scenario,
    runs: &[(Report, Series)],
) -> Result<(), SvgError> {
    let slowest = runs
        .iter()
        .filter_map(|(_, s)| s.recovery_ms.last())
        .max()
        .copied()
        .unwrap_or(0);
    let right = (slowest as f64 / 1_000.0 * 1.5).max(MIN_RECOVERY_S * 10.0);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Recovery: fraction of shards with a session again",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((MIN_RECOVERY_S..right).log_scale(), 0f64..1.05)
        .map_err(err("recovery chart"))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "time since the heal at {:.0} s of the fault schedule (s, log scale; dashed: the scenario's recovery bound, dotted: the gateway's lower bound for the first model)",
            scenario.heal_at_ms as f64 / 1_000.0
        ))
        .y_desc("fraction of shards")
        .x_label_formatter(&|v| {
            if *v < 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        })
        .draw()
        .map_err(err("recovery mesh"))?;
    for (i, (report, series)) in runs.iter().enumerate() {
        let c = colour(i);
        let mut points = cdf(&series.recovery_ms, report.shards);
        if let Some(&(_, last)) = points.last() {
            points.push((right, last));
        }
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(width(i))))
            .map_err(err("recovery line"))?;
    }
    // The recovery bounds, in greys no model's line uses.
    let bound = scenario.recovery_bound_ms as f64 / 1_000.0;
    if (MIN_RECOVERY_S..right).contains(&bound) {
        chart
            .draw_series(DashedLineSeries::new(
                [(bound, 0.0), (bound, 1.05)],
                8,
                5,
                BOUND_COLOUR.stroke_width(2),
            ))
            .map_err(err("bound line"))?;
    }
    if let Some((report, _)) = runs.first() {
        let lower = report.recovery_lower_bound_ms as f64 / 1_000.0;
        if (MIN_RECOVERY_S..right).contains(&lower) {
            chart
                .draw_series(DashedLineSeries::new(
                    [(lower, 0.0), (lower, 1.05)],
                    2,
                    4,
                    BOUND_COLOUR.stroke_width(2),
                ))
                .map_err(err("lower bound line"))?;
        }
    }
    Ok(())
}

/// The colour of the recovery bound lines.
const BOUND_COLOUR: RGBColor = RGBColor(110, 110, 110);

/// The legend column: each model's colour and name, and how many of its
/// shards never recovered.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    runs: &[(Report, Series)],
) -> Result<(), SvgError> {
    let style = ("sans-serif", 15).into_font().color(&BLACK);
    let note = ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90));
    area.draw(&Text::new("models", (10, 80), ("sans-serif", 17)))
        .map_err(err("legend"))?;
    let mut y = 112;
    for (i, (report, series)) in runs.iter().enumerate() {
        let c = colour(i);
        area.draw(&PathElement::new(
            [(10, y), (40, y)],
            c.stroke_width(width(i) + 1),
        ))
        .map_err(err("legend"))?;
        area.draw(&Text::new(report.model.clone(), (48, y - 8), style.clone()))
            .map_err(err("legend"))?;
        if series.unrecovered > 0 {
            y += 18;
            area.draw(&Text::new(
                format!("{} shards never recovered", series.unrecovered),
                (48, y - 8),
                note.clone(),
            ))
            .map_err(err("legend"))?;
        }
        y += 26;
    }
    let mut y = y + 20;
    for line in [
        "Top: grey lines, faults start;",
        "dashed line, the heal.",
        "Bottom: a curve below 1 at",
        "the right edge left shards",
        "without a session.",
    ] {
        area.draw(&Text::new(line, (10, y), note.clone()))
            .map_err(err("legend"))?;
        y += 16;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_are_binned_keeping_peaks() {
        let (points, bin) = binned(&[1, 2, 3]);
        assert_eq!(bin, 1);
        assert_eq!(points, [(0.0, 1), (1.0, 2), (2.0, 3)]);
        let mut long = vec![0u32; 10_000];
        long[4_321] = 99;
        let (points, bin) = binned(&long);
        assert_eq!(bin, 5);
        assert_eq!(points.len(), 2_000);
        assert_eq!(points.iter().map(|p| p.1).max(), Some(99));
        assert_eq!(points[864], (4_320.0, 99));
    }

    #[test]
    fn cdf_steps_up_to_the_recovered_fraction() {
        let points = cdf(&[0, 1_000, 2_000], 4);
        assert_eq!(points.first(), Some(&(MIN_RECOVERY_S, 0.0)));
        assert_eq!(points.last(), Some(&(2.0, 0.75)));
        assert!(
            points
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        let many: Vec<u64> = (0..100_000).collect();
        let points = cdf(&many, 100_000);
        assert_eq!(points.len(), 1 + 2 * MAX_CDF_STEPS);
        assert_eq!(points.last().map(|p| p.1), Some(1.0));
        assert_eq!(cdf(&[], 5), [(MIN_RECOVERY_S, 0.0)]);
    }

    #[test]
    fn no_runs_is_an_error() {
        let sc = Scenario::builtin("outage-30s").unwrap();
        assert!(render(&sc, &[]).is_err());
    }
}
