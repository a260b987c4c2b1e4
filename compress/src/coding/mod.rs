//! Entropy coding of symbol streams (Deep Compression, step 3).
//!
//! A stream is a sequence of symbols from `0..alphabet` (codebook indices,
//! or gap symbols from [`crate::positions`]). It is stored either raw —
//! every symbol in `ceil(log2(alphabet))` bits — or with a canonical Huffman
//! code whose table costs one code-length byte per alphabet symbol.
//! [`encode_stream`] picks whichever is smaller. Both pack bits most
//! significant bit first and zero-pad the last byte, exactly as the `.sqz`
//! format specifies.

mod bits;
mod huffman;

use crate::CodingError;
use bits::{BitReader, BitWriter};
pub use huffman::{code_lengths as huffman_code_lengths, MAX_CODE_LENGTH};

/// How a stream's symbols are turned into payload bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coding {
    /// Each symbol in exactly `bits` bits, `bits = ceil(log2(alphabet))`
    /// (see [`raw_bits`]).
    Raw { bits: u8 },
    /// Canonical Huffman code: `code_lengths[s]` is the code length of
    /// symbol `s` (0 = absent), one entry per alphabet symbol, at most
    /// [`MAX_CODE_LENGTH`]. Codes are assigned as in DEFLATE.
    Huffman { code_lengths: Vec<u8> },
}

/// A coded stream: the coding and the packed bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coded {
    /// How `payload` was produced.
    pub coding: Coding,
    /// Packed bits, most significant first, last byte zero-padded.
    pub payload: Vec<u8>,
}

/// Bytes a coded stream takes when stored: its payload plus, for Huffman,
/// one code-length byte per alphabet symbol. This is the size
/// [`encode_stream`] minimises (container headers not included).
pub fn coded_size_bytes(coded: &Coded) -> usize {
    coded.payload.len() + table_bytes(&coded.coding)
}

/// Bytes the coding's table takes: one per alphabet symbol for Huffman,
/// none for raw.
fn table_bytes(coding: &Coding) -> usize {
    match coding {
        Coding::Raw { .. } => 0,
        Coding::Huffman { code_lengths } => code_lengths.len(),
    }
}

/// Bits per symbol of a raw stream over `alphabet` symbols:
/// `ceil(log2(alphabet))`, and 0 for alphabets of 0 or 1 symbols.
pub fn raw_bits(alphabet: u32) -> u8 {
    if alphabet <= 1 {
        0
    } else {
        (32 - (alphabet - 1).leading_zeros()) as u8
    }
}

/// Codes `symbols` (each below `alphabet`) raw or with a canonical Huffman
/// code, whichever gives the smaller [`coded_size_bytes`] (raw on a tie,
/// and for an empty stream). The Huffman code is an optimal one limited to
/// [`MAX_CODE_LENGTH`] bits; a stream of one repeated symbol codes it in 1
/// bit. Deterministic.
///
/// # Panics
/// If a symbol is not below `alphabet` (a caller bug, not a data error).
pub fn encode_stream(symbols: &[u32], alphabet: u32) -> Coded {
    let (coding, _) = choose_coding(symbols, alphabet);
    let payload = pack(symbols, &coding);
    Coded { coding, payload }
}

/// The coding [`encode_stream`] would use and the resulting
/// [`coded_size_bytes`], without producing the payload.
///
/// # Panics
/// If a symbol is not below `alphabet`.
pub(crate) fn choose_coding(symbols: &[u32], alphabet: u32) -> (Coding, usize) {
    if let Some(&bad) = symbols.iter().find(|&&s| s >= alphabet) {
        panic!("symbol {bad} is outside the alphabet of {alphabet}");
    }
    let bits = raw_bits(alphabet);
    let raw_size = (symbols.len() as u64 * u64::from(bits)).div_ceil(8) as usize;
    let raw = (Coding::Raw { bits }, raw_size);
    // The Huffman table alone costs `alphabet` bytes; skipping hopeless
    // cases also bounds the histogram by the stream's own size.
    if alphabet as usize >= raw_size {
        return raw;
    }
    let mut freqs = vec![0u64; alphabet as usize];
    for &s in symbols {
        freqs[s as usize] += 1;
    }
    let occurring = freqs.iter().filter(|f| **f > 0).count();
    if occurring as u64 > 1 << MAX_CODE_LENGTH {
        return raw;
    }
    let code_lengths = huffman::code_lengths(&freqs);
    let payload_bits: u64 = freqs
        .iter()
        .zip(&code_lengths)
        .map(|(f, l)| f * u64::from(*l))
        .sum();
    let huffman_size = alphabet as usize + payload_bits.div_ceil(8) as usize;
    if huffman_size < raw_size {
        (Coding::Huffman { code_lengths }, huffman_size)
    } else {
        raw
    }
}

/// Packs `symbols` with `coding` (which covers every symbol).
pub(crate) fn pack(symbols: &[u32], coding: &Coding) -> Vec<u8> {
    match coding {
        Coding::Raw { bits } => {
            let bits = u32::from(*bits);
            let mut writer = BitWriter::with_capacity(
                (symbols.len() as u64 * u64::from(bits)).div_ceil(8) as usize,
            );
            if bits > 0 {
                for &s in symbols {
                    writer.write(s, bits);
                }
            }
            writer.finish()
        }
        Coding::Huffman { code_lengths } => {
            let codes = huffman::canonical_codes(code_lengths);
            let mut writer = BitWriter::with_capacity(symbols.len() / 2);
            for &s in symbols {
                writer.write(codes[s as usize], u32::from(code_lengths[s as usize]));
            }
            writer.finish()
        }
    }
}

/// Decodes `count` symbols over `alphabet` from `payload` coded with
/// `coding`, validating everything: the raw width must be
/// `ceil(log2(alphabet))`; Huffman lengths must number `alphabet`, be at
/// most [`MAX_CODE_LENGTH`], satisfy Kraft and include a code if
/// `count > 0`; every symbol must be below `alphabet` and every code valid;
/// the payload must hold exactly the coded bits plus zero padding.
///
/// Never panics. Allocates at most `count` symbols (the caller bounds
/// `count`), and only after checking the payload is long enough to hold
/// them.
pub fn decode_stream(
    coding: &Coding,
    payload: &[u8],
    count: usize,
    alphabet: u32,
) -> Result<Vec<u32>, CodingError> {
    if alphabet == 0 && count > 0 {
        return Err(CodingError::BadAlphabet { alphabet });
    }
    match coding {
        Coding::Raw { bits } => decode_raw(*bits, payload, count, alphabet),
        Coding::Huffman { code_lengths } => decode_huffman(code_lengths, payload, count, alphabet),
    }
}

/// Raw decoding for [`decode_stream`].
fn decode_raw(
    bits: u8,
    payload: &[u8],
    count: usize,
    alphabet: u32,
) -> Result<Vec<u32>, CodingError> {
    let expected = raw_bits(alphabet);
    if bits != expected {
        return Err(CodingError::RawBits {
            bits,
            alphabet,
            expected,
        });
    }
    let needed = (count as u128 * u128::from(bits)).div_ceil(8);
    if (payload.len() as u128) < needed {
        let index = (payload.len() as u128 * 8 / u128::from(bits)) as usize;
        return Err(CodingError::Truncated { index, count });
    }
    let mut reader = BitReader::new(payload);
    let mut symbols = Vec::with_capacity(count);
    for index in 0..count {
        let symbol = if bits == 0 {
            0
        } else {
            reader.read(u32::from(bits))
        };
        if symbol >= alphabet {
            return Err(CodingError::SymbolOutOfRange {
                symbol,
                index,
                alphabet,
            });
        }
        symbols.push(symbol);
    }
    reader.finish()?;
    Ok(symbols)
}

/// Huffman decoding for [`decode_stream`].
fn decode_huffman(
    code_lengths: &[u8],
    payload: &[u8],
    count: usize,
    alphabet: u32,
) -> Result<Vec<u32>, CodingError> {
    huffman::validate_lengths(code_lengths, alphabet)?;
    if count == 0 {
        return BitReader::new(payload).finish().map(|()| Vec::new());
    }
    if code_lengths.iter().all(|&l| l == 0) {
        return Err(CodingError::EmptyCode { count });
    }
    // Every code takes at least one bit.
    if count as u128 > payload.len() as u128 * 8 {
        return Err(CodingError::Truncated {
            index: payload.len() * 8,
            count,
        });
    }
    let decoder = huffman::Decoder::new(code_lengths);
    let mut reader = BitReader::new(payload);
    let mut symbols = Vec::with_capacity(count);
    for index in 0..count {
        let symbol = decoder.decode(&mut reader, index)?;
        if reader.overrun() {
            return Err(CodingError::Truncated { index, count });
        }
        symbols.push(symbol);
    }
    reader.finish()?;
    Ok(symbols)
}
