//! `sensitivity`: how much each layer alone suffers from pruning and from
//! weight sharing, as a table, JSON and an SVG chart.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::load;
use super::options::{sensitivity_cache_dir, LadderArgs, MemoryArgs};
use super::output::write_atomic;
use super::progress::Bars;
use super::ModelArgs;
use crate::pipeline::calib_images::CalibrationImages;
use crate::pipeline::calibration::CalibrationOptions;
use crate::pipeline::memory_plan::MemoryNeed;
use crate::pipeline::params::{Bits, Sparsity};
use crate::pipeline::sensitivity::{Damage, Sensitivity, SensitivityOptions};
use crate::pipeline::sensitivity_cache::measure_or_reuse;
use crate::pipeline::workload::default_sensitivity_images;
use crate::report::charts::{heatmap_svg, HeatPanel, Heatmap};

/// Arguments of `sensitivity`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Folder of calibration images (JPEG/PNG, labels not needed).
    #[arg(long, value_name = "DIR")]
    calib: PathBuf,
    /// Number of calibration images, picked deterministically from DIR;
    /// every trial runs the network on all of them [default: 128, fewer for
    /// models of more than 0.4 G multiply-adds per image, at least 4]
    #[arg(long, value_name = "N")]
    calib_count: Option<usize>,
    #[command(flatten)]
    ladder: LadderArgs,
    #[command(flatten)]
    memory: MemoryArgs,
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
    let count = match args.calib_count {
        Some(count) => count,
        None => default_sensitivity_images(&model)?,
    };
    let calibration = CalibrationOptions::default();
    if let Some(limit) = args.memory.limit() {
        MemoryNeed::sensitivity(&model, calibration.hessian_block)?.check(
            "sensitivity analysis",
            count,
            limit,
        )?;
    }
    let images = CalibrationImages {
        dir: args.calib.clone(),
        count,
    };
    let batch = images.load(&model, images.count)?;
    let options = SensitivityOptions::new(ladder, calibration);
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

/// Smallest KL divergence told apart by colour: the scale is logarithmic.
const KL_FLOOR: f64 = 1e-5;

/// Two panels, damage of pruning and of weight sharing, one row per layer
/// and one column per level, coloured by KL divergence (log scale, value
/// printed in the cell): readable at any number of layers.
fn chart_svg(s: &Sensitivity) -> anyhow::Result<String> {
    let map = Heatmap {
        title: format!("Damage of compressing one layer alone ({} images)", s.images),
        value_label: "mean KL divergence (nats) of the class distribution vs the original; darker is worse (log scale)".into(),
        rows: s.layers.iter().map(|l| l.name.clone()).collect(),
        panels: vec![
            HeatPanel {
                title: "pruning, sparsity".into(),
                columns: s.ladder.sparsities.iter().map(|x| x.to_string()).collect(),
                values: s.layers.iter().map(|l| kls(&l.prune)).collect(),
            },
            HeatPanel {
                title: "weight sharing, bits".into(),
                columns: s.ladder.bits.iter().map(|b| b.to_string()).collect(),
                values: s.layers.iter().map(|l| kls(&l.quantize)).collect(),
            },
        ],
        floor: KL_FLOOR,
    };
    Ok(heatmap_svg(&map)?)
}

/// The KL divergence of each trial.
fn kls(trials: &[Damage]) -> Vec<f64> {
    trials.iter().map(|d| d.kl).collect()
}
