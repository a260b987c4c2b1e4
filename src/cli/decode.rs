//! `decode`: rebuild a compressed model's dense layers and export them,
//! choosing the format from the output's extension: a dense `.sqz`
//! (lossless), ONNX (for other runtimes), a Caffe `.caffemodel` with its
//! network definition written beside it, or safetensors weights with masks,
//! codes and shared values for fine-tuning in PyTorch (`formats/SAFETENSORS.md`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use formats::caffemodel::{write_caffemodel, write_prototxt};
use formats::onnx::write_onnx;
use formats::safetensors::write_safetensors;
use formats::sqz::{encode_model_dense, write_sqz};
use formats::Model;
use serde::Serialize;

use super::load;
use super::output::{check_output, write_atomic};
use super::ModelArgs;

/// Arguments of `decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Output file; its extension picks the format: `.sqz` (every layer
    /// stored dense), `.onnx`, `.caffemodel` (plus the network definition
    /// as `.prototxt` beside it, e.g. `out.caffemodel` and `out.prototxt`),
    /// or `.safetensors` (weights, biases, masks, codes and shared values;
    /// read back with `--graph` naming this input).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Print one JSON object (`files` with `path` and `bytes`, `weights`)
    /// instead of text.
    #[arg(long)]
    json: bool,
}

/// An export format, known by its file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    Sqz,
    Onnx,
    Caffemodel,
    Safetensors,
}

impl Export {
    /// The format `path`'s extension asks for.
    fn of(path: &Path) -> anyhow::Result<Export> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Ok(match extension.as_deref() {
            Some("sqz") => Export::Sqz,
            Some("onnx") => Export::Onnx,
            Some("caffemodel") => Export::Caffemodel,
            Some("safetensors") => Export::Safetensors,
            _ => bail!(
                "cannot tell the output format of {}: use the extension .sqz (dense sqz), .onnx (ONNX), .caffemodel (Caffe, with a .prototxt beside it) or .safetensors (weights for PyTorch)",
                path.display()
            ),
        })
    }

    /// The files to write for `model`, as (path, content) pairs, the main
    /// output first.
    fn files(self, model: &Model, output: &Path) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        Ok(match self {
            Export::Sqz => vec![(output.to_path_buf(), write_sqz(&encode_model_dense(model)))],
            Export::Onnx => vec![(output.to_path_buf(), write_onnx(model)?)],
            Export::Safetensors => vec![(output.to_path_buf(), write_safetensors(model)?)],
            Export::Caffemodel => vec![
                (output.to_path_buf(), write_caffemodel(model)?),
                (
                    output.with_extension("prototxt"),
                    write_prototxt(model)?.into_bytes(),
                ),
            ],
        })
    }
}

/// One written file in `decode --json`.
#[derive(Serialize)]
struct WrittenJson {
    path: String,
    bytes: usize,
}

/// The `decode --json` output: the files written and the dense weight count.
#[derive(Serialize)]
struct DecodeJson {
    files: Vec<WrittenJson>,
    weights: usize,
}

/// Run `decode`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let export = Export::of(&args.output)?;
    check_output(&args.output, &args.model)?;
    if export == Export::Caffemodel {
        check_output(&args.output.with_extension("prototxt"), &args.model)?;
    }
    let model = load::load(&args.model)?;
    // Encode everything before writing anything, so a model the format
    // cannot express leaves no file behind.
    let files = export.files(&model, &args.output)?;
    for (path, bytes) in &files {
        write_atomic(path, bytes)?;
    }
    let mut stdout = std::io::stdout();
    if args.json {
        let report = DecodeJson {
            files: files
                .iter()
                .map(|(path, bytes)| WrittenJson {
                    path: path.display().to_string(),
                    bytes: bytes.len(),
                })
                .collect(),
            weights: model.weight_count(),
        };
        writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    for (path, bytes) in &files {
        writeln!(stdout, "wrote {} ({} bytes)", path.display(), bytes.len())?;
    }
    writeln!(stdout, "{} weights dense", model.weight_count())?;
    Ok(())
}
