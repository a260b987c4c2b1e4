//! MSB-first bit strings (`SQZ.md`, "Bit strings"), the one bit packer of
//! the `.sqz` format: payloads and code length tables alike. The first bit
//! is the most significant bit of the first byte, and the last byte is
//! padded with zero bits.

/// Bytes a bit string of `count` fields of `width` bits occupies.
pub(crate) fn packed_len(count: u64, width: u32) -> u128 {
    (u128::from(count) * u128::from(width)).div_ceil(8)
}

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

/// Reads bit fields from untrusted bytes. Reading past the end yields zero
/// bits; callers check [`BitReader::overrun`] to detect it, so the hot
/// decoding loops carry no error path per bit.
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

    /// The next `len` bits (`len <= 32`) without consuming them.
    pub(crate) fn peek(&mut self, len: u32) -> u32 {
        if len == 0 {
            return 0;
        }
        self.refill();
        (self.buf >> (64 - len)) as u32
    }

    /// Skips `len` bits (`len <= 32`) already seen through [`BitReader::peek`].
    pub(crate) fn consume(&mut self, len: u32) {
        self.buf <<= len;
        self.have -= len;
        self.position += u64::from(len);
    }

    /// Reads `len` bits (`len <= 32`).
    pub(crate) fn read(&mut self, len: u32) -> u32 {
        let value = self.peek(len);
        self.consume(len);
        value
    }

    /// True once more bits were consumed than the slice holds.
    pub(crate) fn overrun(&self) -> bool {
        self.position > 8 * self.bytes.len() as u64
    }

    /// Bytes the consumed bits reach into, the last one possibly in part.
    pub(crate) fn used_bytes(&self) -> usize {
        self.position.div_ceil(8) as usize
    }

    /// Whether the bits from here to the next byte boundary are zero.
    pub(crate) fn padding_is_zero(&mut self) -> bool {
        let padding = (8 * self.used_bytes() as u64 - self.position) as u32;
        self.peek(padding) == 0
    }
}
