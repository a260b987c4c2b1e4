//! Entropy coding of the `.sqz` symbol streams (Deep Compression, step 3).
//!
//! A [`Stream`] is a sequence of symbols from `0..alphabet` (codebook
//! indices, or gap symbols from [`positions_to_gaps`]), stored either raw —
//! every symbol in [`raw_bits`] bits — or with a canonical Huffman code.
//! [`encode_stream`] picks whichever takes fewer bytes *in the file*, as
//! [`Stream::stored_bytes`] counts them (header and code length table in
//! their real encoding included); [`encode_positions`] picks the gap
//! alphabet by the same measure. [`decode_stream`] and
//! [`decode_positions`] undo them, validating untrusted input.

mod bits;
mod gaps;
mod huffman;

pub(crate) use bits::{packed_len, BitReader, BitWriter};
pub use gaps::{
    decode_positions, encode_positions, gaps_to_positions, positions_to_gaps, GAP_ALPHABETS,
};
pub(crate) use huffman::check_lengths;
pub use huffman::code_lengths as huffman_code_lengths;

use super::{Stream, StreamCoding, MAX_CODE_LENGTH};
use crate::{FormatError, Result};

/// Bits per symbol of a raw stream over `alphabet` symbols:
/// `ceil(log2(alphabet))`, and 0 for alphabets of 0 or 1 symbols.
pub fn raw_bits(alphabet: u32) -> u8 {
    (u32::BITS - alphabet.saturating_sub(1).leading_zeros()) as u8
}

/// Codes `symbols` (each below `alphabet`) raw or with a canonical Huffman
/// code, whichever stream takes fewer bytes in a `.sqz` file (see
/// [`Stream::stored_bytes`]; raw on a tie, and for an empty stream). The
/// Huffman code is an optimal one limited to [`MAX_CODE_LENGTH`] bits; a
/// stream of one repeated symbol codes it in 1 bit. Deterministic.
///
/// # Panics
/// If a symbol is not below `alphabet` (a caller bug, not a data error).
pub fn encode_stream(symbols: &[u32], alphabet: u32) -> Stream {
    let (coding, _) = choose_coding(symbols, alphabet);
    Stream {
        count: symbols.len() as u64,
        alphabet,
        payload: pack(symbols, &coding),
        coding,
    }
}

/// The coding [`encode_stream`] would use and the stream's stored bytes,
/// without producing the payload.
///
/// # Panics
/// If a symbol is not below `alphabet`.
pub(crate) fn choose_coding(symbols: &[u32], alphabet: u32) -> (StreamCoding, usize) {
    if let Some(&bad) = symbols.iter().find(|&&s| s >= alphabet) {
        panic!("symbol {bad} is outside the alphabet of {alphabet}");
    }
    let count = symbols.len() as u64;
    choose_coding_by(count, alphabet, || {
        let mut freqs = vec![0u64; alphabet as usize];
        for &s in symbols {
            freqs[s as usize] += 1;
        }
        freqs
    })
}

/// [`choose_coding`] of a stream of `count` symbols over `alphabet` whose
/// histogram `freqs` gives (called only when a Huffman code could win, so
/// a huge alphabet over a short stream never allocates its histogram).
pub(crate) fn choose_coding_by(
    count: u64,
    alphabet: u32,
    freqs: impl FnOnce() -> Vec<u64>,
) -> (StreamCoding, usize) {
    let cost = |coding: &StreamCoding, payload_len: u128| {
        let payload_len = usize::try_from(payload_len).unwrap_or(usize::MAX);
        Stream::stored_bytes_of(count, alphabet, coding, payload_len).total()
    };
    let bits = raw_bits(alphabet);
    let raw = StreamCoding::Raw { bits };
    let raw_size = cost(&raw, packed_len(count, bits.into()));
    // A Huffman table takes at least one bit per alphabet symbol and a
    // stream at least one bit per symbol; skipping hopeless cases also
    // bounds the histogram by the stream's own size.
    if (u64::from(alphabet) + count).div_ceil(8) >= raw_size as u64 {
        return (raw, raw_size);
    }
    let freqs = freqs();
    let occurring = freqs.iter().filter(|f| **f > 0).count();
    if occurring as u64 > 1 << MAX_CODE_LENGTH {
        return (raw, raw_size);
    }
    let code_lengths = huffman::code_lengths(&freqs);
    let payload_bits: u64 = freqs
        .iter()
        .zip(&code_lengths)
        .map(|(f, l)| f * u64::from(*l))
        .sum();
    let huffman = StreamCoding::Huffman { code_lengths };
    let huffman_size = cost(&huffman, payload_bits.div_ceil(8).into());
    if huffman_size < raw_size {
        (huffman, huffman_size)
    } else {
        (raw, raw_size)
    }
}

/// Packs `symbols` with `coding` (which covers every symbol).
pub(crate) fn pack(symbols: &[u32], coding: &StreamCoding) -> Vec<u8> {
    match coding {
        StreamCoding::Raw { bits } => {
            let bits = u32::from(*bits);
            let capacity = packed_len(symbols.len() as u64, bits) as usize;
            let mut writer = BitWriter::with_capacity(capacity);
            if bits > 0 {
                for &s in symbols {
                    writer.write(s, bits);
                }
            }
            writer.finish()
        }
        StreamCoding::Huffman { code_lengths } => {
            let codes = huffman::canonical_codes(code_lengths);
            let mut writer = BitWriter::with_capacity(symbols.len() / 2);
            for &s in symbols {
                writer.write(codes[s as usize], u32::from(code_lengths[s as usize]));
            }
            writer.finish()
        }
    }
}

/// Decodes the symbols of `stream`, validating everything: first the
/// stream's own consistency ([`Stream::validate`]: alphabet, raw width,
/// code length table, payload size), then every symbol below the alphabet,
/// every Huffman code valid, and the payload holding exactly the coded bits
/// plus zero padding.
///
/// Never panics. Allocates at most `stream.count` symbols, which
/// [`Stream::validate`] bounds by [`MAX_WEIGHTS_PER_LAYER`](super::MAX_WEIGHTS_PER_LAYER)
/// and which is checked against the payload size first.
pub fn decode_stream(stream: &Stream) -> Result<Vec<u32>> {
    stream.validate()?;
    let count = stream.count as usize;
    let mut reader = BitReader::new(&stream.payload);
    let symbols = match &stream.coding {
        StreamCoding::Raw { bits } => {
            decode_raw(&mut reader, u32::from(*bits), count, stream.alphabet)?
        }
        StreamCoding::Huffman { .. } if count == 0 => Vec::new(),
        StreamCoding::Huffman { code_lengths } => decode_huffman(&mut reader, code_lengths, count)?,
    };
    let extra = stream.payload.len() - reader.used_bytes().min(stream.payload.len());
    if extra > 0 {
        return Err(FormatError::invalid(format!(
            "payload has {extra} bytes after the last symbol"
        )));
    }
    if !reader.padding_is_zero() {
        return Err(FormatError::invalid(
            "padding bits after the last symbol are not zero",
        ));
    }
    Ok(symbols)
}

/// Raw decoding for [`decode_stream`]; the payload size was validated.
fn decode_raw(reader: &mut BitReader, bits: u32, count: usize, alphabet: u32) -> Result<Vec<u32>> {
    let mut symbols = Vec::with_capacity(count);
    for index in 0..count {
        let symbol = reader.read(bits);
        if symbol >= alphabet {
            return Err(FormatError::invalid(format!(
                "symbol {symbol} at index {index} is outside the alphabet of {alphabet}"
            )));
        }
        symbols.push(symbol);
    }
    Ok(symbols)
}

/// Huffman decoding for [`decode_stream`]; the table was validated and
/// the payload holds at least one bit per symbol.
fn decode_huffman(reader: &mut BitReader, code_lengths: &[u8], count: usize) -> Result<Vec<u32>> {
    let decoder = huffman::Decoder::new(code_lengths);
    let mut symbols = Vec::with_capacity(count);
    for index in 0..count {
        let symbol = decoder.decode(reader).ok_or_else(|| {
            FormatError::invalid(format!("invalid Huffman code for symbol number {index}"))
        })?;
        if reader.overrun() {
            return Err(FormatError::truncated(format!(
                "payload ends before symbol number {index} of {count}"
            )));
        }
        symbols.push(symbol);
    }
    Ok(symbols)
}
