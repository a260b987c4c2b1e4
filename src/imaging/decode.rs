//! Reading JPEG/PNG files into 8-bit RGB, with the size checked before decoding.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

use super::{jpeg, ImagingError};

/// Largest accepted width or height. ImageNet photos are a few hundred
/// pixels; 16384 leaves room for any real photo while a header announcing
/// more is rejected before a single pixel buffer is allocated.
pub const MAX_SIDE: u32 = 16384;

/// Most pixels a complete JPEG can describe per byte of the file. In a
/// Huffman-coded JPEG (the only kind either decoder reads), every 8x8 block
/// of every component costs at least one bit (its DC difference code), and with any sampling factors (1..=4) the blocks
/// of all components together number at least one per 128 pixels: 8 * 128
/// pixels per byte. A header announcing more than that over the bytes
/// present is a lie or a file cut short; decoders would allocate the full
/// image and fill it with grey, so a 1 KB file could cost hundreds of MB.
const MAX_JPEG_PIXELS_PER_BYTE: u64 = 1024;

/// Read and decode the image file at `path` into 8-bit RGB.
///
/// Baseline JPEGs are decoded by [`jpeg`], bit-exact with libjpeg-turbo
/// (what PIL uses); other files by the `image` crate. Greyscale, alpha, CMYK
/// and 16-bit images are all converted: grey is replicated into the three
/// channels, alpha is dropped (as PIL's `convert("RGB")` does), 16-bit
/// samples are scaled to 8 bits. The format is detected from the content,
/// not the file name.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImagingError> {
    let bytes = std::fs::read(path).map_err(|source| ImagingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_rgb(&bytes, path)
}

/// Decode an in-memory image file; `path` only names it in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage, ImagingError> {
    let decode_err = |source| ImagingError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let header = reader(bytes, path)?;
    let format = header.format();
    let (width, height) = header.into_dimensions().map_err(decode_err)?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ImagingError::BadSize {
            path: path.to_path_buf(),
            width,
            height,
            max: MAX_SIDE,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if format == Some(ImageFormat::Jpeg) && pixels > MAX_JPEG_PIXELS_PER_BYTE * bytes.len() as u64 {
        return Err(ImagingError::TooFewBytes {
            path: path.to_path_buf(),
            width,
            height,
            bytes: bytes.len(),
        });
    }
    if let Some(exact) = jpeg::decode(bytes) {
        return Ok(exact);
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
        .map_err(|source| ImagingError::Io {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageFormat};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).expect("encode");
        bytes.into_inner()
    }

    #[test]
    fn every_colour_type_becomes_rgb() {
        let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(3, 2, image::Luma([77])));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            3,
            2,
            image::Rgba([1, 2, 3, 4]),
        ));
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
            3,
            2,
            image::Rgb([0u16, 32896, 65535]),
        ));
        let cases = [
            (grey, [77, 77, 77]),
            (rgba, [1, 2, 3]),
            (deep, [0, 128, 255]),
        ];
        for (img, want) in cases {
            let decoded =
                decode_rgb(&encode(img, ImageFormat::Png), Path::new("x.png")).expect("decode");
            assert_eq!(decoded.dimensions(), (3, 2));
            assert!(decoded.pixels().all(|p| p.0 == want), "{want:?}");
        }
        let jpeg = encode(
            DynamicImage::ImageLuma8(image::GrayImage::from_pixel(8, 8, image::Luma([77]))),
            ImageFormat::Jpeg,
        );
        let decoded = decode_rgb(&jpeg, Path::new("x.jpg")).expect("decode");
        assert!(
            decoded
                .pixels()
                .all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]),
            "grey JPEG stays grey"
        );
    }

    #[test]
    fn jpeg_headers_announcing_more_pixels_than_the_bytes_hold_are_refused() {
        let jpeg = encode(
            DynamicImage::ImageRgb8(RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb([x as u8 * 16, y as u8 * 16, 99])
            })),
            ImageFormat::Jpeg,
        );
        assert_eq!(
            decode_rgb(&jpeg, Path::new("a.jpg"))
                .expect("the honest file decodes")
                .dimensions(),
            (16, 16)
        );
        // 4000x4000 pixels would need 15,625 bytes at least.
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        let mut lying = jpeg.clone();
        lying[sof + 5..sof + 9].copy_from_slice(&[0x0F, 0xA0, 0x0F, 0xA0]);
        assert!(jpeg.len() < 15_625);
        let err = decode_rgb(&lying, Path::new("lying.jpg")).expect_err("too few bytes");
        assert!(
            err.to_string()
                .starts_with("lying.jpg: a 4000x4000 JPEG cannot fit in"),
            "{err}"
        );
    }

    #[test]
    fn errors_name_the_file() {
        let err = decode_rgb(b"not an image", Path::new("dir/x.jpg")).expect_err("garbage");
        assert!(
            err.to_string()
                .starts_with("dir/x.jpg: cannot decode image"),
            "{err}"
        );
        let png = encode(
            DynamicImage::ImageRgb8(RgbImage::new(4, 4)),
            ImageFormat::Png,
        );
        let err = decode_rgb(&png[..png.len() / 2], Path::new("cut.png")).expect_err("truncated");
        assert!(err.to_string().starts_with("cut.png: "), "{err}");
        let err = load_rgb(Path::new("/nonexistent/x.png")).expect_err("missing");
        assert!(err.to_string().starts_with("/nonexistent/x.png: "), "{err}");
    }
}
