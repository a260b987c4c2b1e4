//! `prune`, `quantize` and `compress`: the lossy stages of Deep Compression
//! on a model file, written as a `.sqz`.
//!
//! The three commands share one runner: load, prune (if asked), share
//! weights (if asked), store losslessly in the smallest storage per layer,
//! write atomically, and report per layer and in total.

use std::io::Write;

use serde_json::json;

use super::load;
use super::options::{OutputArgs, PruneArgs, QuantizeArgs};
use super::output::{check_output, write_atomic};
use super::ModelArgs;
use crate::compression::{
    prune_model, quantize_model, round_model_half, LayerPruneReport, LayerQuantizeReport,
};
use crate::container::encode_model;
use formats::sqz::{size_breakdown, write_sqz};

/// Arguments of `prune`.
#[derive(Debug, clap::Args)]
pub struct PruneCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prune: PruneArgs,
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
    output: OutputArgs,
}

/// Run `prune`.
pub fn prune(cmd: PruneCmd) -> anyhow::Result<()> {
    run(&cmd.model, Some(&cmd.prune), None, &cmd.output)
}

/// Run `quantize`.
pub fn quantize(cmd: QuantizeCmd) -> anyhow::Result<()> {
    run(&cmd.model, None, Some(&cmd.quantize), &cmd.output)
}

/// Run `compress`: pruning then weight sharing in one go.
pub fn compress(cmd: CompressCmd) -> anyhow::Result<()> {
    run(
        &cmd.model,
        Some(&cmd.prune),
        Some(&cmd.quantize),
        &cmd.output,
    )
}

fn run(
    model_args: &ModelArgs,
    prune: Option<&PruneArgs>,
    quantize: Option<&QuantizeArgs>,
    out: &OutputArgs,
) -> anyhow::Result<()> {
    check_output(&out.output, model_args)?;
    let mut model = load::load(model_args)?;
    let prune_specs = prune.map(|p| p.spec(&model)).transpose()?;
    let quantize_spec = quantize.map(|q| q.spec(&model, out.half)).transpose()?;

    let pruned = prune_specs
        .map(|spec| prune_model(&mut model, &spec))
        .transpose()?;
    let quantized = match &quantize_spec {
        Some(spec) => Some(quantize_model(&mut model, spec)?),
        None => {
            if out.half {
                round_model_half(&mut model);
            }
            None
        }
    };
    let file = encode_model(&model);
    let bytes = write_sqz(&file);
    write_atomic(&out.output, &bytes)?;

    let input_bytes = load::model_bytes(&model_args.model);
    let breakdown = size_breakdown(&file);
    let rows: Vec<LayerRow> = model
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerRow {
            name: &l.name,
            weights: l.weight_count(),
            nonzeros: l.nonzeros(),
            prune: pruned.as_ref().map(|p| &p[i]),
            quantize: quantized.as_ref().map(|q| &q[i]),
            bytes: breakdown.layers[i].total(),
        })
        .collect();
    let mut stdout = std::io::stdout().lock();
    if out.json {
        writeln!(
            stdout,
            "{}",
            json_report(&rows, input_bytes, bytes.len(), out)
        )?;
    } else {
        print_table(&mut stdout, &rows)?;
        let weights: usize = rows.iter().map(|r| r.weights).sum();
        let nonzeros: usize = rows.iter().map(|r| r.nonzeros).sum();
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

/// One layer's line of the report.
struct LayerRow<'a> {
    name: &'a str,
    weights: usize,
    nonzeros: usize,
    prune: Option<&'a LayerPruneReport>,
    quantize: Option<&'a LayerQuantizeReport>,
    bytes: usize,
}

fn print_table(out: &mut impl Write, rows: &[LayerRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>9} {:>5} {:>8} {:>9}",
        "layer", "weights", "sparsity", "before", "bits", "shared", "bytes"
    )?;
    for r in rows {
        let before = r
            .prune
            .map(|p| format!("{:.1} %", 100.0 * p.zeros_before as f64 / p.weights as f64))
            .unwrap_or_default();
        let (bits, shared) = r
            .quantize
            .map(|q| (q.bits.to_string(), q.clusters.to_string()))
            .unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:>9} {:>7.1} % {:>9} {:>5} {:>8} {:>9}",
            r.name,
            r.weights,
            100.0 * (1.0 - r.nonzeros as f64 / r.weights as f64),
            before,
            bits,
            shared,
            r.bytes
        )?;
    }
    Ok(())
}

fn json_report(
    rows: &[LayerRow],
    input_bytes: u64,
    output_bytes: usize,
    out: &OutputArgs,
) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "weights": r.weights,
                "nonzeros": r.nonzeros,
                "sparsity": 1.0 - r.nonzeros as f64 / r.weights as f64,
                "sparsity_before": r.prune.map(|p| p.zeros_before as f64 / p.weights as f64),
                "bits": r.quantize.map(|q| q.bits),
                "shared_values": r.quantize.map(|q| q.clusters),
                "bytes": r.bytes,
            })
        })
        .collect();
    let weights: usize = rows.iter().map(|r| r.weights).sum();
    let nonzeros: usize = rows.iter().map(|r| r.nonzeros).sum();
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
