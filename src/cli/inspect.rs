//! `inspect`: what a model's layers hold — shapes, parameter counts,
//! sparsity, number of distinct weight values and in-memory size.

use std::collections::HashSet;
use std::io::Write;

use formats::Layer;
use serde_json::json;

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
struct Stats {
    weights: usize,
    biases: usize,
    /// Weights that are not exactly zero.
    nonzeros: usize,
    /// Distinct weight values (0.0 and -0.0 count as one).
    distinct: usize,
}

impl Stats {
    fn of<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Stats {
        let mut stats = Stats {
            weights: 0,
            biases: 0,
            nonzeros: 0,
            distinct: 0,
        };
        let mut values = HashSet::new();
        for layer in layers {
            stats.weights += layer.weights.len();
            stats.biases += layer.bias.len();
            stats.nonzeros += layer.nonzeros();
            values.extend(
                layer
                    .weights
                    .iter()
                    .map(|&w| if w == 0.0 { 0 } else { w.to_bits() }),
            );
        }
        stats.distinct = values.len();
        stats
    }

    /// Weights plus biases.
    fn parameters(&self) -> usize {
        self.weights + self.biases
    }

    /// Fraction of nonzero weights.
    fn density(&self) -> f64 {
        self.nonzeros as f64 / self.weights.max(1) as f64
    }

    /// Size of the parameters as dense float32.
    fn bytes(&self) -> usize {
        4 * self.parameters()
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "weights": self.weights,
            "biases": self.biases,
            "parameters": self.parameters(),
            "nonzeros": self.nonzeros,
            "density": self.density(),
            "distinct": self.distinct,
            "bytes": self.bytes(),
        })
    }
}

/// Run `inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let read = load::load_detailed(&args.model.model, args.model.prototxt.as_deref())?;
    let model = read.model;
    // For a .sqz, also show how each layer is stored.
    let storage = read.sqz;
    let nonzeros: Vec<usize> = model.layers.iter().map(Layer::nonzeros).collect();
    let layers: Vec<(&Layer, Stats)> = model.layers.iter().map(|l| (l, Stats::of([l]))).collect();
    let total = Stats::of(&model.layers);
    let mut out = std::io::stdout().lock();
    if args.json {
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(layer, stats)| {
                let mut value = stats.to_json();
                value["name"] = json!(layer.name);
                value["shape"] = json!(layer.shape);
                value
            })
            .collect();
        let mut report = json!({ "model": args.model.model.display().to_string(), "layers": layers, "total": total.to_json() });
        if let Some(sqz) = &storage {
            report["storage"] = inspect_sqz::to_json(sqz, &nonzeros);
        }
        writeln!(out, "{report}")?;
        return Ok(());
    }
    let row = |out: &mut dyn Write, name: &str, shape: &str, s: &Stats| {
        writeln!(
            out,
            "{name:<28} {shape:>14} {:>9} {:>7} {:>9} {:>9} {:>8.2}% {:>9} {:>10}",
            s.weights,
            s.biases,
            s.parameters(),
            s.nonzeros,
            100.0 * s.density(),
            s.distinct,
            s.bytes()
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
