//! `eval`: top-1 / top-5 accuracy of a model on a labelled image folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::options::ImageSetArgs;
use super::output::write_atomic;
use super::{load, progress, ModelArgs, PreprocessPreset};
use crate::eval::{evaluate_with_progress, EvalOptions, EvalReport, ImagePrediction};
use crate::labels::LabeledImage;
use crate::pipeline::calib_images::CalibrationImages;
use crate::pipeline::defaults;
use formats::Model;
use std::collections::HashSet;

/// Arguments of `eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    set: ImageSetArgs,
    /// Print one JSON object (fractions in 0..1) instead of text.
    #[arg(long)]
    json: bool,
    /// Preprocessing to use instead of the model's own.
    #[arg(long, value_enum, value_name = "PRESET")]
    preprocess: Option<PreprocessPreset>,
    /// Original model to compare against, side by side: file sizes,
    /// compression ratio, both accuracies, top-1 agreement and the mean KL
    /// divergence of the class probabilities from the original's.
    #[arg(long, value_name = "ORIG")]
    reference: Option<PathBuf>,
    /// Leave out the calibration images that `--calib DIR --calib-count N`
    /// picks from DIR (the images calibration and `--finetune` use), so
    /// accuracy is measured on unseen images only.
    #[arg(long, value_name = "DIR")]
    exclude_calib: Option<PathBuf>,
    /// Number of calibration images `--exclude-calib` leaves out.
    #[arg(long, value_name = "N", default_value_t = defaults::CALIB_COUNT)]
    calib_count: usize,
    /// Also write every image's top-5 classes to this TSV file (columns
    /// `file`, `top5` as comma-separated class indices, best first), the
    /// format of the reference `*.predictions.tsv`.
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
    /// Leave out images that cannot be decoded, naming each on stderr (and
    /// counting them as `skipped` in `--json`), instead of stopping.
    #[arg(long)]
    skip_bad: bool,
}

/// Run `eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut model = load::load(&args.model)?;
    if let Some(preset) = args.preprocess {
        model.preprocess = preset.preprocess();
    }
    let mut images = args.set.labelled_images()?;

    if let Some(dir) = &args.exclude_calib {
        let calib_images = CalibrationImages {
            dir: dir.clone(),
            count: args.calib_count,
        };
        let calib: HashSet<PathBuf> = calib_images
            .files()?
            .into_iter()
            .filter_map(|p| p.canonicalize().ok())
            .collect();
        images.retain(|i| i.path.canonicalize().map_or(true, |p| !calib.contains(&p)));
    }
    let opts = EvalOptions {
        batch_size: args.set.batch_size(),
        skip_bad: args.skip_bad,
    };
    let report = evaluate_shown(&model, &images, &opts, "model")?;
    if let Some(path) = &args.predictions {
        write_predictions(path, &args.set.images, &report.predictions)?;
    }
    let reference = match &args.reference {
        Some(path) => {
            let mut reference = load::load_model(path, None)?;
            if let Some(preset) = args.preprocess {
                reference.preprocess = preset.preprocess();
            }
            Some((
                path,
                evaluate_shown(&reference, &images, &opts, "reference")?,
            ))
        }
        None => None,
    };

    let file_bytes = load::model_bytes(&args.model.model);
    let mut out = std::io::stdout().lock();
    if args.json {
        let json = EvalJson {
            model: args.model.model.display().to_string(),
            file_bytes,
            images: report.images,
            top1: report.top1,
            top5: report.top5,
            images_per_sec: report.images_per_sec,
            seconds: report.seconds,
            batch: args.set.batch,
            skipped: report.skipped.len(),
            reference: reference.as_ref().map(|(path, r)| {
                let reference_file_bytes = load::model_bytes(path);
                ReferenceJson {
                    reference: path.display().to_string(),
                    reference_file_bytes,
                    compression_ratio: reference_file_bytes as f64 / file_bytes as f64,
                    reference_top1: r.top1,
                    reference_top5: r.top5,
                    agreement: report.top1_agreement(r),
                    kl_from_reference: report.mean_kl_from(r),
                }
            }),
        };
        writeln!(out, "{}", serde_json::to_string(&json)?)?;
    } else if let Some((path, r)) = &reference {
        let reference_bytes = load::model_bytes(path);
        writeln!(out, "{} images", report.images)?;
        writeln!(out, "{:<18} {:>16} {:>16}", "", "original", "compressed")?;
        writeln!(
            out,
            "{:<18} {:>16} {:>16}",
            "file bytes", reference_bytes, file_bytes
        )?;
        writeln!(
            out,
            "{:<18} {:>16} {:>15.2}x",
            "compression",
            "1.00x",
            reference_bytes as f64 / file_bytes as f64
        )?;
        writeln!(
            out,
            "{:<18} {:>14.2} % {:>14.2} %",
            "top-1",
            100.0 * r.top1,
            100.0 * report.top1
        )?;
        writeln!(
            out,
            "{:<18} {:>14.2} % {:>14.2} %",
            "top-5",
            100.0 * r.top5,
            100.0 * report.top5
        )?;
        let agreement = report.top1_agreement(r).unwrap_or(f64::NAN);
        writeln!(
            out,
            "{:<18} {:>16} {:>14.2} %",
            "top-1 agreement",
            "",
            100.0 * agreement
        )?;
        let kl = report.mean_kl_from(r).unwrap_or(f64::NAN);
        writeln!(out, "{:<18} {:>16} {:>16.4}", "KL from original", "", kl)?;
        writeln!(
            out,
            "{:<18} {:>16.1} {:>16.1}",
            "images/s", r.images_per_sec, report.images_per_sec
        )?;
    } else {
        writeln!(out, "images    {}", report.images)?;
        writeln!(out, "top-1     {:.2} %", 100.0 * report.top1)?;
        writeln!(out, "top-5     {:.2} %", 100.0 * report.top5)?;
        writeln!(out, "images/s  {:.1}", report.images_per_sec)?;
    }
    if !args.json && !report.skipped.is_empty() {
        writeln!(out, "skipped   {} unreadable images", report.skipped.len())?;
    }
    Ok(())
}

/// The `--json` output.
#[derive(Serialize)]
struct EvalJson {
    model: String,
    file_bytes: u64,
    images: usize,
    top1: f64,
    top5: f64,
    images_per_sec: f64,
    seconds: f64,
    batch: u64,
    skipped: usize,
    #[serde(flatten)]
    reference: Option<ReferenceJson>,
}

/// The `--reference` part of the `--json` output.
#[derive(Serialize)]
struct ReferenceJson {
    reference: String,
    reference_file_bytes: u64,
    compression_ratio: f64,
    reference_top1: f64,
    reference_top5: f64,
    /// `null` when the two evaluations cover different images.
    agreement: Option<f64>,
    /// Mean `KL(reference ‖ model)` over the images, in nats; `null` as
    /// `agreement`.
    kl_from_reference: Option<f64>,
}

/// Evaluate with a progress bar labelled `what` (hidden when stderr is not
/// a terminal).
fn evaluate_shown(
    model: &Model,
    images: &[LabeledImage],
    opts: &EvalOptions,
    what: &str,
) -> anyhow::Result<EvalReport> {
    let bar = progress::bar(
        images.len() as u64,
        "{msg} {bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
    );
    bar.set_message(what.to_string());
    let report = evaluate_with_progress(model, images, opts, &mut |done| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let report = report?;
    for skipped in &report.skipped {
        eprintln!("warning: skipped {} image: {}", what, skipped.reason);
    }
    Ok(report)
}

/// Write per-image top-5 predictions as TSV, with file names relative to
/// the image folder (as in `labels.tsv`).
/// The file is written atomically, like every output.
fn write_predictions(
    path: &Path,
    images_dir: &Path,
    predictions: &[ImagePrediction],
) -> anyhow::Result<()> {
    let mut out = String::from("file\ttop5\n");
    for p in predictions {
        let file = p.path.strip_prefix(images_dir).unwrap_or(&p.path);
        let top5: Vec<String> = p.top5.iter().map(usize::to_string).collect();
        out.push_str(&format!("{}\t{}\n", file.display(), top5.join(",")));
    }
    write_atomic(path, out.as_bytes())
}
