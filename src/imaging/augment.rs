//! Training-time augmentation: torchvision-style random resized crops and
//! horizontal flips of decoded RGB images, so that a few hundred
//! calibration images give many different views for fine-tuning.
//!
//! A view is drawn from a seeded generator ([`View::draw`]) and then applied
//! ([`View::apply`]) with the same resampling as inference preprocessing, so
//! drawing sequentially and applying in parallel gives the same pixels
//! whatever the thread count.

use compress::rng::SplitMix64;
use formats::{Preprocess, Resize};
use image::RgbImage;

use super::preprocess;

/// Range of the crop's area, as a fraction of the image's area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropScale {
    /// Smallest fraction, in (0, 1].
    pub min: f64,
    /// Largest fraction, in [min, 1].
    pub max: f64,
}

/// Aspect ratios (width / height) a crop may have, drawn log-uniformly
/// (torchvision's `RandomResizedCrop` default, 3/4 to 4/3).
const ASPECT: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

/// Draws of a crop box tried before falling back to the centre crop of the
/// largest box with an allowed aspect ratio (torchvision tries 10).
const CROP_ATTEMPTS: usize = 10;

/// One augmented view of an image: a crop box and whether to mirror it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Left edge of the crop box, in pixels of the source image.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width of the box, at least 1.
    pub width: u32,
    /// Height of the box, at least 1.
    pub height: u32,
    /// Mirror left to right.
    pub flip: bool,
}

impl View {
    /// A random view of an image of `width x height` (both at least 1), as
    /// torchvision's `RandomResizedCrop(scale)` + `RandomHorizontalFlip`
    /// draw it.
    pub fn draw(width: u32, height: u32, scale: CropScale, rng: &mut SplitMix64) -> View {
        let area = f64::from(width) * f64::from(height);
        let (log_lo, log_hi) = (ASPECT.0.ln(), ASPECT.1.ln());
        let mut chosen = None;
        for _ in 0..CROP_ATTEMPTS {
            let target = area * (scale.min + (scale.max - scale.min) * rng.next_f64());
            let aspect = (log_lo + (log_hi - log_lo) * rng.next_f64()).exp();
            let w = (target * aspect).sqrt().round();
            let h = (target / aspect).sqrt().round();
            if w >= 1.0 && h >= 1.0 && w <= f64::from(width) && h <= f64::from(height) {
                let (w, h) = (w as u32, h as u32);
                let left = rng.below(u64::from(width - w) + 1) as u32;
                let top = rng.below(u64::from(height - h) + 1) as u32;
                chosen = Some((left, top, w, h));
                break;
            }
        }
        let (left, top, w, h) = chosen.unwrap_or_else(|| centre_box(width, height));
        View {
            left,
            top,
            width: w,
            height: h,
            flip: rng.next_u64() & 1 == 1,
        }
    }

    /// The view of `img` preprocessed for preset `p`: the box resized to
    /// the preset's crop (Pillow's bilinear, as inference resizes),
    /// mirrored if asked, normalised like [`preprocess`].
    pub fn apply(&self, img: &RgbImage, p: &Preprocess) -> Vec<f32> {
        let mut region =
            image::imageops::crop_imm(img, self.left, self.top, self.width, self.height).to_image();
        if self.flip {
            image::imageops::flip_horizontal_in_place(&mut region);
        }
        let exact = Preprocess {
            resize: Resize::Exact {
                width: p.crop,
                height: p.crop,
            },
            ..*p
        };
        preprocess(&region, &exact)
    }
}

/// The centred box of the whole image clamped to the allowed aspect ratios.
fn centre_box(width: u32, height: u32) -> (u32, u32, u32, u32) {
    let ratio = f64::from(width) / f64::from(height);
    let (w, h) = if ratio < ASPECT.0 {
        (
            width,
            ((f64::from(width) / ASPECT.0).round() as u32).clamp(1, height),
        )
    } else if ratio > ASPECT.1 {
        (
            ((f64::from(height) * ASPECT.1).round() as u32).clamp(1, width),
            height,
        )
    } else {
        (width, height)
    };
    ((width - w) / 2, (height - h) / 2, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCALE: CropScale = CropScale {
        min: 0.35,
        max: 1.0,
    };

    #[test]
    fn views_stay_inside_the_image_and_follow_the_seed() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let mut flips = 0;
        for _ in 0..200 {
            let view = View::draw(500, 333, SCALE, &mut a);
            assert_eq!(view, View::draw(500, 333, SCALE, &mut b));
            assert!(view.width >= 1 && view.left + view.width <= 500);
            assert!(view.height >= 1 && view.top + view.height <= 333);
            let fraction = f64::from(view.width * view.height) / (500.0 * 333.0);
            assert!(fraction > 0.3 && fraction <= 1.0, "{fraction}");
            flips += usize::from(view.flip);
        }
        assert!((50..150).contains(&flips), "{flips} flips of 200");
    }

    #[test]
    fn extreme_shapes_fall_back_to_a_centre_box() {
        let mut rng = SplitMix64::new(1);
        let view = View::draw(1, 400, SCALE, &mut rng);
        assert_eq!((view.width, view.left), (1, 0));
        assert!(view.height >= 1 && view.top + view.height <= 400);
    }

    #[test]
    fn a_flipped_view_is_the_mirror_image() {
        let mut img = RgbImage::new(8, 8);
        for (x, _, pixel) in img.enumerate_pixels_mut() {
            *pixel = image::Rgb([(x * 30) as u8, 0, 0]);
        }
        let p = Preprocess {
            crop: 8,
            ..Preprocess::torchvision()
        };
        let whole = View {
            left: 0,
            top: 0,
            width: 8,
            height: 8,
            flip: false,
        };
        let plain = whole.apply(&img, &p);
        let mirrored = View {
            flip: true,
            ..whole
        }
        .apply(&img, &p);
        for y in 0..8 {
            for x in 0..8 {
                assert_eq!(plain[y * 8 + x], mirrored[y * 8 + 7 - x]);
            }
        }
    }
}
