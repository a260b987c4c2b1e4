//! Where the bytes of a `.sqz` file go, for `inspect`-style reports and for
//! measuring the container's overhead. The numbers come from the writer
//! itself, so they always add up to the length of [`write_sqz`](super::write_sqz)'s output.

use super::write::encode;
use super::SqzFile;

/// Bytes of each part of a `.sqz` file; [`total`](Self::total) equals the
/// file length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeBreakdown {
    /// Fixed header, section count and the model section's directory entry.
    pub container: usize,
    /// The string table holding every name once.
    pub strings: usize,
    /// Graph nodes (names as string indices) and their hyper-parameters.
    pub graph: usize,
    /// The preprocessing preset.
    pub preprocess: usize,
    /// One entry per layer, in file order.
    pub layers: Vec<LayerBytes>,
}

impl SizeBreakdown {
    /// Bytes of the whole file.
    pub fn total(&self) -> usize {
        self.container
            + self.strings
            + self.graph
            + self.preprocess
            + self.layers.iter().map(LayerBytes::total).sum::<usize>()
    }
}

/// Bytes one layer takes in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerBytes {
    /// The layer's name.
    pub name: String,
    /// Directory entry, name index, shape and flags.
    pub header: usize,
    /// Bias values and their count.
    pub bias: usize,
    /// Dense weights, sparse nonzero values or codebook, with their count.
    pub values: usize,
    /// Position stream of the sparse kinds (zero otherwise).
    pub positions: StreamBytes,
    /// Code stream of the quantized kinds (zero otherwise).
    pub codes: StreamBytes,
}

impl LayerBytes {
    /// Bytes of the whole layer.
    pub fn total(&self) -> usize {
        self.header + self.bias + self.values + self.positions.total() + self.codes.total()
    }
}

/// Bytes of an encoded stream: everything before the payload, and the payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamBytes {
    /// Count, alphabet, coding byte, code length table and payload length.
    pub header: usize,
    /// The coded symbols.
    pub payload: usize,
}

impl StreamBytes {
    /// Header plus payload.
    pub fn total(&self) -> usize {
        self.header + self.payload
    }
}

/// The size breakdown of the bytes [`write_sqz`](super::write_sqz) produces for `file`.
pub fn size_breakdown(file: &SqzFile) -> SizeBreakdown {
    encode(file).1
}
