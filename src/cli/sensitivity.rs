//! `sensitivity`: how much each layer alone suffers from pruning and from
//! weight sharing, as a table, JSON and an SVG chart.

use std::io::Write;
use std::path::PathBuf;

use plotters::prelude::*;
use serde::Serialize;

use super::load;
use super::options::{sensitivity_cache_dir, LadderArgs};
use super::output::write_atomic;
use super::progress::Bars;
use super::ModelArgs;
use crate::error::InternalError;
use crate::pipeline::calib_images::CalibrationImages;
use crate::pipeline::calibration::CalibrationOptions;
use crate::pipeline::defaults;
use crate::pipeline::params::{Bits, Sparsity};
use crate::pipeline::quantize::KMeans;
use crate::pipeline::sensitivity::{Damage, Sensitivity, SensitivityOptions};
use crate::pipeline::sensitivity_cache::measure_or_reuse;

/// Arguments of `sensitivity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder of calibration images (JPEG/PNG, labels not needed).
    #[arg(long, value_name = "DIR")]
    calib: PathBuf,
    /// Number of calibration images, picked deterministically from DIR;
    /// every trial runs the network on all of them.
    #[arg(long, value_name = "N", default_value_t = defaults::SENSITIVITY_CALIB_COUNT)]
    calib_count: usize,
    #[command(flatten)]
    ladder: LadderArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw the damage against the level of every layer as an SVG chart.
    #[arg(long, value_name = "OUT.svg")]
    chart: Option<PathBuf>,
    /// Measure again instead of reusing a measurement of the same model,
    /// images and ladder cached in $XDG_CACHE_HOME/sqz (or ~/.cache/sqz);
    /// nothing is stored either.
    #[arg(long)]
    no_cache: bool,
}

/// Run `sensitivity`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let ladder = args.ladder.ladder()?;
    let model = load::load(&args.model)?;
    let images = CalibrationImages {
        dir: args.calib.clone(),
        count: args.calib_count,
    };
    let batch = images.load(&model, images.count)?;
    let options = SensitivityOptions {
        ladder,
        kmeans: KMeans::default(),
        half: false,
        calibration: CalibrationOptions::default(),
    };
    let mut bars = Bars::default();
    let cache = sensitivity_cache_dir(args.no_cache);
    let sensitivity = measure_or_reuse(&model, &batch, &options, cache.as_deref(), &mut bars)?;
    drop(bars);
    if let Some(path) = &args.chart {
        write_atomic(path, chart_svg(&sensitivity)?.as_bytes())?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string(&SensitivityJson::new(&sensitivity))?
        )?;
    } else {
        print_table(&mut stdout, &sensitivity)?;
    }
    Ok(())
}

/// The measurements as `--json` prints them.
#[derive(Serialize)]
struct SensitivityJson<'a> {
    images: usize,
    metric: &'static str,
    sparsity_levels: &'a [Sparsity],
    bit_levels: &'a [Bits],
    layers: Vec<LayerJson<'a>>,
}

/// One layer's damage at every level.
#[derive(Serialize)]
struct LayerJson<'a> {
    name: &'a str,
    weights: usize,
    prune: Vec<PruneTrial<'a>>,
    quantize: Vec<QuantizeTrial<'a>>,
}

#[derive(Serialize)]
struct PruneTrial<'a> {
    sparsity: Sparsity,
    damage: &'a Damage,
}

#[derive(Serialize)]
struct QuantizeTrial<'a> {
    bits: Bits,
    damage: &'a Damage,
}

impl<'a> SensitivityJson<'a> {
    fn new(s: &'a Sensitivity) -> Self {
        let layers = s
            .layers
            .iter()
            .map(|l| LayerJson {
                name: &l.name,
                weights: l.weights,
                prune: s
                    .ladder
                    .sparsities
                    .iter()
                    .zip(&l.prune)
                    .map(|(&sparsity, damage)| PruneTrial { sparsity, damage })
                    .collect(),
                quantize: s
                    .ladder
                    .bits
                    .iter()
                    .zip(&l.quantize)
                    .map(|(&bits, damage)| QuantizeTrial { bits, damage })
                    .collect(),
            })
            .collect();
        SensitivityJson {
            images: s.images,
            metric: "mean KL divergence (nats) of the class distribution vs the original; top-1 agreement",
            sparsity_levels: &s.ladder.sparsities,
            bit_levels: &s.ladder.bits,
            layers,
        }
    }
}

/// One row per layer: the KL divergence at every sparsity, then at every
/// bit width.
fn print_table(out: &mut impl Write, s: &Sensitivity) -> std::io::Result<()> {
    writeln!(out, "mean KL divergence vs the original on {} calibration images (prune alone: s=sparsity; share alone: b=bits)", s.images)?;
    write!(out, "{:<28} {:>8}", "layer", "weights")?;
    for sp in &s.ladder.sparsities {
        write!(out, " {:>8}", format!("s{sp}"))?;
    }
    for b in &s.ladder.bits {
        write!(out, " {:>8}", format!("b{b}"))?;
    }
    writeln!(out)?;
    for l in &s.layers {
        write!(out, "{:<28} {:>8}", l.name, l.weights)?;
        for d in l.prune.iter().chain(&l.quantize) {
            write!(out, " {:>8.4}", d.kl)?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Smallest KL divergence drawn: the chart's y axis is logarithmic.
const KL_FLOOR: f64 = 1e-5;

/// Two panels, damage (log KL) against sparsity and against bits, one line
/// per layer.
fn chart_svg(s: &Sensitivity) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1400, 700)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let panels = root.split_evenly((1, 2));
        let top = s
            .layers
            .iter()
            .flat_map(|l| l.prune.iter().chain(&l.quantize))
            .map(|d| d.kl)
            .fold(KL_FLOOR * 10.0, f64::max)
            * 2.0;
        let prune: Vec<(Vec<f64>, Vec<f64>)> = s
            .layers
            .iter()
            .map(|l| {
                (
                    s.ladder.sparsities.iter().map(|s| s.get()).collect(),
                    l.prune.iter().map(|d| d.kl).collect(),
                )
            })
            .collect();
        let quantize: Vec<(Vec<f64>, Vec<f64>)> = s
            .layers
            .iter()
            .map(|l| {
                (
                    s.ladder.bits.iter().map(|b| f64::from(b.get())).collect(),
                    l.quantize.iter().map(|d| d.kl).collect(),
                )
            })
            .collect();
        let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
        draw_panel(
            &panels[0],
            "pruning one layer",
            "sparsity",
            &prune,
            &names,
            top,
        )?;
        draw_panel(
            &panels[1],
            "weight sharing in one layer",
            "bits",
            &quantize,
            &names,
            top,
        )?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// One panel: a line per layer through `(x, kl)` points.
fn draw_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    series: &[(Vec<f64>, Vec<f64>)],
    names: &[&str],
    top: f64,
) -> anyhow::Result<()> {
    let xs = series.iter().flat_map(|(x, _)| x.iter().copied());
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let pad = ((hi - lo) * 0.05).max(0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo - pad)..(hi + pad), (KL_FLOOR..top).log_scale())
        .map_err(chart_error)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("mean KL divergence (nats)")
        .draw()
        .map_err(chart_error)?;
    for (i, ((x, kl), name)) in series.iter().zip(names).enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = x
            .iter()
            .zip(kl)
            .map(|(&x, &k)| (x, k.max(KL_FLOOR)))
            .collect();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(chart_error)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(chart_error)?;
    Ok(())
}

/// Drawing into a string cannot fail on the user's input: a failure is a
/// bug.
fn chart_error(e: impl std::fmt::Display) -> anyhow::Error {
    InternalError(format!("cannot draw the chart: {e}")).into()
}
