//! Byte-level primitives of the `.sqz` layout (`SQZ.md`, "Primitive
//! encodings"): little-endian fixed-width integers and floats, unsigned
//! LEB128 varints, and a bounds-checked [`Reader`] whose every failure is a
//! one-line [`FormatError`].

use super::coding::BitReader;
use super::FloatVec;
use crate::{FormatError, Result};
use half::f16;

/// Append `value` as an unsigned LEB128 varint: 7 bits per byte, least
/// significant group first, bit 7 set on every byte but the last.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7F) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Append a float vector as `varint count` followed by the little-endian
/// values (4 bytes each for float32, 2 for float16).
pub(crate) fn put_floats(out: &mut Vec<u8>, values: &FloatVec) {
    put_varint(out, values.len() as u64);
    match values {
        FloatVec::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        FloatVec::F16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

/// A cursor over untrusted bytes. Every read is bounds-checked; errors name
/// the part of the file being read (`context`) and the field (`what`).
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    context: String,
}

impl<'a> Reader<'a> {
    /// Read `bytes`, naming them `context` in error messages.
    pub(crate) fn new(bytes: &'a [u8], context: impl Into<String>) -> Self {
        Reader {
            bytes,
            pos: 0,
            context: context.into(),
        }
    }

    /// Name this reader's bytes `context` in later error messages.
    pub(crate) fn set_context(&mut self, context: impl Into<String>) {
        self.context = context.into();
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// An [`FormatError::Invalid`] prefixed with this reader's context.
    pub(crate) fn invalid(&self, message: impl std::fmt::Display) -> FormatError {
        FormatError::invalid(format!("{}: {message}", self.context))
    }

    /// The next `len` bytes; fails without allocating when fewer remain.
    pub(crate) fn take(&mut self, len: u128, what: &str) -> Result<&'a [u8]> {
        let available = self.remaining();
        match usize::try_from(len) {
            Ok(n) if n <= available => {
                let out = &self.bytes[self.pos..self.pos + n];
                self.pos += n;
                Ok(out)
            }
            _ => Err(FormatError::truncated(format!(
                "{}: {what} needs {len} bytes but only {available} remain",
                self.context
            ))),
        }
    }

    /// Exactly `N` bytes as an array.
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u128, what)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian `u16`.
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian `u32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian IEEE-754 binary32.
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }

    /// An unsigned LEB128 varint in its shortest form, at most 10 bytes and
    /// at most `u64::MAX`.
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.u8(what)?;
            let group = u64::from(byte & 0x7F);
            if i == 9 && group > 1 {
                return Err(self.invalid(format!("{what} overflows 64 bits")));
            }
            value |= group << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(self.invalid(format!("{what} is not in shortest varint form")));
                }
                return Ok(value);
            }
        }
        Err(self.invalid(format!("{what} is a varint longer than 10 bytes")))
    }

    /// A varint that must not exceed `max`, as a `usize`.
    pub(crate) fn bounded(&mut self, what: &str, max: u64) -> Result<usize> {
        let value = self.varint(what)?;
        match usize::try_from(value) {
            Ok(v) if value <= max => Ok(v),
            _ => Err(self.invalid(format!("{what} {value} exceeds the limit {max}"))),
        }
    }

    /// A float vector written by [`put_floats`], float16 when `half` is set.
    /// Its byte size is checked against the remaining bytes before any
    /// allocation.
    pub(crate) fn floats(&mut self, half: bool, what: &str) -> Result<FloatVec> {
        let count = self.varint(&format!("{what} count"))?;
        let width = if half { 2 } else { 4 };
        let bytes = self.take(u128::from(count) * width, what)?;
        Ok(if half {
            FloatVec::F16(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            )
        } else {
            FloatVec::F32(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        })
    }

    /// Read a bit string of at least `min_bits` bits with `read` (see
    /// [`BitReader`]), then move on to the next byte boundary; the padding
    /// bits must be zero. Fewer than `min_bits` bits left, or `read`
    /// running out of bytes, is a truncation error (checked before `read`
    /// runs, so it cannot allocate for a table the data cannot hold);
    /// `read`'s own error message is prefixed with the context and `what`.
    pub(crate) fn bits<T>(
        &mut self,
        what: &str,
        min_bits: u128,
        read: impl FnOnce(&mut BitReader<'a>) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let rest = &self.bytes[self.pos..];
        if min_bits > 8 * rest.len() as u128 {
            return Err(FormatError::truncated(format!(
                "{}: {what} needs {min_bits} bits but only {} bytes remain",
                self.context,
                rest.len()
            )));
        }
        let mut bits = BitReader::new(rest);
        let value = read(&mut bits);
        if bits.overrun() {
            return Err(FormatError::truncated(format!(
                "{}: {what} runs past the end of the data",
                self.context
            )));
        }
        let value = value.map_err(|m| self.invalid(format!("{what}: {m}")))?;
        if !bits.padding_is_zero() {
            return Err(self.invalid(format!("{what}: nonzero padding bits")));
        }
        self.pos += bits.used_bytes();
        Ok(value)
    }

    /// Succeed only when every byte has been read.
    pub(crate) fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(self.invalid(format!("{extra} unexpected bytes after the last field"))),
        }
    }
}
