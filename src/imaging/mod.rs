//! Image loading and preprocessing into network input tensors.
//!
//! The pipeline reproduces what the reference runtime did in Python, so the
//! engine sees the same numbers: decode to 8-bit RGB ([`load_rgb`]), resize
//! with Pillow's antialiased bilinear filter ([`resample`]), take the centre
//! crop with torchvision's offsets ([`geometry`]), then normalise each channel
//! as `(pixel * scale - mean) / std` in the preset's channel order.

pub mod augment;
mod decode;
mod error;
pub mod geometry;
pub mod jpeg;
pub mod resample;

use std::path::Path;

use formats::{ChannelOrder, Preprocess, Resize};
use image::RgbImage;
use rayon::prelude::*;

use crate::engine::Tensor;

pub use decode::{decode_rgb, load_rgb, MAX_SIDE};
pub use error::ImagingError;

/// Channels of the network input.
const CHANNELS: usize = 3;

/// Turn one RGB image into the network input for preset `p`: a
/// `3 x crop x crop` CHW float vector.
///
/// Only the part of the resized image inside the crop is computed, so the
/// cost and memory depend on the crop, not on the image's aspect ratio.
/// Where the crop reaches past a small image, the pixel value is 0 (the zero
/// padding torchvision's `CenterCrop` adds). Memory is `12 * crop^2` bytes:
/// run [`check_preprocess`] on presets that do not come from a trusted
/// reader.
pub fn preprocess(img: &RgbImage, p: &Preprocess) -> Vec<f32> {
    let (width, height) = geometry::resized_size(img.width(), img.height(), p.resize);
    let crop = p.crop as usize;
    let left = geometry::crop_offset(width, p.crop);
    let top = geometry::crop_offset(height, p.crop);
    let cols = window(left, p.crop, width);
    let rows = window(top, p.crop, height);
    let region = resample::resize_region(img, width, height, cols.clone(), rows.clone());

    let mut out = vec![0.0f32; CHANNELS * crop * crop];
    for (c, plane) in out.chunks_exact_mut(crop * crop).enumerate() {
        let source_channel = match p.channel_order {
            ChannelOrder::Rgb => c,
            ChannelOrder::Bgr => CHANNELS - 1 - c,
        };
        let table = normalisation_table(p, c);
        for (y, line) in plane.chunks_exact_mut(crop).enumerate() {
            let ry = top + y as i64;
            for (x, v) in line.iter_mut().enumerate() {
                let rx = left + x as i64;
                let pixel = if within(ry, &rows) && within(rx, &cols) {
                    region
                        .get_pixel(
                            (rx - i64::from(cols.start)) as u32,
                            (ry - i64::from(rows.start)) as u32,
                        )
                        .0[source_channel]
                } else {
                    0
                };
                *v = table[usize::from(pixel)];
            }
        }
    }
    out
}

/// Preprocess several images into one `N x 3 x crop x crop` batch. Images
/// are processed in parallel; the result does not depend on the number of
/// threads since each image is computed independently.
pub fn preprocess_batch(images: &[RgbImage], p: &Preprocess) -> Tensor {
    stack(images.par_iter().map(|img| preprocess(img, p)).collect(), p)
}

/// Load and preprocess image files into one batch, in parallel. The preset
/// is checked first ([`check_preprocess`]); if several files fail, the
/// error of the first one in `paths` order is returned, whatever the
/// scheduling.
pub fn load_batch<P: AsRef<Path> + Sync>(
    paths: &[P],
    p: &Preprocess,
) -> Result<Tensor, ImagingError> {
    check_preprocess(p)?;
    let images: Vec<Result<Vec<f32>, ImagingError>> = paths
        .par_iter()
        .map(|path| load_rgb(path.as_ref()).map(|img| preprocess(&img, p)))
        .collect();
    Ok(stack(images.into_iter().collect::<Result<_, _>>()?, p))
}

/// Concatenate per-image CHW vectors into an NCHW tensor.
fn stack(images: Vec<Vec<f32>>, p: &Preprocess) -> Tensor {
    let crop = p.crop as usize;
    Tensor {
        shape: [images.len(), CHANNELS, crop, crop],
        data: images.concat(),
    }
}

/// The part `start .. start + len` of `0 .. size` (empty if none).
fn window(start: i64, len: u32, size: u32) -> std::ops::Range<u32> {
    let clamp = |v: i64| v.clamp(0, i64::from(size)) as u32;
    clamp(start)..clamp(start + i64::from(len))
}

/// Whether `v` lies in `range`.
fn within(v: i64, range: &std::ops::Range<u32>) -> bool {
    (i64::from(range.start)..i64::from(range.end)).contains(&v)
}

/// `(pixel * scale - mean[c]) / std[c]` for every 8-bit pixel value, in f32.
///
/// When `scale` is the reciprocal of an integer `d` (1/255 for torchvision)
/// the pixel is divided by `d` instead, as torchvision's `ToTensor` does:
/// `pixel / 255` and `pixel * (1 / 255)` differ in the last bit for about
/// half of the values, and the reference tensors use the division.
fn normalisation_table(p: &Preprocess, c: usize) -> [f32; 256] {
    let divisor = (1.0 / f64::from(p.scale)).round();
    let exact_reciprocal = divisor >= 1.0 && (divisor as f32).recip() == p.scale;
    std::array::from_fn(|pixel| {
        let value = if exact_reciprocal {
            pixel as f32 / divisor as f32
        } else {
            pixel as f32 * p.scale
        };
        (value - p.mean[c]) / p.std[c]
    })
}

/// Check that a preset describes a sane pipeline: resize sides and crop in
/// `1..=MAX_SIDE`, finite scale, mean and std, and no zero std.
pub fn check_preprocess(p: &Preprocess) -> Result<(), ImagingError> {
    let side_ok = |s: u32| (1..=MAX_SIDE).contains(&s);
    let sides_ok = match p.resize {
        Resize::ShorterSide(s) => side_ok(s),
        Resize::Exact { width, height } => side_ok(width) && side_ok(height),
    };
    if !sides_ok || !side_ok(p.crop) {
        return Err(ImagingError::BadPreprocess(format!(
            "resize {:?} and crop {} must be within 1..={MAX_SIDE}",
            p.resize, p.crop
        )));
    }
    let finite = p.scale.is_finite() && p.mean.iter().chain(&p.std).all(|v| v.is_finite());
    if !finite || p.std.contains(&0.0) {
        return Err(ImagingError::BadPreprocess(format!(
            "scale {}, mean {:?} and std {:?} must be finite with nonzero std",
            p.scale, p.mean, p.std
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_in_channel_order() {
        let img = RgbImage::from_pixel(300, 260, image::Rgb([10, 20, 30]));
        let caffe = preprocess(&img, &Preprocess::caffe());
        let plane = 227 * 227;
        assert_eq!(caffe.len(), 3 * plane);
        // BGR minus (104, 117, 123)
        assert_eq!(
            [caffe[0], caffe[plane], caffe[2 * plane]],
            [30.0 - 104.0, 20.0 - 117.0, 10.0 - 123.0]
        );
        let torch = preprocess(&img, &Preprocess::torchvision());
        assert_eq!(torch[0], (10.0f32 / 255.0 - 0.485) / 0.229);
        assert_eq!(torch[224 * 224], (20.0f32 / 255.0 - 0.456) / 0.224);
    }

    #[test]
    fn crop_beyond_a_small_image_is_zero_padding() {
        let p = Preprocess {
            resize: Resize::Exact {
                width: 4,
                height: 4,
            },
            ..Preprocess::caffe()
        };
        let img = RgbImage::from_pixel(4, 4, image::Rgb([200, 200, 200]));
        let out = preprocess(&img, &p);
        let crop = 227;
        // (227 - 4) / 2 = 111 zero pixels before the image, as torchvision pads.
        let at = |y: usize, x: usize| out[y * crop + x];
        assert_eq!(at(111, 110), -104.0);
        assert_eq!(at(111, 111), 200.0 - 104.0);
        assert_eq!(at(114, 114), 200.0 - 104.0);
        assert_eq!(at(115, 114), -104.0);
    }

    #[test]
    fn degenerate_images_do_not_panic() {
        for (w, h) in [(0, 0), (1, 1), (1, 5000)] {
            let out = preprocess(&RgbImage::new(w, h), &Preprocess::torchvision());
            assert_eq!(out.len(), 3 * 224 * 224);
        }
    }

    #[test]
    fn batches_are_the_concatenation_of_single_images() {
        let images: Vec<RgbImage> = (0..3u8)
            .map(|i| {
                RgbImage::from_fn(40 + u32::from(i), 30, |x, y| {
                    image::Rgb([i, x as u8, y as u8])
                })
            })
            .collect();
        let p = Preprocess::torchvision();
        let batch = preprocess_batch(&images, &p);
        assert_eq!(batch.shape, [3, 3, 224, 224]);
        let singles: Vec<f32> = images.iter().flat_map(|img| preprocess(img, &p)).collect();
        assert_eq!(batch.data, singles);
    }

    #[test]
    fn rejects_absurd_presets() {
        assert!(check_preprocess(&Preprocess::torchvision()).is_ok());
        assert!(check_preprocess(&Preprocess::caffe()).is_ok());
        let bad = [
            Preprocess {
                crop: 0,
                ..Preprocess::caffe()
            },
            Preprocess {
                crop: MAX_SIDE + 1,
                ..Preprocess::caffe()
            },
            Preprocess {
                resize: Resize::ShorterSide(0),
                ..Preprocess::torchvision()
            },
            Preprocess {
                std: [1.0, 0.0, 1.0],
                ..Preprocess::caffe()
            },
            Preprocess {
                scale: f32::NAN,
                ..Preprocess::caffe()
            },
        ];
        for p in bad {
            assert!(check_preprocess(&p).is_err(), "{p:?}");
        }
    }
}
