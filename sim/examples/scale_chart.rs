//! Draws the README's scale chart from the figures measured with the
//! `scale` example: events per CPU-second and memory per shard against the
//! fleet's size, one line per build measured.
//!
//! ```sh
//! cargo run -p reconnect-sim --example scale_chart -- docs/scale-figures.csv docs/scale.svg
//! ```
//!
//! The figures file is CSV with a header line: `build,shards,events,user_s,peak_kib`
//! (the build's name, the fleet's size, the events of the run, its user CPU
//! seconds and its peak resident memory in KiB, as `scale` and
//! `/usr/bin/time` print them).

use std::collections::BTreeMap;

use clap::Parser;
use plotters::prelude::*;

/// The command line: `scale_chart [FIGURES] [CHART]`.
#[derive(Parser)]
#[command(about = "Draws the scale chart (SVG) from the figures the scale example measured")]
struct Args {
    /// The figures, CSV: `build,shards,events,user_s,peak_kib`.
    #[arg(value_name = "FIGURES", default_value = "docs/scale-figures.csv")]
    input: String,
    /// The chart to write.
    #[arg(value_name = "CHART", default_value = "docs/scale.svg")]
    output: String,
}

/// One measured run.
struct Figure {
    shards: f64,
    events_per_s: f64,
    kib_per_shard: f64,
}

fn main() {
    let Args { input, output } = Args::parse();
    let text = match std::fs::read_to_string(&input) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{input}: {e}");
            std::process::exit(1);
        }
    };
    let mut builds: BTreeMap<String, Vec<Figure>> = BTreeMap::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed = match fields.as_slice() {
            [build, shards, events, user_s, peak_kib] => (|| {
                let shards: f64 = shards.parse().ok()?;
                let events: f64 = events.parse().ok()?;
                let user_s: f64 = user_s.parse().ok()?;
                let peak_kib: f64 = peak_kib.parse().ok()?;
                (shards > 0.0 && user_s > 0.0).then(|| {
                    (
                        (*build).to_owned(),
                        Figure {
                            shards,
                            events_per_s: events / user_s / 1e6,
                            kib_per_shard: peak_kib / shards,
                        },
                    )
                })
            })(),
            _ => None,
        };
        match parsed {
            Some((build, figure)) => builds.entry(build).or_default().push(figure),
            None if line.trim().is_empty() => {}
            None => {
                eprintln!(
                    "{input}:{}: not build,shards,events,user_s,peak_kib",
                    number + 1
                );
                std::process::exit(1);
            }
        }
    }
    if let Err(e) = draw(&builds, &output) {
        eprintln!("{output}: {e}");
        std::process::exit(1);
    }
}

/// A chart's area, caption, axis name and the figure it plots.
type Panel<'a, 'b> = (
    &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    &'static str,
    &'static str,
    fn(&Figure) -> f64,
);

fn draw(
    builds: &BTreeMap<String, Vec<Figure>>,
    output: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let all = || builds.values().flatten();
    let most = |f: fn(&Figure) -> f64| all().map(f).fold(0.0_f64, f64::max);
    let (low, high) = all().fold((f64::MAX, 1.0_f64), |(lo, hi), f| {
        (lo.min(f.shards), hi.max(f.shards))
    });
    let low = low.min(high) / 1.5;
    let high = high * 1.5;
    let root = SVGBackend::new(output, (1_000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let panels: [Panel<'_, '_>; 2] = [
        (&left, "Events per CPU-second", "million events / s", |f| {
            f.events_per_s
        }),
        (&right, "Peak memory per shard", "KiB per shard", |f| {
            f.kib_per_shard
        }),
    ];
    for (area, caption, y_desc, value) in panels {
        let top = most(value).max(1e-3) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((low..high).log_scale(), 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("shards (log scale)")
            .y_desc(y_desc)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()?;
        for (index, (build, figures)) in builds.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            let points: Vec<(f64, f64)> = figures.iter().map(|f| (f.shards, value(f))).collect();
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(build.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            chart.draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, colour.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
