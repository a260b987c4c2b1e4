//! The `.sqz` container: a compressed model as Deep Compression stores it.
//!
//! A [`SqzFile`] holds the graph and preprocessing of a [`Model`](crate::Model)
//! and, per layer, an [`EncodedLayer`]: its weights stored dense, sparse,
//! quantized onto a codebook, or both, with index streams as [`Stream`]s
//! (raw bit-packed or canonical-Huffman coded). This module owns the whole
//! format: the byte layout (specified in `formats/SQZ.md`), the stream
//! coding ([`coding`]) and the lossless conversion from and to a `Model`.
//!
//! - [`encode_model`] turns a model into a [`SqzFile`], every layer in its
//!   smallest storage kind; [`decode_model`] rebuilds the dense model.
//! - [`write_sqz`] serialises a file (pure, deterministic);
//!   [`read_sqz`] parses one, checking checksums, bounds and
//!   [`SqzFile::validate`]'s consistency rules, and never panics.
//! - [`size_breakdown`] says where the bytes go (container, names, graph,
//!   and per layer header, bias, values, positions and codes), for
//!   `inspect`. [`Stream::stored_bytes`] and [`EncodedLayer::stored_bytes`]
//!   count the same bytes for one stream or layer; they are the only cost
//!   the encoder's choices use.
//! - The `MAX_*` constants are the format's limits.

use crate::model::{Graph, Preprocess};
use half::f16;

/// A whole `.sqz` file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct SqzFile {
    /// Topology; conv nodes refer to `layers` by index.
    pub graph: Graph,
    /// Preprocessing preset recorded with the model.
    pub preprocess: Preprocess,
    /// One encoded layer per [`Layer`](crate::Layer) of the model, in order.
    pub layers: Vec<EncodedLayer>,
}

/// One layer's parameters in stored form.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedLayer {
    /// Layer name, unique in the model.
    pub name: String,
    /// `[out_channels, in_channels, kernel_h, kernel_w]`.
    pub shape: [usize; 4],
    /// One bias per output channel.
    pub bias: FloatVec,
    /// The weights.
    pub weights: WeightStorage,
}

/// A vector of floats stored at float32 or float16 precision.
#[derive(Debug, Clone, PartialEq)]
pub enum FloatVec {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

impl FloatVec {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            FloatVec::F32(v) => v.len(),
            FloatVec::F16(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values widened to float32.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            FloatVec::F32(v) => v.clone(),
            FloatVec::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// Bytes these values take in a file.
    pub fn stored_bytes(&self) -> usize {
        match self {
            FloatVec::F32(v) => 4 * v.len(),
            FloatVec::F16(v) => 2 * v.len(),
        }
    }
}

/// How a layer's `shape`-sized dense weight array is stored.
///
/// Sparse kinds list the nonzero positions of the flattened
/// `[out][in][kh][kw]` array as a gap stream (see [`Stream`] and `SQZ.md`);
/// every other position is `0.0`. Quantized kinds store one codebook index
/// per weight (dense) or per nonzero (sparse).
#[derive(Debug, Clone, PartialEq)]
pub enum WeightStorage {
    /// Every weight, in order.
    Dense(FloatVec),
    /// Nonzero positions plus their values, in position order.
    Sparse { positions: Stream, values: FloatVec },
    /// A codebook and one index into it per weight.
    Quantized { codebook: FloatVec, codes: Stream },
    /// Nonzero positions plus one codebook index per nonzero. The codebook
    /// holds only nonzero shared values; the pruned zero is implicit.
    SparseQuantized {
        codebook: FloatVec,
        positions: Stream,
        codes: Stream,
    },
}

/// A sequence of `count` symbols from the alphabet `0..alphabet`, coded.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Number of symbols in the stream.
    pub count: u64,
    /// Size of the alphabet; every symbol is below it.
    pub alphabet: u32,
    /// How the symbols are turned into `payload` bits.
    pub coding: StreamCoding,
    /// The coded bits, packed most significant bit first, last byte
    /// zero-padded.
    pub payload: Vec<u8>,
}

/// Entropy coding of a [`Stream`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamCoding {
    /// Each symbol in exactly `bits` bits, most significant bit first.
    Raw { bits: u8 },
    /// Canonical Huffman code: `code_lengths[s]` is the length in bits of
    /// symbol `s`'s code (0 = symbol absent), `alphabet` entries. Codes are
    /// assigned as in DEFLATE: shorter codes first, ties by symbol value.
    Huffman { code_lengths: Vec<u8> },
}

/// Most layers (layer sections) a file may hold.
pub const MAX_LAYERS: usize = 4096;
/// Most weights one layer may have: 2^28.
pub const MAX_WEIGHTS_PER_LAYER: usize = 1 << 28;
/// Largest stream alphabet, and so largest codebook: 2^16.
pub const MAX_ALPHABET: u32 = 1 << 16;
/// Longest canonical Huffman code, in bits.
pub const MAX_CODE_LENGTH: u8 = 24;
/// Most graph nodes.
pub const MAX_NODES: usize = 1 << 16;
/// Longest name (node, blob or layer), in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most bytes of names: in the string table, and separately in the graph
/// counting every reference (so a hostile file cannot expand a short name
/// table into gigabytes of repeated strings).
pub const MAX_TEXT_BYTES: usize = 1 << 24;
/// Largest convolution or pooling kernel, stride or padding.
pub const MAX_HYPERPARAMETER: usize = 65535;

mod breakdown;
mod code_lengths;
pub mod coding;
mod container;
mod decode;
mod encode;
mod graph_codec;
mod layer_section;
mod model_section;
mod preprocess_codec;
pub mod read;
mod stream;
mod strings;
mod validate;
mod wire;
pub mod write;

pub use breakdown::{size_breakdown, LayerBytes, SizeBreakdown, StreamBytes};
pub use container::{MAGIC, OLDEST_VERSION, VERSION};
pub use decode::{decode_layer, decode_model};
pub use encode::{encode_layer, encode_model, encode_model_dense};
pub use read::read_sqz;
pub use write::write_sqz;
