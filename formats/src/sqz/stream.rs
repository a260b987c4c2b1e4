//! Encoding of a [`Stream`] (`SQZ.md`, "Stream"): symbol count, alphabet,
//! coding byte, the code length table of Huffman streams, payload length
//! and payload.

use super::breakdown::StreamBytes;
use super::code_lengths;
use super::wire::{put_varint, Reader};
use super::{Stream, StreamCoding, MAX_ALPHABET};
use crate::Result;

/// Bit 7 of the coding byte: set for Huffman, clear for raw.
const HUFFMAN_BIT: u8 = 0x80;
/// A coding byte no reader accepts (Huffman with a 63-bit table width).
const REJECTED_CODING: u8 = 0xBF;

impl Stream {
    /// Bytes this stream takes in a `.sqz` file: its header (count,
    /// alphabet, coding byte, code length table, payload length) and its
    /// payload. This is the cost every storage decision of the encoder
    /// minimises.
    pub fn stored_bytes(&self) -> StreamBytes {
        Self::stored_bytes_of(self.count, self.alphabet, &self.coding, self.payload.len())
    }

    /// [`Stream::stored_bytes`] of a stream with these fields and a payload
    /// of `payload_len` bytes, for costing a coding before packing it. The
    /// header is measured by encoding it, so it cannot disagree with the
    /// writer.
    pub(crate) fn stored_bytes_of(
        count: u64,
        alphabet: u32,
        coding: &StreamCoding,
        payload_len: usize,
    ) -> StreamBytes {
        let mut header = Vec::new();
        encode_header(count, alphabet, coding, payload_len, &mut header);
        StreamBytes {
            header: header.len(),
            payload: payload_len,
        }
    }
}

/// Append `stream` and return its byte breakdown.
pub(crate) fn encode(stream: &Stream, out: &mut Vec<u8>) -> StreamBytes {
    let start = out.len();
    encode_header(
        stream.count,
        stream.alphabet,
        &stream.coding,
        stream.payload.len(),
        out,
    );
    let header = out.len() - start;
    out.extend_from_slice(&stream.payload);
    StreamBytes {
        header,
        payload: stream.payload.len(),
    }
}

/// Append everything of a stream but its payload.
fn encode_header(
    count: u64,
    alphabet: u32,
    coding: &StreamCoding,
    payload_len: usize,
    out: &mut Vec<u8>,
) {
    put_varint(out, count);
    put_varint(out, alphabet.into());
    match coding {
        // Out-of-range widths saturate to 0x7F, which no reader accepts.
        StreamCoding::Raw { bits } => out.push((*bits).min(0x7F)),
        // The table's length is implied by the alphabet. A table that
        // contradicts it cannot be written faithfully, so the file is made
        // unreadable instead.
        StreamCoding::Huffman { code_lengths } if code_lengths.len() != alphabet as usize => {
            out.push(REJECTED_CODING)
        }
        StreamCoding::Huffman { code_lengths } => code_lengths::encode(code_lengths, out),
    }
    put_varint(out, payload_len as u64);
}

/// Read a stream written by [`encode`]. The alphabet is bounded by
/// [`MAX_ALPHABET`] before the code length table is allocated; consistency
/// of the fields is checked later by [`Stream::validate`].
pub(crate) fn decode(r: &mut Reader, what: &str) -> Result<Stream> {
    let count = r.varint(&format!("{what} symbol count"))?;
    let alphabet = r.bounded(&format!("{what} alphabet"), MAX_ALPHABET.into())?;
    let coding_byte = r.u8(&format!("{what} coding"))?;
    let coding = match coding_byte & HUFFMAN_BIT {
        0 => StreamCoding::Raw { bits: coding_byte },
        _ => StreamCoding::Huffman {
            code_lengths: code_lengths::decode(
                r,
                coding_byte,
                alphabet,
                &format!("{what} code length table"),
            )?,
        },
    };
    let payload_len = r.varint(&format!("{what} payload length"))?;
    let payload = r
        .take(payload_len.into(), &format!("{what} payload"))?
        .to_vec();
    Ok(Stream {
        count,
        alphabet: alphabet as u32,
        coding,
        payload,
    })
}
