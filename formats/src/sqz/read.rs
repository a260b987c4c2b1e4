//! Parsing and validating `.sqz` bytes (see `SQZ.md`).
use super::SqzFile;
use crate::Result;

/// Parse a whole `.sqz` file from memory, checking magic, version,
/// checksums, bounds and consistency before allocating anything large.
pub fn read_sqz(_bytes: &[u8]) -> Result<SqzFile> {
    Err(crate::FormatError::unsupported(".sqz reading is not implemented yet"))
}
