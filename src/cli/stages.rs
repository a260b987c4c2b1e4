//! `prune`, `quantize` and `compress`: the lossy stages of Deep Compression
//! on a model file, written as a `.sqz`.
//!
//! The three commands share one runner: load, prune (if asked), share
//! weights (if asked) — plainly, or layer by layer on calibration images
//! with `--calib` — then store losslessly in the smallest storage per
//! layer, write atomically, and report per layer and in total.

use std::io::Write;

use serde_json::json;

use super::load;
use super::options::{CalibArgs, OutputArgs, PruneArgs, QuantizeArgs};
use super::output::{check_output, write_atomic};
use super::ModelArgs;
use crate::compression::{prune_model, quantize_model, round_model_half, PruneSpec, QuantizeSpec};
use crate::container::encode_model;
use formats::sqz::{size_breakdown, write_sqz};
use formats::Model;

/// Arguments of `prune`.
#[derive(Debug, clap::Args)]
pub struct PruneCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prune: PruneArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    quantize: QuantizeArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `compress`.
#[derive(Debug, clap::Args)]
pub struct CompressCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prune: PruneArgs,
    #[command(flatten)]
    quantize: QuantizeArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Run `prune`.
pub fn prune(cmd: PruneCmd) -> anyhow::Result<()> {
    run(&cmd.model, Some(&cmd.prune), None, &cmd.calib, &cmd.output)
}

/// Run `quantize`.
pub fn quantize(cmd: QuantizeCmd) -> anyhow::Result<()> {
    run(&cmd.model, None, Some(&cmd.quantize), &cmd.calib, &cmd.output)
}

/// Run `compress`: pruning then weight sharing in one go.
pub fn compress(cmd: CompressCmd) -> anyhow::Result<()> {
    run(&cmd.model, Some(&cmd.prune), Some(&cmd.quantize), &cmd.calib, &cmd.output)
}

fn run(
    model_args: &ModelArgs,
    prune: Option<&PruneArgs>,
    quantize: Option<&QuantizeArgs>,
    calib: &CalibArgs,
    out: &OutputArgs,
) -> anyhow::Result<()> {
    check_output(&out.output, model_args)?;
    let original = load::load(model_args)?;
    let prune_spec = prune.map(|p| p.spec(&original)).transpose()?;
    let quantize_spec = quantize.map(|q| q.spec(&original, out.half)).transpose()?;
    if let Some(q) = &quantize_spec {
        q.check()?;
    }

    let mut model = match calib.dir() {
        Some(_) => calib.run(&original, prune_spec, quantize_spec.clone())?,
        None => compress_plain(&original, prune_spec.as_ref(), quantize_spec.as_ref())?,
    };
    if out.half && quantize_spec.is_none() {
        round_model_half(&mut model);
    }
    let file = encode_model(&model);
    let bytes = write_sqz(&file);
    write_atomic(&out.output, &bytes)?;

    let breakdown = size_breakdown(&file);
    let rows: Vec<LayerRow> = model
        .layers
        .iter()
        .zip(&original.layers)
        .zip(&breakdown.layers)
        .map(|((l, o), b)| LayerRow {
            name: &l.name,
            weights: l.weight_count(),
            nonzeros: l.nonzeros(),
            nonzeros_before: o.nonzeros(),
            bits: quantize_spec.as_ref().map(|q| q.bits_for(&l.name)),
            shared: quantize_spec.as_ref().map(|_| distinct_nonzero(&l.weights)),
            bytes: b.total(),
        })
        .collect();
    let input_bytes = load::model_bytes(&model_args.model);
    let mut stdout = std::io::stdout().lock();
    if out.json {
        writeln!(stdout, "{}", json_report(&rows, input_bytes, bytes.len(), out))?;
    } else {
        print_table(&mut stdout, &rows)?;
        let (weights, nonzeros) = totals(&rows);
        writeln!(
            stdout,
            "total: {weights} weights, sparsity {:.2} %, {} -> {} bytes ({:.2}x), wrote {}",
            100.0 * (1.0 - nonzeros as f64 / weights.max(1) as f64),
            input_bytes,
            bytes.len(),
            input_bytes as f64 / bytes.len() as f64,
            out.output.display()
        )?;
    }
    Ok(())
}

/// Magnitude pruning and plain k-means, without calibration data.
fn compress_plain(original: &Model, prune: Option<&PruneSpec>, quantize: Option<&QuantizeSpec>) -> anyhow::Result<Model> {
    let mut model = original.clone();
    if let Some(spec) = prune {
        prune_model(&mut model, spec)?;
    }
    if let Some(spec) = quantize {
        quantize_model(&mut model, spec)?;
    }
    Ok(model)
}

/// Number of distinct nonzero values of a layer (its shared values).
fn distinct_nonzero(weights: &[f32]) -> usize {
    let mut values: Vec<u32> = weights.iter().filter(|w| **w != 0.0).map(|w| w.to_bits()).collect();
    values.sort_unstable();
    values.dedup();
    values.len()
}

/// One layer's line of the report.
struct LayerRow<'a> {
    name: &'a str,
    weights: usize,
    nonzeros: usize,
    nonzeros_before: usize,
    bits: Option<u8>,
    shared: Option<usize>,
    bytes: usize,
}

impl LayerRow<'_> {
    fn sparsity(&self) -> f64 {
        1.0 - self.nonzeros as f64 / self.weights as f64
    }

    fn sparsity_before(&self) -> f64 {
        1.0 - self.nonzeros_before as f64 / self.weights as f64
    }
}

fn totals(rows: &[LayerRow]) -> (usize, usize) {
    (rows.iter().map(|r| r.weights).sum(), rows.iter().map(|r| r.nonzeros).sum())
}

fn print_table(out: &mut impl Write, rows: &[LayerRow]) -> std::io::Result<()> {
    writeln!(out, "{:<28} {:>9} {:>9} {:>9} {:>5} {:>7} {:>9}", "layer", "weights", "before", "sparsity", "bits", "shared", "bytes")?;
    for r in rows {
        let bits = r.bits.map(|b| b.to_string()).unwrap_or_default();
        let shared = r.shared.map(|s| s.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:>9} {:>7.1} % {:>7.1} % {:>5} {:>7} {:>9}",
            r.name,
            r.weights,
            100.0 * r.sparsity_before(),
            100.0 * r.sparsity(),
            bits,
            shared,
            r.bytes
        )?;
    }
    Ok(())
}

fn json_report(rows: &[LayerRow], input_bytes: u64, output_bytes: usize, out: &OutputArgs) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "weights": r.weights,
                "nonzeros": r.nonzeros,
                "sparsity": r.sparsity(),
                "sparsity_before": r.sparsity_before(),
                "bits": r.bits,
                "shared_values": r.shared,
                "bytes": r.bytes,
            })
        })
        .collect();
    let (weights, nonzeros) = totals(rows);
    json!({
        "output": out.output.display().to_string(),
        "input_bytes": input_bytes,
        "file_bytes": output_bytes,
        "compression_ratio": input_bytes as f64 / output_bytes as f64,
        "weights": weights,
        "nonzeros": nonzeros,
        "sparsity": 1.0 - nonzeros as f64 / weights.max(1) as f64,
        "layers": layers,
    })
}
