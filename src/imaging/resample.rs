//! Antialiased bilinear resizing that reproduces Pillow's
//! `Image.resize(size, Image.BILINEAR)` bit for bit on 8-bit RGB images.
//!
//! Pillow (`libImaging/Resample.c`) resizes in two separable passes,
//! horizontal then vertical, rounding to `u8` in between. When shrinking,
//! the triangle filter is stretched by the scale factor, so every output
//! pixel averages all the input pixels it covers (antialiasing). The
//! per-pixel weights are computed in `f64`, normalised to sum to one and
//! converted to fixed point with [`PRECISION_BITS`] fractional bits; each
//! output is `(sum(pixel * weight) + half) >> PRECISION_BITS`, clamped to
//! 0..=255. Every step below mirrors that code, including its rounding,
//! because a one-level difference in a pixel is visible in the reference
//! tensors the tests compare against.
//!
//! Unlike Pillow, [`resize_region`] can compute just a window of the output
//! (the centre crop): each output pixel depends only on its own taps, so the
//! values are the same while memory stays bounded by the window, whatever
//! the aspect ratio of the input.

use std::ops::Range;

use image::RgbImage;

/// Fractional bits of Pillow's fixed-point weights: 32 bits minus 8 for the
/// pixel value minus 2 for sign and overflow headroom.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Interleaved channels of an RGB image.
const CHANNELS: usize = 3;

/// Pillow's bilinear (triangle) filter, support 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// Fixed-point filter taps of a range of output positions along one axis.
struct Taps {
    /// Maximum taps per output position (row stride of `weights`).
    stride: usize,
    /// Per output position: first input index and number of taps.
    spans: Vec<(usize, usize)>,
    /// Per output position: `stride` weights, the first `span.1` of them used.
    weights: Vec<i32>,
}

impl Taps {
    /// Taps for output positions `outputs` when resizing `in_size` samples to
    /// `out_size`; this is Pillow's `precompute_coeffs` followed by
    /// `normalize_coeffs_8bpc`.
    fn new(in_size: u32, out_size: u32, outputs: Range<u32>) -> Taps {
        let scale = f64::from(in_size) / f64::from(out_size);
        let filter_scale = scale.max(1.0);
        let support = filter_scale; // the triangle's support (1) times the stretch
        let stride = support.ceil() as usize * 2 + 1;
        let inv_filter_scale = 1.0 / filter_scale;
        let mut spans = Vec::with_capacity(outputs.len());
        let mut weights = vec![0; outputs.len() * stride];
        let mut real = vec![0.0f64; stride];
        for (out, fixed) in outputs.zip(weights.chunks_exact_mut(stride)) {
            let center = (f64::from(out) + 0.5) * scale;
            // Pillow rounds with a C cast, i.e. truncation towards zero.
            let first = ((center - support + 0.5) as i64).max(0);
            let end = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let count = usize::try_from(end - first).unwrap_or(0).min(stride);
            let mut total = 0.0;
            for (i, w) in real[..count].iter_mut().enumerate() {
                *w = triangle(((i as i64 + first) as f64 - center + 0.5) * inv_filter_scale);
                total += *w;
            }
            for (w, f) in real[..count].iter().zip(fixed.iter_mut()) {
                let w = if total != 0.0 { w / total } else { *w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                *f = if scaled < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                };
            }
            spans.push((first as usize, count));
        }
        Taps {
            stride,
            spans,
            weights,
        }
    }

    /// Input indices read by any of the output positions.
    fn input_range(&self) -> Range<usize> {
        let start = self.spans.iter().map(|s| s.0).min().unwrap_or(0);
        let end = self.spans.iter().map(|s| s.0 + s.1).max().unwrap_or(start);
        start..end
    }

    /// The taps of the `i`-th output position: first input index and weights.
    fn get(&self, i: usize) -> (usize, &[i32]) {
        let (first, count) = self.spans[i];
        (first, &self.weights[i * self.stride..][..count])
    }
}

/// Pillow's rounding of a fixed-point sum (which starts at one half) to u8.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Weighted sum of `samples(i)` for the taps, for each of the 3 channels.
fn convolve(weights: &[i32], mut sample: impl FnMut(usize, usize) -> u8) -> [u8; CHANNELS] {
    let mut acc = [1i32 << (PRECISION_BITS - 1); CHANNELS];
    for (i, &w) in weights.iter().enumerate() {
        for (c, a) in acc.iter_mut().enumerate() {
            *a += i32::from(sample(i, c)) * w;
        }
    }
    acc.map(clip8)
}

/// Resize `img` to `width x height` exactly as Pillow's `resize(...,
/// BILINEAR)` would.
pub fn resize(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_region(img, width, height, 0..width, 0..height)
}

/// The window `cols x rows` of `img` resized to `width x height` (Pillow's
/// antialiased bilinear). The ranges are clipped to the output size.
pub fn resize_region(
    img: &RgbImage,
    width: u32,
    height: u32,
    cols: Range<u32>,
    rows: Range<u32>,
) -> RgbImage {
    let cols = cols.start.min(width)..cols.end.min(width);
    let rows = rows.start.min(height)..rows.end.min(height);
    if cols.is_empty() || rows.is_empty() {
        return RgbImage::new(cols.len() as u32, rows.len() as u32);
    }
    let (in_w, in_h) = img.dimensions();
    // Pillow skips a pass whose size does not change; so do we, since
    // running it would still round (identically, but for no reason).
    let horizontal = (width != in_w).then(|| Taps::new(in_w, width, cols.clone()));
    let vertical = (height != in_h).then(|| Taps::new(in_h, height, rows.clone()));
    let to_usize = |r: &Range<u32>| r.start as usize..r.end as usize;
    let col_span = horizontal
        .as_ref()
        .map_or_else(|| to_usize(&cols), Taps::input_range);
    let row_span = vertical
        .as_ref()
        .map_or_else(|| to_usize(&rows), Taps::input_range);

    let mut plane = Plane::window(img, col_span.clone(), row_span.clone());
    let vertical_first = vertical_first(in_w, in_h, width, height);
    if let (Some(taps), true) = (&vertical, vertical_first) {
        plane = plane.vertical(taps, row_span.start);
    }
    if let Some(taps) = &horizontal {
        plane = plane.horizontal(taps, col_span.start);
    }
    if let (Some(taps), false) = (&vertical, vertical_first) {
        plane = plane.vertical(taps, row_span.start);
    }
    RgbImage::from_raw(plane.width as u32, plane.height as u32, plane.data)
        .expect("plane holds width * height pixels")
}

/// Whether the vertical pass runs first. Pillow has always run the
/// horizontal pass first, but recent versions (pull request #9549, "if
/// height is scaled down significantly more than width, resize vertically
/// first") switch the order, and the order changes the rounding of the
/// intermediate image, so it must match. The reference data pins the rule
/// down: with exact JPEG decoding, the resize order that reproduces the
/// reference top-5 predictions of every image in the sample is vertical
/// first exactly when the height shrinks, by more than twice as many pixels
/// as the width does (375x500 -> 256x256: 244 > 2 * 119, vertical first;
/// 381x500: 244 < 2 * 125, 446x600 and 1124x1632, horizontal first; a
/// 150x200 image, whose height grows, horizontal first).
fn vertical_first(in_w: u32, in_h: u32, out_w: u32, out_h: u32) -> bool {
    let y_shrink = i64::from(in_h) - i64::from(out_h);
    let x_shrink = i64::from(in_w) - i64::from(out_w);
    y_shrink > 0 && y_shrink > 2 * x_shrink
}

/// A block of interleaved RGB pixels, the input or output of one pass.
struct Plane {
    data: Vec<u8>,
    width: usize,
    height: usize,
}

impl Plane {
    /// Copy of the `cols x rows` window of `img`.
    fn window(img: &RgbImage, cols: Range<usize>, rows: Range<usize>) -> Plane {
        let stride = img.width() as usize * CHANNELS;
        let src = img.as_raw();
        let mut data = Vec::with_capacity(cols.len() * rows.len() * CHANNELS);
        for y in rows.clone() {
            data.extend_from_slice(
                &src[y * stride + cols.start * CHANNELS..y * stride + cols.end * CHANNELS],
            );
        }
        Plane {
            data,
            width: cols.len(),
            height: rows.len(),
        }
    }

    /// Resample every row with `taps`; column 0 of `self` is input index `origin`.
    fn horizontal(&self, taps: &Taps, origin: usize) -> Plane {
        let width = taps.spans.len();
        let mut data = Vec::with_capacity(width * self.height * CHANNELS);
        let stride = self.width * CHANNELS;
        for y in 0..self.height {
            let line = &self.data[y * stride..][..stride];
            for x in 0..width {
                let (first, weights) = taps.get(x);
                let first = first - origin;
                data.extend(convolve(weights, |i, c| line[(first + i) * CHANNELS + c]));
            }
        }
        Plane {
            data,
            width,
            height: self.height,
        }
    }

    /// Resample every column with `taps`; row 0 of `self` is input index `origin`.
    fn vertical(&self, taps: &Taps, origin: usize) -> Plane {
        let height = taps.spans.len();
        let stride = self.width * CHANNELS;
        let mut data = Vec::with_capacity(self.width * height * CHANNELS);
        for y in 0..height {
            let (first, weights) = taps.get(y);
            let first = first - origin;
            for x in 0..self.width {
                data.extend(convolve(weights, |i, c| {
                    self.data[(first + i) * stride + x * CHANNELS + c]
                }));
            }
        }
        Plane {
            data,
            width: self.width,
            height,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random RGB image.
    fn noise(width: u32, height: u32) -> RgbImage {
        let mut state = 0x2545_f491_u32;
        RgbImage::from_fn(width, height, |_, _| {
            let mut px = [0u8; 3];
            for v in &mut px {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *v = (state >> 24) as u8;
            }
            image::Rgb(px)
        })
    }

    #[test]
    fn weights_of_a_4_to_2_shrink_match_a_direct_computation() {
        // Shrinking 4 samples to 2 stretches the triangle to support 2;
        // output 0 is centred at 1.0 and covers inputs 0..3 with weights
        // 0.75, 0.75, 0.25 (before normalisation by their sum 1.75).
        let line = [0u8, 100, 200, 255];
        let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([line[x as usize]; 3]));
        let out = resize(&img, 2, 1);
        let expect0: f64 = (0.75 * 0.0 + 0.75 * 100.0 + 0.25 * 200.0) / 1.75;
        let expect1: f64 = (0.25 * 100.0 + 0.75 * 200.0 + 0.75 * 255.0) / 1.75;
        assert_eq!(out.get_pixel(0, 0).0, [expect0.round() as u8; 3]);
        assert_eq!(out.get_pixel(1, 0).0, [expect1.round() as u8; 3]);
    }

    #[test]
    fn constant_images_stay_constant() {
        for (w, h, ow, oh) in [
            (500, 333, 384, 256),
            (333, 500, 256, 256),
            (50, 40, 256, 256),
            (7, 300, 3, 5),
        ] {
            let img = RgbImage::from_pixel(w, h, image::Rgb([0, 128, 255]));
            let out = resize(&img, ow, oh);
            assert_eq!(out.dimensions(), (ow, oh));
            assert!(
                out.pixels().all(|p| p.0 == [0, 128, 255]),
                "{w}x{h} -> {ow}x{oh}"
            );
        }
    }

    #[test]
    fn same_size_is_the_identity() {
        let img = noise(37, 23);
        assert_eq!(resize(&img, 37, 23), img);
    }

    #[test]
    fn a_region_equals_the_same_window_of_the_full_resize() {
        // Horizontal-first and vertical-first orders, shrinking and growing.
        for (w, h, ow, oh) in [
            (101, 67, 64, 43),
            (67, 101, 40, 40),
            (30, 20, 45, 50),
            (64, 80, 64, 30),
        ] {
            let img = noise(w, h);
            let full = resize(&img, ow, oh);
            let (cols, rows) = (5..ow - 7, 3..oh - 2);
            let region = resize_region(&img, ow, oh, cols.clone(), rows.clone());
            let expected = image::imageops::crop_imm(
                &full,
                cols.start,
                rows.start,
                cols.len() as u32,
                rows.len() as u32,
            );
            assert_eq!(region, expected.to_image(), "{w}x{h} -> {ow}x{oh}");
        }
    }

    #[test]
    fn vertical_first_only_when_height_shrinks_much_more() {
        assert!(vertical_first(333, 500, 256, 256));
        assert!(vertical_first(375, 500, 256, 256));
        assert!(vertical_first(238, 350, 256, 256)); // width grows, height shrinks
        assert!(!vertical_first(381, 500, 256, 256));
        assert!(!vertical_first(333, 500, 256, 384));
        assert!(!vertical_first(500, 333, 256, 256));
        assert!(!vertical_first(150, 200, 256, 256)); // both grow
    }

    #[test]
    fn empty_inputs_and_outputs_do_not_panic() {
        let empty = RgbImage::new(0, 0);
        assert_eq!(resize(&empty, 3, 2).dimensions(), (3, 2));
        assert_eq!(resize(&noise(5, 5), 0, 0).dimensions(), (0, 0));
        assert_eq!(
            resize_region(&noise(5, 5), 4, 4, 3..10, 9..12).dimensions(),
            (1, 0)
        );
    }
}
