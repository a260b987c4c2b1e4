//! The error type of image loading and preprocessing.

use std::path::PathBuf;

/// Why an image could not be turned into a network input. Every variant
/// names the file and renders as one line, so the CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not an image in a supported format (JPEG, PNG) or are corrupt.
    #[error("{}: cannot decode image: {source}", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    /// The header announces a size that is empty or larger than [`super::MAX_SIDE`];
    /// checked before any pixel is decoded.
    #[error("{}: image size {width}x{height} is not supported (each side must be 1..={max})", path.display())]
    BadSize {
        path: PathBuf,
        width: u32,
        height: u32,
        max: u32,
    },
    /// A JPEG header announces more pixels than the file's bytes can hold
    /// (see `decode::MAX_JPEG_PIXELS_PER_BYTE`); checked before decoding.
    #[error("{}: a {width}x{height} JPEG cannot fit in {bytes} bytes (the file is cut short or its header is corrupt)", path.display())]
    TooFewBytes {
        path: PathBuf,
        width: u32,
        height: u32,
        bytes: usize,
    },
    /// The preprocessing preset asks for sizes no image pipeline should produce.
    #[error("invalid preprocessing: {0}")]
    BadPreprocess(String),
}
