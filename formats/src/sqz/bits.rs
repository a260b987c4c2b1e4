//! MSB-first bit strings (`SQZ.md`, "Bit strings"): the first bit is the
//! most significant bit of the first byte, and the last byte is padded with
//! zero bits.

use crate::{FormatError, Result};

/// Bytes a bit string of `count` fields of `width` bits occupies.
pub(crate) fn packed_len(count: u64, width: u32) -> u128 {
    (u128::from(count) * u128::from(width)).div_ceil(8)
}

/// Appends bits to a byte vector.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    byte: u8,
    held: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter {
            out,
            byte: 0,
            held: 0,
        }
    }

    /// Append the low `width` bits of `value`, most significant first.
    pub(crate) fn put(&mut self, value: u32, width: u32) {
        for i in (0..width).rev() {
            self.byte = (self.byte << 1) | ((value >> i) & 1) as u8;
            self.held += 1;
            if self.held == 8 {
                self.out.push(self.byte);
                (self.byte, self.held) = (0, 0);
            }
        }
    }

    /// Zero-pad the last byte.
    pub(crate) fn finish(self) {
        if self.held > 0 {
            self.out.push(self.byte << (8 - self.held));
        }
    }
}

/// Reads bits from untrusted bytes; running out is a truncation error.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    position: usize,
    label: String,
}

impl<'a> BitReader<'a> {
    /// Read from the start of `bytes`, naming the field `label` in errors.
    pub(crate) fn new(bytes: &'a [u8], label: String) -> Self {
        BitReader {
            bytes,
            position: 0,
            label,
        }
    }

    /// The next `width` (≤ 32) bits as a number, most significant first.
    pub(crate) fn read(&mut self, width: u32) -> Result<u32> {
        let mut value = 0;
        for _ in 0..width {
            let byte = self.bytes.get(self.position / 8).ok_or_else(|| {
                FormatError::truncated(format!("{} ends after {} bits", self.label, self.position))
            })?;
            value = (value << 1) | u32::from(byte >> (7 - self.position % 8)) & 1;
            self.position += 1;
        }
        Ok(value)
    }

    /// An [`FormatError::Invalid`] naming the field.
    pub(crate) fn invalid(&self, message: impl std::fmt::Display) -> FormatError {
        FormatError::invalid(format!("{}: {message}", self.label))
    }

    /// Check that the bits up to the next byte boundary are zero and return
    /// the number of bytes consumed.
    pub(crate) fn finish(mut self) -> Result<usize> {
        let padding = (8 - self.position % 8) % 8;
        if self.read(padding as u32)? != 0 {
            return Err(self.invalid("nonzero padding bits"));
        }
        Ok(self.position / 8)
    }
}
