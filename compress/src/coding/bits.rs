//! Bit packing, most significant bit first, as all `.sqz` payloads use it:
//! the first bit of a stream is bit 7 of byte 0, and the last byte is
//! zero-padded.

/// Appends bit fields to a byte vector.
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    /// Pending bits, in the low `pending` bits.
    acc: u64,
    pending: u32,
}

impl BitWriter {
    /// A writer whose output will take about `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(capacity),
            acc: 0,
            pending: 0,
        }
    }

    /// Appends the low `len` bits of `value` (`len <= 32`, higher bits of
    /// `value` zero), most significant first.
    pub(crate) fn write(&mut self, value: u32, len: u32) {
        self.acc = (self.acc << len) | u64::from(value);
        self.pending += len;
        while self.pending >= 8 {
            self.pending -= 8;
            self.bytes.push((self.acc >> self.pending) as u8);
        }
    }

    /// The bytes, the last one padded with zero bits.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.bytes.push((self.acc << (8 - self.pending)) as u8);
        }
        self.bytes
    }
}

/// Reads bit fields from a byte slice. Reading past the end yields zero
/// bits; callers check [`BitReader::overrun`] to detect it.
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Index of the next byte to load into `buf`.
    next: usize,
    /// Upcoming bits, left-aligned: the top `have` bits are valid.
    buf: u64,
    have: u32,
    /// Bits consumed so far.
    position: u64,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            next: 0,
            buf: 0,
            have: 0,
            position: 0,
        }
    }

    /// Makes at least 57 bits available to [`BitReader::peek`].
    fn refill(&mut self) {
        while self.have <= 56 {
            let byte = self.bytes.get(self.next).copied().unwrap_or(0);
            self.buf |= u64::from(byte) << (56 - self.have);
            self.have += 8;
            self.next += 1;
        }
    }

    /// The next `len` bits (`1 <= len <= 32`) without consuming them.
    pub(crate) fn peek(&mut self, len: u32) -> u32 {
        self.refill();
        (self.buf >> (64 - len)) as u32
    }

    /// Skips `len` bits (`len <= 32`) already seen through [`BitReader::peek`].
    pub(crate) fn consume(&mut self, len: u32) {
        self.buf <<= len;
        self.have -= len;
        self.position += u64::from(len);
    }

    /// Reads `len` bits (`1 <= len <= 32`).
    pub(crate) fn read(&mut self, len: u32) -> u32 {
        let value = self.peek(len);
        self.consume(len);
        value
    }

    /// True once more bits were consumed than the slice holds.
    pub(crate) fn overrun(&self) -> bool {
        self.position > 8 * self.bytes.len() as u64
    }

    /// Checks that the consumed bits end in the last byte and that the
    /// rest of that byte is zero padding.
    pub(crate) fn finish(mut self) -> Result<(), crate::CodingError> {
        let used = self.position.div_ceil(8) as usize;
        if self.bytes.len() > used {
            return Err(crate::CodingError::TrailingBytes {
                extra: self.bytes.len() - used,
            });
        }
        let padding = (8 * used as u64 - self.position) as u32;
        if padding > 0 && self.peek(padding) != 0 {
            return Err(crate::CodingError::NonZeroPadding);
        }
        Ok(())
    }
}
