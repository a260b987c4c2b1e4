//! Loading a model from any supported path, whatever its format.

use std::path::Path;

use anyhow::{bail, Context};
use formats::deep_compression::read_deep_compression;
use formats::detect::{detect_format, ModelFormat};
use formats::ncnn::read_ncnn;
use formats::Model;

use super::ModelArgs;

/// Load the model named on the command line.
pub fn load(args: &ModelArgs) -> anyhow::Result<Model> {
    load_model(&args.model, args.prototxt.as_deref())
}

/// Load the model at `path`, detecting its format from its content and
/// extension. `prototxt` is only meaningful for Deep Compression `.net`
/// files (and rejected otherwise, so a misplaced flag is noticed).
pub fn load_model(path: &Path, prototxt: Option<&Path>) -> anyhow::Result<Model> {
    let context = || format!("cannot load model {}", path.display());
    let format = detect_format(path).with_context(context)?;
    if prototxt.is_some() && format != ModelFormat::DeepCompression {
        bail!(
            "--prototxt only applies to Deep Compression .net models, and {} is {format:?}",
            path.display()
        );
    }
    let model = match format {
        ModelFormat::Ncnn => read_ncnn(path),
        ModelFormat::DeepCompression => read_deep_compression(path, prototxt),
        ModelFormat::Sqz | ModelFormat::Onnx | ModelFormat::Caffemodel => {
            bail!(
                "{}: {format:?} models are not supported yet",
                path.display()
            )
        }
    };
    model.with_context(context)
}
