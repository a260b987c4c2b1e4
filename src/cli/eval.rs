//! `eval`: top-1 / top-5 accuracy of a model on a labelled image folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{load, ModelArgs, PreprocessPreset};
use crate::eval::{evaluate_with_progress, EvalOptions, ImagePrediction, DEFAULT_BATCH};
use crate::labels::read_labels;

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Image folder with a `labels.tsv` (columns file, class_index, wnid, name).
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// Evaluate only the first N images of `labels.tsv`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Images per engine call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Print one JSON object (fractions in 0..1) instead of text.
    #[arg(long)]
    json: bool,
    /// Preprocessing to use instead of the model's own.
    #[arg(long, value_enum, value_name = "PRESET")]
    preprocess: Option<PreprocessPreset>,
    /// Also write every image's top-5 classes to this TSV file (columns
    /// `file`, `top5` as comma-separated class indices, best first), the
    /// format of the reference `*.predictions.tsv`.
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
}

/// Run `eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut model = load::load(&args.model)?;
    if let Some(preset) = args.preprocess {
        model.preprocess = preset.preprocess();
    }
    let labels_path = args.images.join("labels.tsv");
    let mut images = read_labels(&labels_path, None).context("cannot read the image labels")?;
    if let Some(limit) = args.limit {
        images.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }

    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
    )?);
    let opts = EvalOptions {
        batch_size: usize::try_from(args.batch)?,
    };
    let report = evaluate_with_progress(&model, &images, &opts, &mut |done| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let report = report?;
    if let Some(path) = &args.predictions {
        write_predictions(path, &args.images, &report.predictions)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        let value = json!({
            "model": args.model.model.display().to_string(),
            "images": report.images,
            "top1": report.top1,
            "top5": report.top5,
            "images_per_sec": report.images_per_sec,
            "seconds": report.seconds,
            "batch": args.batch,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "images    {}", report.images)?;
        writeln!(out, "top-1     {:.2} %", 100.0 * report.top1)?;
        writeln!(out, "top-5     {:.2} %", 100.0 * report.top5)?;
        writeln!(out, "images/s  {:.1}", report.images_per_sec)?;
    }
    Ok(())
}

/// Write per-image top-5 predictions as TSV, with file names relative to
/// the image folder (as in `labels.tsv`).
fn write_predictions(
    path: &Path,
    images_dir: &Path,
    predictions: &[ImagePrediction],
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "file\ttop5")?;
    for p in predictions {
        let file = p.path.strip_prefix(images_dir).unwrap_or(&p.path);
        let top5: Vec<String> = p.top5.iter().map(usize::to_string).collect();
        writeln!(out, "{}\t{}", file.display(), top5.join(","))?;
    }
    out.flush()
}
