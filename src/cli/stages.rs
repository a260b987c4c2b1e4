//! `prune`, `quantize` and `compress`: the lossy stages of Deep Compression
//! on a model file, written as a `.sqz`.
//!
//! The three commands only turn their arguments into a
//! [`Recipe`](crate::pipeline::Recipe), run [`pipeline::compress`], write the
//! file atomically and print the report.

use std::io::Write;

use serde::Serialize;

use super::load;
use super::options::{
    AllocationArgs, CalibArgs, FinetuneArgs, OutputArgs, PruneArgs, QuantizeArgs, SensitivityArgs,
};
use super::output::{check_output, write_atomic};
use super::progress::{note, Bars};
use super::ModelArgs;
use crate::pipeline::defaults;
use crate::pipeline::finetune::FinetuneReport;
use crate::pipeline::prune::PruneSpec;
use crate::pipeline::quantize::QuantizeSpec;
use crate::pipeline::report::{CompressionReport, LayerReport, PlacementReport, PlanReport};
use crate::pipeline::sensitivity::default_sparsity_ladder;
use crate::pipeline::target_size::TargetSize;
use crate::pipeline::workload::default_sensitivity_images;
use crate::pipeline::{self, Recipe};

/// Arguments of `prune`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("sparsity", |a| a.required(true)))]
pub struct PruneCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    prune: PruneArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    sensitivity: SensitivityArgs,
    #[command(flatten)]
    finetune: FinetuneArgs,
    /// Seed of `--finetune`'s batch order and augmentation.
    #[arg(long, default_value_t = defaults::FINETUNE_SEED)]
    seed: u64,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `quantize`.
#[derive(Debug, clap::Args)]
#[command(mut_arg("bits", |a| a.required(true)))]
pub struct QuantizeCmd {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    quantize: QuantizeArgs,
    #[command(flatten)]
    calib: CalibArgs,
    #[command(flatten)]
    finetune: FinetuneArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Arguments of `compress`: every stage is optional.
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
    finetune: FinetuneArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Run `prune`.
pub fn prune(cmd: PruneCmd) -> anyhow::Result<()> {
    let placement = cmd
        .prune
        .placement(&cmd.calib, &cmd.sensitivity, default_sparsity_ladder())?;
    let recipe = Recipe {
        finetune: finetune_spec(&cmd.finetune, cmd.seed)?,
        placement,
        ..fixed_recipe(cmd.prune.spec(), None, &cmd.calib, &cmd.output)
    };
    let default_count = cmd.sensitivity.sensitivity_count.is_none();
    run_with(&cmd.model, recipe, &cmd.output, default_count)
}

/// Run `quantize`.
pub fn quantize(cmd: QuantizeCmd) -> anyhow::Result<()> {
    let recipe = Recipe {
        finetune: finetune_spec(&cmd.finetune, cmd.quantize.seed)?,
        ..fixed_recipe(None, cmd.quantize.spec(), &cmd.calib, &cmd.output)
    };
    run_with(&cmd.model, recipe, &cmd.output, false)
}

/// Run `compress`: the stages asked for in one go, with fixed settings or,
/// with `--target-size`, with per-layer settings fitted to the size.
pub fn compress(cmd: CompressCmd) -> anyhow::Result<()> {
    let finetune = finetune_spec(&cmd.finetune, cmd.quantize.seed)?;
    let recipe = match cmd.allocation.target_size {
        Some(bytes) => Recipe {
            target_size: Some(TargetSize {
                bytes,
                sparsity: cmd.prune.sparsity,
                ladder: cmd.allocation.ladder.ladder()?,
                sensitivity: cmd.allocation.sensitivity.run(),
                kmeans: cmd.quantize.kmeans(defaults::TARGET_SIZE_ENTROPY_WEIGHT),
            }),
            ..fixed_recipe(None, None, &cmd.calib, &cmd.output)
        },
        None => Recipe {
            placement: cmd.prune.placement(
                &cmd.calib,
                &cmd.allocation.sensitivity,
                cmd.allocation.ladder.sparsity_levels.clone(),
            )?,
            ..fixed_recipe(
                cmd.prune.spec(),
                cmd.quantize.spec(),
                &cmd.calib,
                &cmd.output,
            )
        },
    };
    let recipe = Recipe { finetune, ..recipe };
    let default_count = cmd.allocation.sensitivity.sensitivity_count.is_none();
    run_with(&cmd.model, recipe, &cmd.output, default_count)
}

/// The fine-tuning stage of `--finetune`, with the `--teacher` model loaded.
fn finetune_spec(
    args: &FinetuneArgs,
    seed: u64,
) -> anyhow::Result<Option<crate::pipeline::finetune::Finetune>> {
    let teacher = match (&args.finetune, &args.teacher) {
        (true, Some(path)) => Some(load::load_model(path, None)?),
        _ => None,
    };
    Ok(args.spec(seed, teacher))
}

/// The recipe of fixed pruning and weight-sharing settings.
fn fixed_recipe(
    prune: Option<PruneSpec>,
    quantize: Option<QuantizeSpec>,
    calib: &CalibArgs,
    out: &OutputArgs,
) -> Recipe {
    Recipe {
        prune,
        quantize,
        calibration: calib.calibration(),
        half: out.half,
        ..Recipe::default()
    }
}

/// Load the model, apply `recipe`, write the file and report. With
/// `default_count`, a target size measures sensitivity on the model's
/// default number of images (fewer for big models), known once it is read.
fn run_with(
    model_args: &ModelArgs,
    mut recipe: Recipe,
    out: &OutputArgs,
    default_count: bool,
) -> anyhow::Result<()> {
    check_output(&out.output, model_args)?;
    let original = load::load(model_args)?;
    if default_count {
        let images = default_sensitivity_images(&original)?;
        if let Some(target) = recipe.target_size.as_mut() {
            target.sensitivity.images = images;
        }
        if let Some(placement) = recipe.placement.as_mut() {
            placement.sensitivity.images = images;
        }
    }
    let recipe = &recipe;
    let compressed = pipeline::compress(original, recipe, &mut Bars::default())?;
    let finetune = compressed.finetune.as_ref();
    let finetune_before_sharing = compressed.finetune_before_sharing.as_ref();
    write_atomic(&out.output, &compressed.bytes)?;
    let lossy = recipe.prune.is_some() || recipe.quantize.is_some();
    if lossy && recipe.calibration.is_none() {
        note(
            "accuracy is unverified: without --calib, weights are pruned by magnitude (the same share of every layer) and shared by plain k-means with nothing to recover the damage; --calib DIR places the sparsity where measured damage is least and recovers the rest on unlabeled images, and `eval OUT --reference MODEL` measures it",
        );
    }

    let report = &compressed.report;
    let input_bytes = load::model_bytes(&model_args.model);
    let mut stdout = std::io::stdout().lock();
    if out.json {
        let json = CompressJson {
            output: out.output.display().to_string(),
            input_bytes,
            compression_ratio: input_bytes as f64 / report.file_bytes as f64,
            finetune,
            finetune_before_sharing,
            report,
        };
        writeln!(stdout, "{}", serde_json::to_string(&json)?)?;
        return Ok(());
    }
    if let Some(plan) = &report.plan {
        print_plan(&mut stdout, plan)?;
    }
    if let Some(placement) = &report.placement {
        print_placement(&mut stdout, placement)?;
    }
    print_table(&mut stdout, &report.layers)?;
    if let Some(finetune) = finetune_before_sharing {
        print_finetune(&mut stdout, "before weight sharing", finetune)?;
    }
    if let Some(finetune) = finetune {
        let stage = match finetune_before_sharing {
            Some(_) => "after weight sharing",
            None => "",
        };
        print_finetune(&mut stdout, stage, finetune)?;
    }
    writeln!(
        stdout,
        "total: {} weights, sparsity {:.2} %, {} -> {} bytes ({:.2}x), wrote {}",
        report.weights,
        100.0 * report.sparsity,
        input_bytes,
        report.file_bytes,
        input_bytes as f64 / report.file_bytes as f64,
        out.output.display()
    )?;
    Ok(())
}

/// The `--json` output: the pipeline's report plus the files.
#[derive(Serialize)]
struct CompressJson<'a> {
    output: String,
    input_bytes: u64,
    compression_ratio: f64,
    /// What fine-tuning did, when it ran (after weight sharing, when it
    /// ran twice).
    #[serde(skip_serializing_if = "Option::is_none")]
    finetune: Option<&'a FinetuneReport>,
    /// What fine-tuning did between pruning and weight sharing.
    #[serde(skip_serializing_if = "Option::is_none")]
    finetune_before_sharing: Option<&'a FinetuneReport>,
    #[serde(flatten)]
    report: &'a CompressionReport,
}

fn print_plan(out: &mut impl Write, plan: &PlanReport) -> std::io::Result<()> {
    writeln!(
        out,
        "plan for {} bytes (estimated {} bytes, {} build{}):",
        plan.target_bytes,
        plan.estimated_bytes,
        plan.attempts,
        if plan.attempts == 1 { "" } else { "s" }
    )?;
    writeln!(
        out,
        "{:<28} {:>9} {:>5} {:>10} {:>10}",
        "layer", "sparsity", "bits", "est. bytes", "damage"
    )?;
    for l in &plan.layers {
        writeln!(
            out,
            "{:<28} {:>7.1} % {:>5} {:>10} {:>10.5}",
            l.name,
            100.0 * l.sparsity.get(),
            l.bits.map_or("-".to_string(), |b| b.to_string()),
            l.estimated_bytes,
            l.damage
        )?;
    }
    writeln!(
        out,
        "estimated total damage (sum of per-layer KL): {:.5}",
        plan.damage()
    )
}

fn print_placement(out: &mut impl Write, p: &PlacementReport) -> std::io::Result<()> {
    writeln!(
        out,
        "sparsity {:.1} % of all weights placed where the damage measured on {} calibration images is least (--uniform: the same in every layer):",
        100.0 * p.target_sparsity.get(),
        p.images
    )?;
    writeln!(out, "{:<28} {:>9} {:>10}", "layer", "sparsity", "damage")?;
    for l in &p.layers {
        writeln!(
            out,
            "{:<28} {:>7.1} % {:>10.5}",
            l.name,
            100.0 * l.sparsity.get(),
            l.damage
        )?;
    }
    writeln!(
        out,
        "estimated total damage (sum of per-layer KL): {:.5}",
        p.damage()
    )
}

/// One line of what a fine-tuning stage did; `stage` says which (empty
/// for the only one).
fn print_finetune(out: &mut impl Write, stage: &str, f: &FinetuneReport) -> std::io::Result<()> {
    let percent = |a: Option<f64>| a.map_or("-".to_string(), |a| format!("{:.1} %", 100.0 * a));
    let stage = match stage {
        "" => String::new(),
        stage => format!(" {stage}"),
    };
    writeln!(
        out,
        "fine-tuned{stage} {} steps on {} images in {:.0} s: loss {:.4} -> {:.4}, agreement on {} held-back images {} -> {}",
        f.steps,
        f.training_images,
        f.seconds,
        f.initial_loss,
        f.final_loss,
        f.held_back_images,
        percent(f.held_back_agreement_before),
        percent(f.held_back_agreement)
    )
}

fn print_table(out: &mut impl Write, rows: &[LayerReport]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<28} {:>9} {:>9} {:>9} {:>5} {:>7} {:>9}",
        "layer", "weights", "before", "sparsity", "bits", "shared", "bytes"
    )?;
    for r in rows {
        let bits = r.bits.map(|b| b.to_string()).unwrap_or_default();
        let shared = r.shared_values.map(|s| s.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{:<28} {:>9} {:>7.1} % {:>7.1} % {:>5} {:>7} {:>9}",
            r.name,
            r.weights,
            100.0 * r.sparsity_before,
            100.0 * r.sparsity,
            bits,
            shared,
            r.bytes
        )?;
    }
    Ok(())
}
