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
    load_model(&args.model, args.prototxt.as_deref())
}

/// Load the model at `path` (any format), with `prototxt` for Caffe-based
/// models.
pub fn load_model(path: &Path, prototxt: Option<&Path>) -> anyhow::Result<Model> {
    load_detailed(path, prototxt).map(|read| read.model)
}

/// [`load_model`], keeping what [`formats::read_model_detailed`] reports
/// (for a `.sqz`, its stored form and size breakdown).
pub fn load_detailed(path: &Path, prototxt: Option<&Path>) -> anyhow::Result<ReadModel> {
    let options = ReadOptions {
        prototxt: prototxt.map(Path::to_path_buf),
        preprocess: None,
    };
    let read = formats::read_model_detailed(path, &options)
        .with_context(|| format!("cannot load model {}", path.display()))?;
    if read.preprocess_assumed {
        super::progress::note(&format!(
            "{} records no preprocessing; using torchvision's (override with --preprocess)",
            path.display()
        ));
    }
    Ok(read)
}
