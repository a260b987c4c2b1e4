//! A bounds-checked little-endian reader for the flat binary formats
//! (ncnn `.bin`, Deep Compression `.net`).

use crate::{FormatError, Result};

/// Little-endian reader over a byte slice that checks every length against
/// the bytes left before touching or allocating anything, so a lying count
/// gives [`FormatError::Truncated`] instead of a huge allocation.
pub(crate) struct ByteCursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// What the bytes are, for messages (e.g. "ncnn .bin").
    source: &'static str,
}

impl<'a> ByteCursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], source: &'static str) -> Self {
        ByteCursor {
            bytes,
            at: 0,
            source,
        }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The next `n` bytes, which hold `what`.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(FormatError::truncated(format!(
                "{}: {what} needs {n} bytes at offset {} but only {} remain",
                self.source,
                self.at,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `count` little-endian float32 values.
    pub(crate) fn f32s(&mut self, count: usize, what: &str) -> Result<Vec<f32>> {
        let bytes = count.checked_mul(4).ok_or_else(|| {
            FormatError::truncated(format!("{}: {what}: absurd count {count}", self.source))
        })?;
        Ok(self
            .take(bytes, what)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// Succeed only when every byte has been read.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(FormatError::invalid(format!(
                "{}: {n} unexpected bytes after the last layer (offset {})",
                self.source, self.at
            ))),
        }
    }
}
