//! Loading a model from any supported path, whatever its format.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use formats::caffemodel::read_caffemodel_path;
use formats::deep_compression::read_deep_compression;
use formats::detect::{detect_format, ModelFormat};
use formats::ncnn::read_ncnn;
use formats::onnx::{read_onnx_path, PreprocessSource};
use formats::sqz::read_sqz;
use formats::{Model, Preprocess};

use super::ModelArgs;
use crate::container::decode_model;

/// Largest model file read into memory (SqueezeNet's are a few MB).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Load the model named on the command line.
pub fn load(args: &ModelArgs) -> anyhow::Result<Model> {
    load_model(&args.model, args.prototxt.as_deref())
}

/// Load the model at `path`, detecting its format from its content and
/// extension. `prototxt` is only meaningful for Caffe-based models (`.net`,
/// `.caffemodel`) and rejected otherwise, so a misplaced flag is noticed.
pub fn load_model(path: &Path, prototxt: Option<&Path>) -> anyhow::Result<Model> {
    let context = || format!("cannot load model {}", path.display());
    let format = detect_format(path).with_context(context)?;
    if prototxt.is_some()
        && !matches!(
            format,
            ModelFormat::DeepCompression | ModelFormat::Caffemodel
        )
    {
        bail!("--prototxt only applies to Caffe-based .net and .caffemodel models, and {} is {format:?}", path.display());
    }
    let model = match format {
        ModelFormat::Ncnn => read_ncnn(path).map_err(anyhow::Error::from),
        ModelFormat::DeepCompression => read_deep_compression(path, prototxt).map_err(anyhow::Error::from),
        ModelFormat::Caffemodel => read_caffemodel_path(path, prototxt).map_err(anyhow::Error::from),
        ModelFormat::Onnx => read_onnx_path(path, Some(Preprocess::torchvision())).map(|(model, source)| {
            if source == PreprocessSource::Fallback {
                super::progress::note(&format!("{} records no preprocessing; using torchvision's (override with --preprocess)", path.display()));
            }
            model
        }).map_err(anyhow::Error::from),
        ModelFormat::Sqz => read_file(path).and_then(|bytes| {
            let file = read_sqz(&bytes)?;
            Ok(decode_model(&file)?)
        }),
    };
    model.with_context(context)
}

/// Read a whole file, refusing sizes no model file has.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    anyhow::ensure!(
        len <= MAX_FILE_BYTES,
        "{} is {len} bytes, more than any model file sqz reads",
        path.display()
    );
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The files holding a model's weights: for ncnn the `.param` and its
/// `.bin`, otherwise the file itself (a Caffe prototxt is a shared
/// definition and not counted, as Han's "660 KB" does not count it).
pub fn model_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    if detect_format(path).ok() == Some(ModelFormat::Ncnn) {
        files.push(path.with_extension("bin"));
    }
    files
}

/// Every file reading the model at `path` may use: its [`model_files`],
/// the prototxt given, and for Caffe-based models without one, any
/// `.prototxt` beside it (the reader picks one from there). Outputs must
/// not overwrite any of them.
pub fn input_files(path: &Path, prototxt: Option<&Path>) -> Vec<PathBuf> {
    let mut files = model_files(path);
    files.extend(prototxt.map(Path::to_path_buf));
    let caffe = matches!(
        detect_format(path),
        Ok(ModelFormat::DeepCompression | ModelFormat::Caffemodel)
    );
    if caffe && prototxt.is_none() {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let beside = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path());
        files.extend(beside.filter(|p| p.extension().is_some_and(|e| e == "prototxt")));
    }
    files
}

/// Size on disk of the model at `path`: the sum over [`model_files`].
pub fn model_bytes(path: &Path) -> u64 {
    model_files(path)
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}
