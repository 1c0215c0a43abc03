//! `compare --svg`: the chart file for a small fleet is well-formed SVG
//! with one line per model in each chart and every model named.

use reconnect_sim::{Budget, Scenario, compare_with_series, model, model_names, svg};

#[test]
fn compare_svg_has_a_line_per_model_in_each_chart() {
    let mut scenario = Scenario::builtin("outage-30s").unwrap();
    scenario.shards = 20;
    let names = model_names();
    let models: Vec<_> = names.iter().map(|n| model(n).unwrap()).collect();
    let runs: Vec<_> = compare_with_series(&scenario, &models, 3, Budget::default(), &|_| {})
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(runs.len(), names.len());

    // The series agree with the reports they came with.
    for (report, series) in &runs {
        let attempts: u64 = series.attempts_per_s.iter().map(|&a| u64::from(a)).sum();
        assert_eq!(attempts, report.attempts, "{}", report.model);
        assert_eq!(series.unrecovered, report.unrecovered, "{}", report.model);
        assert_eq!(
            series.recovery_ms.len() as u64 + series.unrecovered,
            u64::from(scenario.shards)
        );
        if series.unrecovered == 0 {
            assert_eq!(
                series.recovery_ms.last().copied().unwrap_or(0),
                report.recovery_max_ms.unwrap()
            );
        } else {
            assert_eq!(report.recovery_max_ms, None, "{}", report.model);
        }
        assert!(series.recovery_ms.is_sorted());
    }

    let dir = std::env::temp_dir().join(format!("reconnect-sim-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outage.svg");
    svg::write(&path, &scenario, &runs).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(text.starts_with("<svg "), "{}", &text[..80.min(text.len())]);
    assert!(text.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches("<svg").count(), 1);
    assert_eq!(
        text.matches("<text").count(),
        text.matches("</text>").count()
    );
    assert!(
        !text.contains("NaN") && !text.contains("inf"),
        "a bad coordinate"
    );

    for (i, name) in names.iter().enumerate() {
        // Each model's colour: its line in the attempts chart, its curve in
        // the recovery chart, and its swatch in the legend.
        let stroke = format!("stroke=\"{}\"", svg::colour_hex(i));
        let lines = text
            .lines()
            .filter(|l| l.starts_with("<polyline") && l.contains(&stroke))
            .count();
        assert_eq!(lines, 3, "{name} ({stroke})");
        assert!(
            text.contains(&format!("\n{name}\n</text>")),
            "{name} is not named"
        );
    }
    assert!(text.contains("Connection attempts per second"));
    assert!(text.contains("Recovery: fraction of shards"));
}

#[test]
fn the_same_runs_draw_the_same_file() {
    let mut scenario = Scenario::builtin("outage-30s").unwrap();
    scenario.shards = 10;
    let models = [model("policy").unwrap(), model("naive").unwrap()];
    let run = || -> Vec<_> {
        compare_with_series(&scenario, &models, 5, Budget::default(), &|_| {})
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(
        svg::render(&scenario, &a).unwrap(),
        svg::render(&scenario, &b).unwrap()
    );
}
