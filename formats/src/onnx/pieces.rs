//! Reading an ONNX file in pieces, so that every large tensor's bytes sit
//! in an allocation of their own.
//!
//! prost decodes `raw_data` as views (`bytes::Bytes`) into the buffer it
//! decodes from. With the whole file in one buffer, no tensor's bytes could
//! be freed before the last view was dropped, so reading VGG-16 held the
//! file and the decoded weights at once (2 x 553 MB). [`read_pieces`] walks
//! the protobuf wire format while reading (`ModelProto.graph` →
//! `GraphProto.initializer` → `TensorProto.raw_data`) and reads each raw
//! payload of at least [`OWN_PIECE_BYTES`] into a buffer of its own; the
//! rest of the file goes, unchanged and in order, into the pieces between.
//! Decoding [`Pieces`] gives the same message as decoding the file, and
//! the importer frees a weight tensor's bytes as soon as its layer is
//! built.

use crate::{FormatError, Result};
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::Read;

/// Raw payloads at least this long are read into a buffer of their own;
/// smaller ones stay in the surrounding pieces.
const OWN_PIECE_BYTES: u64 = 64 * 1024;

/// Field numbers on the way from a model to its tensors' raw bytes
/// (`onnx.proto`).
const MODEL_GRAPH: u64 = 7;
const GRAPH_INITIALIZER: u64 = 5;
const TENSOR_RAW_DATA: u64 = 9;

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

/// Which message the walk is in.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Model,
    Graph,
    Tensor,
}

/// A file's bytes as a sequence of buffers, read as one [`Buf`]; a read of
/// bytes within one buffer ([`Buf::copy_to_bytes`], which prost uses for
/// `bytes` fields) is a view, not a copy.
pub(super) struct Pieces {
    pieces: VecDeque<Bytes>,
    remaining: usize,
}

impl Buf for Pieces {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.pieces.front().map_or(&[], |p| p.as_ref())
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.remaining, "advance past the end of the pieces");
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            if cnt < front.len() {
                front.advance(cnt);
                break;
            }
            cnt -= front.len();
            self.pieces.pop_front();
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        assert!(len <= self.remaining, "read past the end of the pieces");
        if let Some(front) = self.pieces.front_mut().filter(|p| p.len() >= len) {
            let view = front.split_to(len);
            if front.is_empty() {
                self.pieces.pop_front();
            }
            self.remaining -= len;
            return view;
        }
        let mut out = BytesMut::with_capacity(len);
        while out.len() < len {
            let n = (len - out.len()).min(self.chunk().len());
            out.extend_from_slice(&self.chunk()[..n]);
            self.advance(n);
        }
        out.freeze()
    }
}

/// Read `len` bytes of a serialized `ModelProto` from `reader` as
/// [`Pieces`]. Fails on a length or field that runs past its message or
/// the file, so nothing larger than the file is ever allocated.
pub(super) fn read_pieces(reader: impl Read, len: u64) -> Result<Pieces> {
    let mut walk = Walk {
        reader,
        between: Vec::new(),
        pieces: VecDeque::new(),
    };
    walk.message(len, Level::Model)?;
    walk.flush();
    let remaining = walk.pieces.iter().map(Bytes::len).sum();
    Ok(Pieces {
        pieces: walk.pieces,
        remaining,
    })
}

/// The state of [`read_pieces`]: bytes copied since the last own piece.
struct Walk<R> {
    reader: R,
    between: Vec<u8>,
    pieces: VecDeque<Bytes>,
}

impl<R: Read> Walk<R> {
    /// Copy a message of `len` bytes, descending into the fields that lead
    /// to raw tensor data.
    fn message(&mut self, len: u64, level: Level) -> Result<()> {
        let mut left = len;
        while left > 0 {
            let tag = self.varint(&mut left)?;
            let (field, wire_type) = (tag >> 3, tag & 7);
            match wire_type {
                VARINT => {
                    self.varint(&mut left)?;
                }
                FIXED64 => self.copy(consume(&mut left, 8, field)?)?,
                FIXED32 => self.copy(consume(&mut left, 4, field)?)?,
                LENGTH_DELIMITED => {
                    let size = self.varint(&mut left)?;
                    let size = consume(&mut left, size, field)?;
                    match (level, field) {
                        (Level::Model, MODEL_GRAPH) => self.message(size, Level::Graph)?,
                        (Level::Graph, GRAPH_INITIALIZER) => self.message(size, Level::Tensor)?,
                        (Level::Tensor, TENSOR_RAW_DATA) if size >= OWN_PIECE_BYTES => {
                            self.own_piece(size)?
                        }
                        _ => self.copy(size)?,
                    }
                }
                other => {
                    return Err(unreadable(format!(
                        "field {field} has wire type {other}, which ONNX does not use"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Copy one base-128 varint and return its value.
    fn varint(&mut self, left: &mut u64) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            if *left == 0 {
                return Err(unreadable("a varint runs past its message"));
            }
            let mut byte = [0u8];
            self.reader
                .read_exact(&mut byte)
                .map_err(|_| FormatError::truncated("ONNX model ends inside a varint"))?;
            *left -= 1;
            self.between.push(byte[0]);
            value |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(unreadable("a varint is longer than 10 bytes"))
    }

    /// Copy `size` bytes into the current in-between piece.
    fn copy(&mut self, size: u64) -> Result<()> {
        let copied = (&mut self.reader)
            .take(size)
            .read_to_end(&mut self.between)
            .map_err(|e| FormatError::invalid(format!("reading the ONNX model: {e}")))?;
        if copied as u64 != size {
            return Err(FormatError::truncated(format!(
                "ONNX model ends {} bytes into a field of {size}",
                copied
            )));
        }
        Ok(())
    }

    /// Read a raw payload of `size` bytes into a buffer of its own.
    fn own_piece(&mut self, size: u64) -> Result<()> {
        self.flush();
        let mut piece = vec![0u8; size as usize];
        self.reader.read_exact(&mut piece).map_err(|_| {
            FormatError::truncated(format!("ONNX model ends inside a tensor of {size} bytes"))
        })?;
        self.pieces.push_back(Bytes::from(piece));
        Ok(())
    }

    /// End the current in-between piece.
    fn flush(&mut self) {
        if !self.between.is_empty() {
            let piece = std::mem::take(&mut self.between);
            self.pieces.push_back(Bytes::from(piece));
        }
    }
}

/// Take `size` bytes of field `field` from the `left` bytes of its
/// message.
fn consume(left: &mut u64, size: u64, field: u64) -> Result<u64> {
    if size > *left {
        return Err(unreadable(format!(
            "field {field} of {size} bytes runs past its message"
        )));
    }
    *left -= size;
    Ok(size)
}

/// The reader's error for a file that is not protobuf.
fn unreadable(detail: impl std::fmt::Display) -> FormatError {
    FormatError::invalid(format!("not a readable ONNX model: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{GraphProto, ModelProto, TensorProto};
    use prost::Message;

    fn model_with(raw: &[usize]) -> ModelProto {
        let initializer = raw
            .iter()
            .enumerate()
            .map(|(i, &n)| TensorProto {
                name: format!("t{i}"),
                dims: vec![n as i64],
                data_type: 2,
                raw_data: (0..n).map(|b| b as u8).collect::<Vec<u8>>().into(),
                ..Default::default()
            })
            .collect();
        ModelProto {
            ir_version: 7,
            producer_name: "pieces".into(),
            graph: Some(GraphProto {
                name: "g".into(),
                initializer,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pieces_decode_to_the_same_message_with_big_tensors_apart() {
        let model = model_with(&[10, 200_000, 3, 70_000]);
        let bytes = model.encode_to_vec();
        let pieces = read_pieces(bytes.as_slice(), bytes.len() as u64).unwrap();
        assert_eq!(pieces.remaining(), bytes.len());
        // Before t1's data, t1's data, between, t3's data (the last field).
        assert_eq!(pieces.pieces.len(), 4);
        assert_eq!(pieces.pieces[3].len(), 70_000);
        assert_eq!(pieces.pieces[1].len(), 200_000);
        assert_eq!(ModelProto::decode(pieces).unwrap(), model);
    }

    #[test]
    fn truncated_or_lying_files_fail_without_allocating() {
        let bytes = model_with(&[100_000]).encode_to_vec();
        for cut in [1, 10, 30, bytes.len() - 1] {
            let e = read_pieces(&bytes[..cut], bytes.len() as u64);
            assert!(e.is_err(), "cut at {cut}");
        }
        // A field claiming far more than the file holds.
        let lying = [0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f];
        let e = read_pieces(&lying[..], lying.len() as u64).err().unwrap();
        assert!(e.to_string().contains("runs past"), "{e}");
        let group = [0x0b];
        assert!(read_pieces(&group[..], 1).is_err());
    }
}
