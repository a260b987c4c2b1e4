//! File formats of sqz: everything that is read from or written to disk.
//!
//! This crate is pure I/O: it turns bytes into the shared [`Model`] type and
//! back, validating as it goes. [`read_model`] reads any supported format
//! from a path. It owns the `.sqz` container entirely ([`sqz`]: layout,
//! stream coding, lossless `Model` ↔ file conversion; see `SQZ.md`) and
//! does no numerical work beyond that lossless coding.

mod blob_use;
mod byte_cursor;
pub mod caffe_net;
pub mod deep_compression;
pub mod detect;
pub mod error;
pub(crate) mod fold;
pub mod model;
pub mod ncnn;
pub mod prototxt;
pub(crate) mod ranks;
pub mod read;

pub use error::{FormatError, Result};
pub use model::{
    ChannelOrder, Clip, Conv, Graph, Layer, Lrn, Model, Node, Op, Pool, PoolKind, Preprocess,
    Resize,
};
pub use read::{read_model, read_model_detailed, ReadModel, ReadOptions};
pub mod caffemodel;
pub mod onnx;
pub(crate) mod relu_fusion;
pub mod safetensors;
pub mod sqz;
