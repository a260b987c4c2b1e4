//! Why a coded stream could not be decoded.

use thiserror::Error;

/// A coded symbol stream (or the positions it describes) is malformed.
/// Every variant renders as one line saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodingError {
    /// The alphabet cannot code this stream (empty alphabet with symbols,
    /// or a gap alphabet below 2).
    #[error("alphabet size {alphabet} is invalid here")]
    BadAlphabet { alphabet: u32 },
    /// A raw stream's bit width differs from `ceil(log2(alphabet))`.
    #[error("raw coding declares {bits} bits per symbol but alphabet {alphabet} needs {expected}")]
    RawBits {
        bits: u8,
        alphabet: u32,
        expected: u8,
    },
    /// A Huffman table does not have one code length per alphabet symbol.
    #[error("Huffman table has {lengths} code lengths for an alphabet of {alphabet}")]
    TableSize { lengths: usize, alphabet: u32 },
    /// A Huffman code length exceeds the maximum.
    #[error("Huffman code length {length} of symbol {symbol} exceeds the maximum of {max}")]
    CodeTooLong { symbol: u32, length: u8, max: u8 },
    /// The Huffman code lengths violate the Kraft inequality.
    #[error("Huffman code lengths over-subscribe the code space (Kraft sum above 1)")]
    OverSubscribed,
    /// A nonempty stream has a Huffman table without any code.
    #[error("Huffman table has no codes but the stream holds {count} symbols")]
    EmptyCode { count: usize },
    /// The payload holds a bit pattern that is no code of the table.
    #[error("invalid Huffman code for symbol number {index}")]
    InvalidCode { index: usize },
    /// A decoded symbol is outside the alphabet.
    #[error("symbol {symbol} at index {index} is outside the alphabet of {alphabet}")]
    SymbolOutOfRange {
        symbol: u32,
        index: usize,
        alphabet: u32,
    },
    /// The payload ends before `count` symbols are decoded.
    #[error("payload too short: ends before symbol number {index} of {count}")]
    Truncated { index: usize, count: usize },
    /// The payload has whole bytes left after the last symbol.
    #[error("payload has {extra} bytes after the last symbol")]
    TrailingBytes { extra: usize },
    /// The padding bits of the last byte are not zero.
    #[error("padding bits after the last symbol are not zero")]
    NonZeroPadding,
    /// A gap stream places an entry at or beyond the end of the layer.
    #[error("sparse entry at position {position} lies outside a layer of {len} weights")]
    PositionOutOfRange { position: u64, len: usize },
    /// A gap stream ends with skip symbols, which are never coded.
    #[error("gap stream ends with skip symbols after its last entry")]
    TrailingSkips,
}
