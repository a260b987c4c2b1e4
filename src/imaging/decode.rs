//! Reading JPEG/PNG files into 8-bit RGB, with the size checked before decoding.

use std::io::Cursor;
use std::path::Path;

use image::{ImageReader, Limits, RgbImage};

use super::ImagingError;

/// Largest accepted width or height. ImageNet photos are a few hundred
/// pixels; 16384 leaves room for any real photo while a header announcing
/// more is rejected before a single pixel buffer is allocated.
pub const MAX_SIDE: u32 = 16384;

/// Read and decode the image file at `path` into 8-bit RGB.
///
/// Greyscale, alpha, CMYK and 16-bit images are all converted: grey is
/// replicated into the three channels, alpha is dropped (as PIL's
/// `convert("RGB")` does), 16-bit samples are scaled to 8 bits. The format is
/// detected from the content, not the file name.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImagingError> {
    let bytes = std::fs::read(path).map_err(|source| ImagingError::Io { path: path.to_path_buf(), source })?;
    decode_rgb(&bytes, path)
}

/// Decode an in-memory image file; `path` only names it in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage, ImagingError> {
    let decode_err = |source| ImagingError::Decode { path: path.to_path_buf(), source };
    let (width, height) = reader(bytes, path)?.into_dimensions().map_err(decode_err)?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImagingError::BadSize { path: path.to_path_buf(), width, height, max: MAX_SIDE });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut decoder = reader(bytes, path)?;
    decoder.limits(limits);
    Ok(decoder.decode().map_err(decode_err)?.into_rgb8())
}

/// A reader over `bytes` whose format is guessed from the magic bytes.
fn reader<'a>(bytes: &'a [u8], path: &Path) -> Result<ImageReader<Cursor<&'a [u8]>>, ImagingError> {
    ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| ImagingError::Io { path: path.to_path_buf(), source })
}
