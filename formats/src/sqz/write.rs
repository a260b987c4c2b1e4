//! Serialising a [`SqzFile`] into `.sqz` bytes (see `SQZ.md`).
use super::SqzFile;

/// Serialise `file` into the bytes of a `.sqz` file.
pub fn write_sqz(_file: &SqzFile) -> Vec<u8> {
    Vec::new()
}
