//! Reading a model from a path, whatever its format: the one entry point
//! every caller (CLI, tests, benches, fuzzing) uses.
//!
//! The format is detected from the content, then the extension
//! ([`detect_format`]). An ncnn `.param` is read with the `.bin` beside it;
//! a Deep Compression `.net` or a `.caffemodel` with the prototxt given in
//! [`ReadOptions`] or else the only `.prototxt` beside it; a `.sqz` file is
//! read (after a size check), validated and decoded to dense layers.

use std::path::{Path, PathBuf};

use crate::caffemodel::read_caffemodel_path;
use crate::deep_compression::read_deep_compression;
use crate::detect::{detect_format, ModelFormat};
use crate::ncnn::read_ncnn;
use crate::onnx::{read_onnx_path, PreprocessSource};
use crate::safetensors::read_safetensors_path;
use crate::sqz::{decode_model, read_sqz, size_breakdown, SizeBreakdown, SqzFile};
use crate::{FormatError, Model, Preprocess, Result};

/// Largest `.sqz` or safetensors file read into memory (SqueezeNet's are well under 1 MB).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// How to read a model beyond its path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Caffe prototxt of a `.net` or `.caffemodel` (default: the only
    /// `.prototxt` beside it). Refused for other formats, so a misplaced
    /// prototxt is noticed.
    pub prototxt: Option<PathBuf>,
    /// Preprocessing to use instead of the one the model records (and,
    /// for an ONNX model without any, instead of torchvision's).
    pub preprocess: Option<Preprocess>,
    /// The model giving the graph (any format but safetensors) of a
    /// safetensors file, which holds only weights. Required for, and only
    /// accepted with, a safetensors file; `prototxt` and `preprocess` then
    /// apply to this graph model.
    pub graph: Option<PathBuf>,
}

/// A model read by [`read_model_detailed`], with what the reader learnt
/// on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadModel {
    /// The model, dense.
    pub model: Model,
    /// The format it was read from.
    pub format: ModelFormat,
    /// True when an ONNX model records no preprocessing and none was given
    /// in the options, so torchvision's was assumed.
    pub preprocess_assumed: bool,
    /// For a `.sqz` file: how it stores each layer and where its bytes go.
    pub sqz: Option<SqzStorage>,
}

/// The stored form of a `.sqz` file and its size breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct SqzStorage {
    /// The file as stored: storage kinds, codebooks, streams.
    pub file: SqzFile,
    /// Bytes of each part; its total is the file's length.
    pub breakdown: SizeBreakdown,
}

/// Read the model at `path` in whatever format it is (see the module
/// documentation).
pub fn read_model(path: &Path, options: &ReadOptions) -> Result<Model> {
    read(path, options, false).map(|read| read.model)
}

/// [`read_model`], also returning the format, whether the preprocessing was
/// assumed, and for a `.sqz` file its stored form and size breakdown (what
/// `inspect` shows).
pub fn read_model_detailed(path: &Path, options: &ReadOptions) -> Result<ReadModel> {
    read(path, options, true)
}

/// [`read_model_detailed`], keeping a `.sqz` file's stored form only when
/// `keep_storage` is set (measuring its size breakdown re-encodes it).
fn read(path: &Path, options: &ReadOptions, keep_storage: bool) -> Result<ReadModel> {
    let format = detect_format(path)?;
    let prototxt = options.prototxt.as_deref();
    let caffe = matches!(
        format,
        ModelFormat::DeepCompression | ModelFormat::Caffemodel
    );
    if let Some(graph) = options
        .graph
        .as_ref()
        .filter(|_| format != ModelFormat::Safetensors)
    {
        return Err(FormatError::invalid(format!(
            "a graph model ({}) only applies to safetensors weights, and {} is {format:?}",
            graph.display(),
            path.display()
        )));
    }
    if prototxt.is_some() && !caffe && format != ModelFormat::Safetensors {
        return Err(FormatError::invalid(format!(
            "a prototxt only applies to Caffe-based .net and .caffemodel models, and {} is {format:?}",
            path.display()
        )));
    }
    let mut preprocess_assumed = false;
    let mut sqz = None;
    let mut model = match format {
        ModelFormat::Ncnn => read_ncnn(path)?,
        ModelFormat::DeepCompression => read_deep_compression(path, prototxt)?,
        ModelFormat::Caffemodel => read_caffemodel_path(path, prototxt)?,
        ModelFormat::Onnx => {
            let fallback = options.preprocess.unwrap_or_else(Preprocess::torchvision);
            let (model, source) = read_onnx_path(path, Some(fallback))?;
            preprocess_assumed =
                source == PreprocessSource::Fallback && options.preprocess.is_none();
            model
        }
        ModelFormat::Safetensors => return read_safetensors_with_graph(path, options),
        ModelFormat::Sqz => {
            let file = read_sqz_path(path)?;
            let model = decode_model(&file)?;
            if keep_storage {
                let breakdown = size_breakdown(&file);
                sqz = Some(SqzStorage { file, breakdown });
            }
            model
        }
    };
    if let Some(preprocess) = options.preprocess {
        model.preprocess = preprocess;
    }
    Ok(ReadModel {
        model,
        format,
        preprocess_assumed,
        sqz,
    })
}

/// Read the safetensors weights at `path` onto the graph of the model
/// `options.graph` names (read with the other options).
fn read_safetensors_with_graph(path: &Path, options: &ReadOptions) -> Result<ReadModel> {
    let graph = options.graph.as_deref().ok_or_else(|| {
        FormatError::invalid(format!(
            "{} holds only weights: name the model giving its graph (--graph MODEL)",
            path.display()
        ))
    })?;
    let graph_options = ReadOptions {
        graph: None,
        ..options.clone()
    };
    let graph_model = read(graph, &graph_options, false)?;
    Ok(ReadModel {
        model: read_safetensors_path(path, graph_model.model)?,
        format: ModelFormat::Safetensors,
        preprocess_assumed: graph_model.preprocess_assumed,
        sqz: None,
    })
}

/// Read and validate the `.sqz` file at `path` without decoding its
/// streams, refusing files over [`MAX_FILE_BYTES`] before reading them.
pub fn read_sqz_path(path: &Path) -> Result<SqzFile> {
    read_sqz(&read_bounded(path)?)
}

/// The bytes of the file at `path`, refusing files over [`MAX_FILE_BYTES`]
/// before reading them.
pub(crate) fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| FormatError::io(path, e))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(FormatError::invalid(format!(
            "{} is {len} bytes, more than any model file sqz reads ({MAX_FILE_BYTES})",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| FormatError::io(path, e))
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

/// Every file reading the model at `path` with `options` may use: its
/// [`model_files`], the prototxt given, the graph model's files, and for
/// Caffe-based models without a prototxt, any `.prototxt` beside it (the
/// reader picks one from there). Outputs must not overwrite any of them.
pub fn input_files(path: &Path, options: &ReadOptions) -> Vec<PathBuf> {
    let prototxt = options.prototxt.as_deref();
    let mut files = model_files(path);
    files.extend(prototxt.map(Path::to_path_buf));
    if let Some(graph) = &options.graph {
        let graph_options = ReadOptions {
            graph: None,
            ..options.clone()
        };
        files.extend(input_files(graph, &graph_options));
    }
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
