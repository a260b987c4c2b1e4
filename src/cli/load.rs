//! Loading the model named on the command line: [`formats::read_model_detailed`]
//! with the command's options, the path added to errors, and a note when an
//! ONNX model's preprocessing had to be assumed.

use std::path::Path;

use anyhow::Context;
use formats::{Model, ReadModel, ReadOptions};

pub use formats::read::{input_files, model_bytes};

use super::ModelArgs;

/// Load the model named on the command line.
pub fn load(args: &ModelArgs) -> anyhow::Result<Model> {
    load_detailed(args).map(|read| read.model)
}

/// Load the model at `path` (any format but safetensors), with `prototxt`
/// for Caffe-based models.
pub fn load_model(path: &Path, prototxt: Option<&Path>) -> anyhow::Result<Model> {
    let options = ReadOptions {
        prototxt: prototxt.map(Path::to_path_buf),
        ..ReadOptions::default()
    };
    read(path, &options).map(|read| read.model)
}

/// [`load`], keeping what [`formats::read_model_detailed`] reports (for a
/// `.sqz`, its stored form and size breakdown).
pub fn load_detailed(args: &ModelArgs) -> anyhow::Result<ReadModel> {
    read(&args.model, &args.read_options())
}

/// [`formats::read_model_detailed`] with the path in errors and a note
/// when the preprocessing was assumed.
fn read(path: &Path, options: &ReadOptions) -> anyhow::Result<ReadModel> {
    let read = formats::read_model_detailed(path, options)
        .with_context(|| format!("cannot load model {}", path.display()))?;
    if read.preprocess_assumed {
        super::progress::note(&format!(
            "{} records no preprocessing; using torchvision's (override with --preprocess)",
            path.display()
        ));
    }
    Ok(read)
}
