//! `inspect`: what a model's layers hold — shapes, parameter counts,
//! sparsity, number of distinct weight values and in-memory size.

use std::io::Write;

use formats::Layer;
use serde::Serialize;

use super::{inspect_sqz, load, ModelArgs};

/// Arguments of `inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Counts over a set of layers (one layer, or all of them for the total).
#[derive(Serialize)]
struct Stats {
    weights: usize,
    biases: usize,
    /// Weights plus biases.
    parameters: usize,
    /// Weights that are not exactly zero.
    nonzeros: usize,
    /// Fraction of nonzero weights.
    density: f64,
    /// Distinct weight values, zero (of either sign) counting once.
    distinct: usize,
    /// Size of the parameters as dense float32.
    bytes: usize,
}

impl Stats {
    /// The counts over `layers`, whose distinct nonzero weight values are
    /// `distinct_nonzero`.
    fn of(layers: &[Layer], distinct_nonzero: &[f32]) -> Stats {
        let weights: usize = layers.iter().map(|l| l.weights.len()).sum();
        let biases: usize = layers.iter().map(|l| l.bias.len()).sum();
        let nonzeros: usize = layers.iter().map(Layer::nonzeros).sum();
        Stats {
            weights,
            biases,
            parameters: weights + biases,
            nonzeros,
            density: nonzeros as f64 / weights.max(1) as f64,
            distinct: distinct_nonzero.len() + usize::from(nonzeros < weights),
            bytes: 4 * (weights + biases),
        }
    }
}

/// One layer of the `--json` output.
#[derive(Serialize)]
struct LayerJson<'a> {
    name: &'a str,
    shape: [usize; 4],
    #[serde(flatten)]
    stats: &'a Stats,
}

/// The `--json` output.
#[derive(Serialize)]
struct InspectJson<'a> {
    model: String,
    layers: Vec<LayerJson<'a>>,
    total: &'a Stats,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<inspect_sqz::StorageJson<'a>>,
}

/// Run `inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let read = load::load_detailed(&args.model)?;
    let model = read.model;
    // For a .sqz, also show how each layer is stored.
    let storage = read.sqz;
    let nonzeros: Vec<usize> = model.layers.iter().map(Layer::nonzeros).collect();
    let layers: Vec<(&Layer, Stats)> = model
        .layers
        .iter()
        .map(|l| {
            (
                l,
                Stats::of(std::slice::from_ref(l), &l.distinct_nonzero_weights()),
            )
        })
        .collect();
    let total = Stats::of(&model.layers, &model.distinct_nonzero_weights());
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = InspectJson {
            model: args.model.model.display().to_string(),
            layers: layers
                .iter()
                .map(|(layer, stats)| LayerJson {
                    name: &layer.name,
                    shape: layer.shape,
                    stats,
                })
                .collect(),
            total: &total,
            storage: storage
                .as_ref()
                .map(|file| inspect_sqz::to_json(file, &nonzeros)),
        };
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
        return Ok(());
    }
    let row = |out: &mut dyn Write, name: &str, shape: &str, s: &Stats| {
        writeln!(
            out,
            "{name:<28} {shape:>14} {:>9} {:>7} {:>9} {:>9} {:>8.2}% {:>9} {:>10}",
            s.weights,
            s.biases,
            s.parameters,
            s.nonzeros,
            100.0 * s.density,
            s.distinct,
            s.bytes
        )
    };
    writeln!(
        out,
        "{:<28} {:>14} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "layer", "shape", "weights", "biases", "params", "nonzero", "density", "distinct", "bytes"
    )?;
    for (layer, stats) in &layers {
        let [o, i, h, w] = layer.shape;
        row(&mut out, &layer.name, &format!("{o}x{i}x{h}x{w}"), stats)?;
    }
    row(&mut out, "total", "", &total)?;
    if let Some(sqz) = &storage {
        inspect_sqz::print(&mut out, sqz, &nonzeros)?;
    }
    Ok(())
}
