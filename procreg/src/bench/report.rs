//! What `procreg bench --json FILE` and `--plot FILE.svg` write: every
//! phase and summary figure as one JSON document, and a picture of the wake
//! latency distributions and of each phase's throughput beside the engine's
//! no-op baseline.

use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;
use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::common::{ms, quantile, CliError, CliResult, Context, Load};

/// One row of the bench table.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    name: String,
    ops: usize,
    secs: f64,
    /// Throughput; absent for latency-only rows (wakes, sequential samples).
    per_second: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
}

/// The latencies of one wake path, for the distribution plot.
#[derive(Debug, Clone, Serialize)]
pub struct WakeSeries {
    name: String,
    latencies_ms: Vec<f64>,
}

/// Everything the table printed, kept for the files.
#[derive(Debug, Default)]
pub struct Report {
    phases: Vec<Phase>,
    wakes: Vec<WakeSeries>,
}

impl Report {
    /// Records a throughput phase.
    pub fn load(&mut self, name: &str, ops: usize, elapsed: Duration, latencies: &[Duration]) {
        let secs = elapsed.as_secs_f64();
        self.phases.push(Phase {
            name: name.to_owned(),
            ops,
            secs,
            per_second: (secs > 0.0).then(|| ops as f64 / secs),
            p50_ms: ms(quantile(latencies, 0.5)),
            p99_ms: ms(quantile(latencies, 0.99)),
        });
    }

    /// Records a latency-only row; wake rows also feed the plot.
    pub fn latencies(&mut self, name: &str, samples: &[Duration], elapsed: Duration) {
        self.phases.push(Phase {
            name: name.to_owned(),
            ops: samples.len(),
            secs: elapsed.as_secs_f64(),
            per_second: None,
            p50_ms: ms(quantile(samples, 0.5)),
            p99_ms: ms(quantile(samples, 0.99)),
        });
        if name.contains("via") {
            let mut latencies_ms: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
            latencies_ms.sort_by(f64::total_cmp);
            self.wakes.push(WakeSeries {
                name: name.to_owned(),
                latencies_ms,
            });
        }
    }

    /// Writes the summary figures and every row as one JSON document.
    pub fn write_json(&self, path: &Path, summary: &[(String, String)]) -> CliResult<()> {
        let mut figures = Map::new();
        for (key, value) in summary {
            let value = value
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map_or_else(|| Value::String(value.clone()), Value::Number);
            figures.insert(key.clone(), value);
        }
        let document = serde_json::json!({
            "summary": figures,
            "phases": self.phases,
            "wakes": self.wakes,
        });
        let text = serde_json::to_string_pretty(&document).context("encoding the report")?;
        std::fs::write(path, text).context(format!("writing {}", path.display()))
    }

    /// Draws the wake latency distributions (top) and each phase's ops/s
    /// (bottom, baseline rows in a second colour) into an SVG.
    pub fn plot(&self, path: &Path) -> CliResult<()> {
        let root = SVGBackend::new(path, (1100, 900)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
            root.fill(&WHITE)?;
            let (top, bottom) = root.split_vertically(420);
            self.plot_wakes(&top)?;
            self.plot_throughput(&bottom)?;
            root.present()?;
            Ok(())
        })();
        drawn.map_err(|err| CliError::new(format!("drawing {}: {err}", path.display())))
    }

    fn plot_wakes(
        &self,
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let longest = self
            .wakes
            .iter()
            .filter_map(|series| series.latencies_ms.last().copied())
            .fold(10.0_f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(
                "Wake latency: write returned -> waiter resumed (ms, log)",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d((0.1_f64..longest * 1.2).log_scale(), 0.0_f64..1.0)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms)")
            .y_desc("share of waiters")
            .draw()?;
        for (index, series) in self.wakes.iter().enumerate() {
            let colour = Palette99::pick(index).to_rgba();
            let count = series.latencies_ms.len().max(1) as f64;
            let points = series
                .latencies_ms
                .iter()
                .enumerate()
                .map(|(rank, &latency)| (latency.max(0.1), (rank + 1) as f64 / count));
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(series.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        Ok(())
    }

    fn plot_throughput(
        &self,
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let bars: Vec<(&str, f64)> = self
            .phases
            .iter()
            .filter_map(|phase| phase.per_second.map(|rate| (phase.name.as_str(), rate)))
            .collect();
        let highest = bars.iter().map(|(_, rate)| *rate).fold(1.0_f64, f64::max);
        let mut chart = ChartBuilder::on(area)
            .caption(
                "Throughput per phase (ops/s); engine no-op baseline in orange",
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(10)
            .build_cartesian_2d(0.0_f64..highest * 1.15, 0.0_f64..bars.len().max(1) as f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("ops/s")
            .draw()?;
        for (row, (name, rate)) in bars.iter().enumerate() {
            let y = (bars.len() - row) as f64;
            let colour = if name.contains("noop") || name.contains("EngineBaseline") {
                RGBColor(230, 140, 20)
            } else {
                RGBColor(60, 110, 200)
            };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.85), (*rate, y - 0.15)],
                colour.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{name}  {rate:.0}"),
                (highest * 0.01, y - 0.35),
                ("sans-serif", 13).into_font().color(&BLACK),
            )))?;
        }
        Ok(())
    }
}

/// The result table, printed a row at a time as phases end.
pub(super) struct Table {
    pub(super) report: Report,
}

impl Table {
    pub(super) fn new() -> Self {
        println!(
            "{:<42} {:>7} {:>8} {:>9} {:>9} {:>9}",
            "phase", "ops", "secs", "ops/s", "p50 ms", "p99 ms"
        );
        println!("{}", "-".repeat(89));
        Self {
            report: Report::default(),
        }
    }

    pub(super) fn load(&mut self, name: &str, load: &Load) {
        self.report
            .load(name, load.ops(), load.elapsed, &load.latencies);
        println!(
            "{:<42} {:>7} {:>8.2} {:>9.0} {:>9.2} {:>9.2}",
            name,
            load.ops(),
            load.elapsed.as_secs_f64(),
            load.per_second(),
            ms(quantile(&load.latencies, 0.5)),
            ms(quantile(&load.latencies, 0.99)),
        );
    }

    pub(super) fn latencies(&mut self, name: &str, samples: &[Duration], elapsed: Duration) {
        self.report.latencies(name, samples, elapsed);
        println!(
            "{:<42} {:>7} {:>8.2} {:>9} {:>9.2} {:>9.2}",
            name,
            samples.len(),
            elapsed.as_secs_f64(),
            "-",
            ms(quantile(samples, 0.5)),
            ms(quantile(samples, 0.99)),
        );
    }
}

/// The final `key=value` line.
#[derive(Default)]
pub(super) struct Summary {
    pub(super) pairs: Vec<(String, String)>,
}

impl Summary {
    pub(super) fn push(&mut self, key: &str, value: impl ToString) {
        self.pairs.push((key.to_owned(), value.to_string()));
    }

    pub(super) fn line(&self) -> String {
        self.pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `10`, `1k`, `50k`: how a size reads in a summary key.
pub(super) fn size(n: usize) -> String {
    if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}
