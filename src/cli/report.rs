//! `report`: an HTML page comparing a compressed `.sqz` model with its
//! original (sizes per stage, per-layer density and bits, weight histograms
//! with the shared centroids, accuracy side by side).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::options::ImageSetArgs;
use super::{load, ModelArgs};
use crate::eval::{evaluate, EvalOptions};
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
    #[command(flatten)]
    set: ImageSetArgs,
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
    let read = formats::read_model_detailed(&args.compressed, &formats::ReadOptions::default())
        .with_context(sqz_context)?;
    let Some(sqz) = read.sqz else {
        anyhow::bail!("{}: it is a {:?} model", sqz_context(), read.format);
    };
    let compressed = read.model;

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
            file_bytes: sqz.breakdown.total() as u64,
        },
        &sqz.breakdown,
    )?;
    let images = args.set.labelled_images()?;
    // Both models must see the same images, so an unreadable one is an error.
    let opts = EvalOptions {
        batch_size: args.set.batch_size(),
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
    writeln!(
        std::io::stdout(),
        "wrote {}",
        args.output.join(INDEX).display()
    )?;
    Ok(())
}
