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
use super::options::{
    with_layer_progress, AllocationArgs, CalibArgs, OutputArgs, PruneArgs, QuantizeArgs,
};
use super::output::{check_output, write_atomic};
use super::ModelArgs;
use crate::allocation::{
    cost_table, estimated_bytes, fit_to_budget, plan_specs, Budget, CostTable, Plan,
};
use crate::compression::{prune_model, quantize_model, round_model_half, PruneSpec, QuantizeSpec};
use crate::sensitivity::{measure_sensitivity, SensitivityOptions};
use compress::calib::{GptqOptions, ReconstructOptions};
use formats::sqz::{encode_model, size_breakdown, write_sqz, SqzFile};
use formats::Model;

/// Builds of the file `--target-size` makes at most before giving up: each
/// retry lowers the planning budget by the previous excess.
const MAX_FIT_ATTEMPTS: usize = 4;

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
    allocation: AllocationArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Run `prune`.
pub fn prune(cmd: PruneCmd) -> anyhow::Result<()> {
    run(&cmd.model, Some(&cmd.prune), None, &cmd.calib, &cmd.output)
}

/// Run `quantize`.
pub fn quantize(cmd: QuantizeCmd) -> anyhow::Result<()> {
    run(
        &cmd.model,
        None,
        Some(&cmd.quantize),
        &cmd.calib,
        &cmd.output,
    )
}

/// Run `compress`: pruning then weight sharing in one go, uniformly or,
/// with `--target-size`, with per-layer settings fitted to the size.
pub fn compress(cmd: CompressCmd) -> anyhow::Result<()> {
    match cmd.allocation.target_size {
        Some(target) => compress_to_size(&cmd, target),
        None => run(
            &cmd.model,
            Some(&cmd.prune),
            Some(&cmd.quantize),
            &cmd.calib,
            &cmd.output,
        ),
    }
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
    report(
        model_args,
        &original,
        &model,
        quantize_spec.as_ref(),
        &file,
        &bytes,
        out,
        None,
    )
}

/// `compress --target-size`: measure each layer's sensitivity on a subset
/// of the calibration images, plan per-layer sparsity and bits for the
/// budget, compress with calibration and check the real size, planning
/// again with a tighter budget while it is over.
fn compress_to_size(cmd: &CompressCmd, target: usize) -> anyhow::Result<()> {
    check_output(&cmd.output.output, &cmd.model)?;
    anyhow::ensure!(
        cmd.calib.dir().is_some(),
        "--target-size needs calibration images (--calib DIR)"
    );
    anyhow::ensure!(
        cmd.quantize.bits.is_none()
            && cmd.quantize.layer_bits.is_empty()
            && cmd.prune.layer_sparsity.is_empty()
            && !cmd.prune.global,
        "--target-size chooses every layer's sparsity and bits itself: drop --bits, --layer-bits, --layer-sparsity and --global (the levels it picks from are --sparsity-levels and --bit-levels)"
    );
    let original = load::load(&cmd.model)?;
    let ladder = cmd.allocation.ladder.ladder()?;
    let quantize = cmd
        .quantize
        .spec_with_bits(&original, ladder.bits[0], cmd.output.half)?;
    let nonzeros = match cmd.prune.sparsity {
        Some(s) => {
            anyhow::ensure!((0.0..1.0).contains(&s), "sparsity {s} is outside [0, 1)");
            let weights: usize = original.layers.iter().map(|l| l.weight_count()).sum();
            Some(((1.0 - s) * weights as f64).floor() as usize)
        }
        None => None,
    };

    let sample = cmd
        .calib
        .load_batch(&original, cmd.allocation.sensitivity_count)?;
    let options = SensitivityOptions {
        ladder,
        quantize: quantize.clone(),
        bias_correction: !cmd.calib.no_bias_correction,
        reconstruct: ReconstructOptions::default(),
        gptq: GptqOptions::default(),
    };
    let sensitivity = with_layer_progress("sensitivity", original.layers.len(), |progress| {
        measure_sensitivity(&original, &sample, &options, progress)
    })??;
    drop(sample);
    let table = cost_table(&original, &sensitivity, &quantize)?;

    let batch = cmd.calib.load_batch(&original, cmd.calib.calib_count)?;
    let budget = Budget {
        bytes: target,
        nonzeros,
    };
    let fitted = fit_to_budget(&table, &budget, MAX_FIT_ATTEMPTS, |plan| {
        let (prune, quantize) = plan_specs(&table, plan, &quantize);
        let model = cmd
            .calib
            .compress(&original, &batch, Some(prune), Some(quantize.clone()))?;
        let file = encode_model(&model);
        let bytes = write_sqz(&file);
        let len = bytes.len();
        if len > target {
            eprintln!(
                "plan came out at {len} bytes, over the {target}-byte budget: planning again"
            );
        }
        Ok(((model, quantize, file, bytes), len))
    })?;
    let (model, quantize, file, bytes) = fitted.result;
    let plan = PlanReport {
        table: &table,
        plan: &fitted.plan,
        target,
        attempts: fitted.attempts,
    };
    report(
        &cmd.model,
        &original,
        &model,
        Some(&quantize),
        &file,
        &bytes,
        &cmd.output,
        Some(plan),
    )
}

/// The allocation behind a `--target-size` result, for the report.
struct PlanReport<'a> {
    table: &'a CostTable,
    plan: &'a Plan,
    target: usize,
    attempts: usize,
}

impl PlanReport<'_> {
    fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "plan for {} bytes (estimated {} bytes, {} build{}):",
            self.target,
            estimated_bytes(self.table, self.plan),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" }
        )?;
        writeln!(
            out,
            "{:<28} {:>9} {:>5} {:>10} {:>10}",
            "layer", "sparsity", "bits", "est. bytes", "damage"
        )?;
        for (l, &i) in self.table.layers.iter().zip(self.plan) {
            let o = &l.options[i];
            writeln!(
                out,
                "{:<28} {:>7.1} % {:>5} {:>10} {:>10.5}",
                l.name,
                100.0 * o.sparsity,
                o.bits,
                o.bytes,
                o.damage
            )?;
        }
        let damage: f64 = self
            .table
            .layers
            .iter()
            .zip(self.plan)
            .map(|(l, &i)| l.options[i].damage)
            .sum();
        writeln!(
            out,
            "estimated total damage (sum of per-layer KL): {damage:.5}"
        )
    }

    fn json(&self) -> serde_json::Value {
        let layers: Vec<serde_json::Value> = self
            .table
            .layers
            .iter()
            .zip(self.plan)
            .map(|(l, &i)| {
                let o = &l.options[i];
                json!({ "name": l.name, "sparsity": o.sparsity, "bits": o.bits, "estimated_bytes": o.bytes, "damage": o.damage })
            })
            .collect();
        json!({
            "target_bytes": self.target,
            "estimated_bytes": estimated_bytes(self.table, self.plan),
            "attempts": self.attempts,
            "layers": layers,
        })
    }
}

/// Write the result and report it per layer and in total.
#[allow(clippy::too_many_arguments)]
fn report(
    model_args: &ModelArgs,
    original: &Model,
    model: &Model,
    quantize_spec: Option<&QuantizeSpec>,
    file: &SqzFile,
    bytes: &[u8],
    out: &OutputArgs,
    plan: Option<PlanReport>,
) -> anyhow::Result<()> {
    write_atomic(&out.output, bytes)?;

    let breakdown = size_breakdown(file);
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
            bits: quantize_spec.map(|q| q.bits_for(&l.name)),
            shared: quantize_spec.map(|_| distinct_nonzero(&l.weights)),
            bytes: b.total(),
        })
        .collect();
    let input_bytes = load::model_bytes(&model_args.model);
    let mut stdout = std::io::stdout().lock();
    if out.json {
        let mut report = json_report(&rows, input_bytes, bytes.len(), out);
        if let Some(plan) = &plan {
            report["plan"] = plan.json();
        }
        writeln!(stdout, "{report}")?;
    } else {
        if let Some(plan) = &plan {
            plan.print(&mut stdout)?;
        }
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
fn compress_plain(
    original: &Model,
    prune: Option<&PruneSpec>,
    quantize: Option<&QuantizeSpec>,
) -> anyhow::Result<Model> {
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
    let mut values: Vec<u32> = weights
        .iter()
        .filter(|w| **w != 0.0)
        .map(|w| w.to_bits())
        .collect();
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
    (
        rows.iter().map(|r| r.weights).sum(),
        rows.iter().map(|r| r.nonzeros).sum(),
    )
}

fn print_table(out: &mut impl Write, rows: &[LayerRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>9} {:>5} {:>7} {:>9}",
        "layer", "weights", "before", "sparsity", "bits", "shared", "bytes"
    )?;
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
