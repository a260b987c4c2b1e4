//! File formats of sqz: everything that is read from or written to disk.
//!
//! This crate is pure I/O: it turns bytes into the shared [`Model`] type (and
//! the `.sqz` container's encoded layers) and back, validating as it goes,
//! and does no numerical work. See `SQZ.md` for the `.sqz` layout.

mod byte_cursor;
pub mod caffe_net;
pub mod deep_compression;
pub mod detect;
pub mod error;
pub mod model;
pub mod ncnn;
pub mod prototxt;

pub use error::{FormatError, Result};
pub use model::{
    ChannelOrder, Conv, Graph, Layer, Model, Node, Op, Pool, PoolKind, Preprocess, Resize,
};
pub mod caffemodel;
pub mod onnx;
pub(crate) mod relu_fusion;
pub mod sqz;
