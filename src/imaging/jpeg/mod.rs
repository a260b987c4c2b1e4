//! A baseline JPEG decoder that reproduces libjpeg-turbo's default output
//! bit for bit, so images decode exactly as in PIL (which uses
//! libjpeg-turbo) and therefore as in the reference data.
//!
//! General-purpose decoders such as zune-jpeg (used by the `image` crate)
//! use other integer IDCTs and colour-conversion roundings and disagree with
//! libjpeg-turbo by one level on about 1 % of pixels. This decoder follows
//! libjpeg-turbo's defaults step by step: Huffman decoding, the "islow"
//! integer IDCT ([`idct`]), "fancy" triangle-filter chroma upsampling
//! ([`upsample`]) and table-driven YCbCr->RGB conversion ([`color`]).
//!
//! It covers what ImageNet-style photos use: 8-bit baseline or extended
//! sequential Huffman JPEGs with one (grey) or three (YCbCr) components in a
//! single scan. Anything else (progressive, arithmetic coding, 12-bit, CMYK,
//! RGB-coded, multi-scan, corrupt or truncated data) returns `None` and the
//! caller falls back to the `image` crate.
//!
//! "Bit for bit" means libjpeg-turbo's C code. Its SIMD IDCT, which PIL
//! uses on x86-64, computes in 16-bit lanes and agrees with the C code on
//! real photos, but not on corrupt files whose coefficients are huge
//! enough to overflow those lanes: on such fuzzed inputs this decoder
//! matches PIL run with `JSIMD_FORCENONE=1`, not PIL's default output.

mod color;
mod entropy;
mod header;
mod idct;
mod upsample;

use image::RgbImage;

/// Largest image this decoder handles (pixels); bigger ones go to the
/// fallback, which has its own allocation limits.
const MAX_PIXELS: usize = 64 << 20;

/// Decode `data` exactly as libjpeg-turbo would, or `None` when the file is
/// outside the supported subset (see the module documentation).
pub fn decode(data: &[u8]) -> Option<RgbImage> {
    let jpeg = header::parse(data)?;
    let frame = &jpeg.frame;
    if frame.width * frame.height > MAX_PIXELS {
        return None;
    }
    let planes = entropy::decode_scan(&jpeg)?;
    let full: Vec<Vec<u8>> = frame
        .components
        .iter()
        .zip(&planes)
        .map(|(c, plane)| upsample::to_full_size(frame, c, plane))
        .collect::<Option<_>>()?;
    let pixels = match &full[..] {
        [grey] => grey.iter().flat_map(|&y| [y, y, y]).collect(),
        [y, cb, cr] => color::ycc_to_rgb(y, cb, cr),
        _ => return None,
    };
    RgbImage::from_raw(frame.width as u32, frame.height as u32, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{DynamicImage, GrayImage};

    /// Largest per-sample difference between two images of the same size.
    fn max_difference(a: &RgbImage, b: &RgbImage) -> u8 {
        assert_eq!(a.dimensions(), b.dimensions());
        a.as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| x.abs_diff(*y))
            .max()
            .unwrap_or(0)
    }

    fn encode(img: &DynamicImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(img)
            .expect("encode");
        bytes
    }

    /// Same picture as another decoder up to IDCT and colour rounding: a
    /// check of the geometry (block layout, cropping of partial blocks),
    /// the Huffman decoding and the channel order.
    #[test]
    fn agrees_with_the_image_crate_up_to_rounding() {
        let colour = RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8])
        });
        let grey = GrayImage::from_fn(21, 10, |x, y| image::Luma([(x * 10 + y * 5) as u8]));
        for img in [
            DynamicImage::ImageRgb8(colour),
            DynamicImage::ImageLuma8(grey),
        ] {
            let bytes = encode(&img);
            let ours = decode(&bytes).expect("baseline JPEG");
            let theirs = image::load_from_memory(&bytes).expect("decode").into_rgb8();
            assert!(max_difference(&ours, &theirs) <= 2, "{:?}", img.color());
        }
    }

    /// Writes entropy-coded bits MSB first with JPEG byte stuffing.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        acc: u32,
        bits: u32,
    }

    impl BitWriter {
        fn put(&mut self, value: u32, n: u32) {
            for i in (0..n).rev() {
                self.acc = (self.acc << 1) | ((value >> i) & 1);
                self.bits += 1;
                if self.bits == 8 {
                    self.bytes.push(self.acc as u8);
                    if self.acc == 0xFF {
                        self.bytes.push(0x00);
                    }
                    self.acc = 0;
                    self.bits = 0;
                }
            }
        }

        /// Pad the last byte with ones, as encoders do before a marker.
        fn flush(&mut self) {
            while self.bits != 0 {
                self.put(1, 1);
            }
        }
    }

    /// A grey baseline JPEG whose 8x8 blocks hold only a DC coefficient
    /// (`dc`, row-major, quantiser 1), with 4-bit DC codes for categories
    /// 0..=11, a 1-bit end-of-block code and, if `restart > 0`, a restart
    /// marker every `restart` blocks numbered from `first_marker`.
    fn dc_only_jpeg(
        width: u16,
        height: u16,
        dc: &[i32],
        restart: u16,
        first_marker: u8,
    ) -> Vec<u8> {
        let mut f = vec![0xFF, 0xD8];
        f.extend([0xFF, 0xDB, 0, 67, 0]);
        f.extend([1u8; 64]);
        f.extend([0xFF, 0xC0, 0, 11, 8]);
        f.extend(height.to_be_bytes());
        f.extend(width.to_be_bytes());
        f.extend([1, 1, 0x11, 0]);
        let mut dc_counts = [0u8; 16];
        dc_counts[3] = 12;
        f.extend([0xFF, 0xC4, 0, 19 + 12, 0x00]);
        f.extend(dc_counts);
        f.extend(0..12u8);
        let mut ac_counts = [0u8; 16];
        ac_counts[0] = 1;
        f.extend([0xFF, 0xC4, 0, 19 + 1, 0x10]);
        f.extend(ac_counts);
        f.push(0x00);
        if restart > 0 {
            f.extend([0xFF, 0xDD, 0, 4]);
            f.extend(restart.to_be_bytes());
        }
        f.extend([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);
        let mut w = BitWriter::default();
        let mut predictor = 0;
        let mut marker = first_marker;
        for (i, &value) in dc.iter().enumerate() {
            if restart > 0 && i > 0 && i % usize::from(restart) == 0 {
                w.flush();
                w.bytes.extend([0xFF, 0xD0 + marker % 8]);
                marker += 1;
                predictor = 0;
            }
            let diff = value - predictor;
            predictor = value;
            let category = 32 - diff.unsigned_abs().leading_zeros();
            w.put(category, 4);
            let bits = if diff < 0 {
                diff + (1 << category) - 1
            } else {
                diff
            };
            w.put(bits as u32, category);
            w.put(0, 1); // end of block
        }
        w.flush();
        f.extend(w.bytes);
        f.extend([0xFF, 0xD9]);
        f
    }

    /// DC values of a 20x12 image (3x2 blocks) and the flat sample each
    /// block decodes to: 128 + DC/8 rounded half up, clamped.
    const DC: [i32; 6] = [0, 2047, 0, 397, -4, 1020];
    fn expected_block(dc: i32) -> u8 {
        (128 + (dc + 4).div_euclid(8)).clamp(0, 255) as u8
    }

    #[test]
    fn decodes_dc_only_blocks_with_and_without_restarts() {
        for restart in [0, 1, 2, 4] {
            let bytes = dc_only_jpeg(20, 12, &DC, restart, 0);
            if restart != 1 {
                // Blocks 0 and 1 share an interval: block 1's 13 one-bits
                // start at bit 8 and make a stuffed 0xFF byte.
                assert!(
                    bytes.windows(2).any(|w| w == [0xFF, 0x00]),
                    "the stream exercises byte stuffing"
                );
            }
            let img = decode(&bytes).unwrap_or_else(|| panic!("restart interval {restart}"));
            assert_eq!(img.dimensions(), (20, 12));
            for (x, y, p) in img.enumerate_pixels() {
                let block = (y / 8 * 3 + x / 8) as usize;
                assert_eq!(
                    p.0,
                    [expected_block(DC[block]); 3],
                    "restart {restart}, pixel ({x},{y})"
                );
            }
        }
    }

    #[test]
    fn unsupported_or_corrupt_data_is_left_to_the_fallback() {
        let good = dc_only_jpeg(20, 12, &DC, 2, 0);
        assert!(decode(&good).is_some());
        // Restart markers out of sequence.
        assert!(decode(&dc_only_jpeg(20, 12, &DC, 2, 3)).is_none());
        // Truncated anywhere.
        for cut in [2, 30, good.len() / 2, good.len() - 6] {
            assert!(decode(&good[..cut]).is_none(), "cut at {cut}");
        }
        // Progressive frame.
        let sof = good
            .windows(2)
            .position(|w| w == [0xFF, 0xC0])
            .expect("SOF0");
        let mut progressive = good.clone();
        progressive[sof + 1] = 0xC2;
        assert!(decode(&progressive).is_none());
        // A header announcing 16000x16000 pixels over a few bytes of data is
        // rejected before the planes are allocated.
        let mut lying = good.clone();
        lying[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
        assert!(decode(&lying).is_none());
        assert!(decode(b"not a jpeg").is_none());
    }
}
