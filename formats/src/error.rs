//! The error type of every reader and writer in this crate.

use std::path::PathBuf;

/// Why a model file could not be read or written. Every variant renders as
/// one line that says what is wrong, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The operating system refused to open, read or write a file.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The data ended before a structure it announces.
    #[error("truncated file: {0}")]
    Truncated(String),
    /// The data is well-formed as far as it goes but contradicts itself or
    /// the format (bad magic, counts that do not match shapes, ...).
    #[error("invalid file: {0}")]
    Invalid(String),
    /// A feature of the format that sqz does not implement.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A stored checksum does not match the bytes it covers.
    #[error("checksum mismatch in {0}: the file is corrupt")]
    Checksum(String),
}

impl FormatError {
    /// Shorthand for [`FormatError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        FormatError::Invalid(msg.into())
    }

    /// Shorthand for [`FormatError::Truncated`].
    pub fn truncated(msg: impl Into<String>) -> Self {
        FormatError::Truncated(msg.into())
    }

    /// Shorthand for [`FormatError::Unsupported`].
    pub fn unsupported(msg: impl Into<String>) -> Self {
        FormatError::Unsupported(msg.into())
    }

    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, FormatError>;
