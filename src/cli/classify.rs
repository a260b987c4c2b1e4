//! `classify`: the five most likely classes of each image, with names and
//! softmax probabilities.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::{load, ModelArgs, PreprocessPreset};
use crate::engine;
use crate::eval::{class_probabilities, output_rows, top_k, DEFAULT_BATCH, TOP_K};
use crate::imaging::load_batch;
use crate::labels::ClassTable;

/// Arguments of `classify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Images to classify (JPEG or PNG).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Class names table (columns class_index, wnid, name); default:
    /// `$SQZ_SHARED/data/imagenet-classes.tsv`, else
    /// `../shared/data/imagenet-classes.tsv`.
    #[arg(long, value_name = "FILE")]
    classes: Option<PathBuf>,
    /// Preprocessing to use instead of the model's own.
    #[arg(long, value_enum, value_name = "PRESET")]
    preprocess: Option<PreprocessPreset>,
    /// Print one JSON object per image (`image`, `top5` with `class`,
    /// `name` and `probability`) instead of text.
    #[arg(long)]
    json: bool,
}

/// Run `classify`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut model = load::load(&args.model)?;
    if let Some(preset) = args.preprocess {
        model.preprocess = preset.preprocess();
    }
    let classes = match &args.classes {
        Some(path) => Some(ClassTable::read(path)?),
        None => default_classes()?,
    };
    if classes.is_none() {
        super::progress::note("no class names found (give --classes FILE or set SQZ_SHARED); printing class indices only");
    }
    let mut out = std::io::stdout().lock();
    for chunk in args.images.chunks(DEFAULT_BATCH) {
        let output = engine::forward(&model, &load_batch(chunk, &model.preprocess)?)?;
        let probabilities = class_probabilities(&model, &output);
        for ((path, scores), probabilities) in
            chunk.iter().zip(output_rows(&output)).zip(&probabilities)
        {
            // Softmax keeps the order, so the best scores are the most
            // probable classes.
            let top5 = top_k(scores, TOP_K);
            let name = |class: usize| {
                classes.as_ref().map(|t| {
                    t.get(class)
                        .map_or("(not in the class table)", |c| c.name.as_str())
                })
            };
            if args.json {
                let json = ImageJson {
                    image: path.display().to_string(),
                    top5: top5
                        .iter()
                        .map(|&class| ClassJson {
                            class,
                            name: classes
                                .as_ref()
                                .and_then(|t| t.get(class))
                                .map(|c| c.name.as_str()),
                            probability: probabilities[class],
                        })
                        .collect(),
                };
                writeln!(out, "{}", serde_json::to_string(&json)?)?;
                continue;
            }
            writeln!(out, "{}", path.display())?;
            for class in top5 {
                match name(class) {
                    Some(name) => {
                        writeln!(out, "  {:.4}  {class:>4}  {name}", probabilities[class])?
                    }
                    None => writeln!(out, "  {:.4}  {class:>4}", probabilities[class])?,
                }
            }
        }
    }
    Ok(())
}

/// One image of the `--json` output.
#[derive(Serialize)]
struct ImageJson<'a> {
    image: String,
    top5: Vec<ClassJson<'a>>,
}

/// One of an image's best classes; `name` is `null` without a class table
/// or for a class it does not list.
#[derive(Serialize)]
struct ClassJson<'a> {
    class: usize,
    name: Option<&'a str>,
    probability: f64,
}

/// The default class table, if one of the default locations has it.
fn default_classes() -> anyhow::Result<Option<ClassTable>> {
    let relative = Path::new("data/imagenet-classes.tsv");
    let candidates = std::env::var_os("SQZ_SHARED")
        .map(|dir| PathBuf::from(dir).join(relative))
        .into_iter();
    let candidates = candidates.chain([Path::new("../shared").join(relative)]);
    for path in candidates {
        if path.is_file() {
            return ClassTable::read(&path)
                .map(Some)
                .context("cannot read the default class names");
        }
    }
    Ok(None)
}
