//! `report`: an HTML page comparing a compressed `.sqz` model with its
//! original (sizes per stage, per-layer density and bits, weight histograms
//! with the shared centroids, accuracy side by side).

use std::path::PathBuf;

use anyhow::Context;
use formats::sqz::{read_sqz, size_breakdown};

use super::{load, ModelArgs};
use crate::container::decode_model;
use crate::eval::{evaluate, EvalOptions, DEFAULT_BATCH};
use crate::labels::read_labels;
use crate::report::output::{check_replaceable, write_report_dir, INDEX};
use crate::report::{page, Accuracy, ModelSource, ReportData};

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The original model (any format `eval` reads).
    #[command(flatten)]
    original: ModelArgs,
    /// The compressed model, a `.sqz` file made from ORIG.
    #[arg(value_name = "COMPRESSED")]
    compressed: PathBuf,
    /// Image folder with a `labels.tsv` to measure both accuracies on.
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// Evaluate only the first N images of `labels.tsv`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Images per engine call.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    batch: u64,
    /// Report directory to write (holding `index.html`); replaced if it
    /// holds a previous report.
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
}

/// Run `report`.
pub fn run(args: Args) -> anyhow::Result<()> {
    check_replaceable(&args.output, &[INDEX])?;
    let original = load::load(&args.original)?;
    let sqz_context = || {
        format!(
            "cannot load compressed model {} (it must be a .sqz file)",
            args.compressed.display()
        )
    };
    let bytes = load::read_file(&args.compressed).with_context(sqz_context)?;
    let file = read_sqz(&bytes).with_context(sqz_context)?;
    let compressed = decode_model(&file).with_context(sqz_context)?;

    // Checks that the models match before spending time on evaluation.
    let data = ReportData::new(
        ModelSource {
            path: &args.original.model,
            model: &original,
            file_bytes: load::model_bytes(&args.original.model),
        },
        ModelSource {
            path: &args.compressed,
            model: &compressed,
            file_bytes: bytes.len() as u64,
        },
        &size_breakdown(&file),
    )?;
    let mut images = read_labels(&args.images.join("labels.tsv"), None)
        .context("cannot read the image labels")?;
    if let Some(limit) = args.limit {
        images.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    // Both models must see the same images, so an unreadable one is an error.
    let opts = EvalOptions {
        batch_size: usize::try_from(args.batch)?,
        skip_bad: false,
    };
    let original_eval =
        evaluate(&original, &images, &opts).context("cannot evaluate the original model")?;
    let compressed_eval =
        evaluate(&compressed, &images, &opts).context("cannot evaluate the compressed model")?;
    let accuracy = Accuracy {
        images: compressed_eval.images,
        original: (original_eval.top1, original_eval.top5),
        compressed: (compressed_eval.top1, compressed_eval.top5),
        agreement: compressed_eval
            .top1_agreement(&original_eval)
            .unwrap_or(f64::NAN),
    };

    let html = page::render(&data, &accuracy)?;
    write_report_dir(&args.output, &[(INDEX, html.as_bytes())])?;
    println!("wrote {}", args.output.join(INDEX).display());
    Ok(())
}
