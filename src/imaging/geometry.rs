//! Where the resize and centre crop of a preprocessing preset land, using
//! the same integer conventions as torchvision so crops match pixel for pixel.

use formats::Resize;

/// Size `(width, height)` of an image of `width x height` after `resize`.
///
/// `ShorterSide(s)` scales the shorter side to `s` and the longer to
/// `round(s * long / short)` (Python's round, half to even), so a 500x333
/// image becomes 384x256. torchvision's `Resize(s)` documents `int(...)`,
/// i.e. truncation, but the reference tensors were made with rounding: their
/// 500x409 image is resized to 313x256 (312.96 rounded), and truncating to
/// 312 shifts every pixel. The result saturates instead of overflowing for
/// absurd presets.
pub fn resized_size(width: u32, height: u32, resize: Resize) -> (u32, u32) {
    match resize {
        Resize::Exact { width, height } => (width, height),
        Resize::ShorterSide(side) => {
            let long_side = |long: u32, short: u32| {
                (f64::from(side) * f64::from(long) / f64::from(short)).round_ties_even() as u32
            };
            if width <= height {
                (side, long_side(height, width))
            } else {
                (long_side(width, height), side)
            }
        }
    }
}

/// Offset of a centred window of length `crop` in a side of length `size`,
/// as torchvision's `CenterCrop` computes it: `int(round((size - crop) /
/// 2.0))` with Python's round-half-to-even, so an odd margin of 29 gives 14
/// and one of 31 gives 16. When `crop > size` torchvision first pads the
/// image with zeros, `(crop - size) // 2` on the leading side, which is a
/// negative offset here.
pub fn crop_offset(size: u32, crop: u32) -> i64 {
    let margin = i64::from(size) - i64::from(crop);
    if margin < 0 {
        return -((-margin) / 2);
    }
    let half = margin / 2;
    // margin odd: the exact half is `half + 0.5`; round to the even neighbour.
    if margin % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_rounds_the_longer_side() {
        // round(256 * 500 / 333) = round(384.38) = 384
        assert_eq!(resized_size(500, 333, Resize::ShorterSide(256)), (384, 256));
        assert_eq!(resized_size(333, 500, Resize::ShorterSide(256)), (256, 384));
        // square images keep both sides equal
        assert_eq!(resized_size(300, 300, Resize::ShorterSide(256)), (256, 256));
        // round(256 * 500 / 375) = round(341.33) = 341
        assert_eq!(resized_size(500, 375, Resize::ShorterSide(256)), (341, 256));
        // round(256 * 500 / 409) = round(312.96) = 313, as in the reference data
        assert_eq!(resized_size(500, 409, Resize::ShorterSide(256)), (313, 256));
        // exact halves go to the even neighbour: 256 * 3 / 512 * ... 10 * 27 / 4 = 67.5 -> 68, 10 * 25 / 4 = 62.5 -> 62
        assert_eq!(resized_size(4, 27, Resize::ShorterSide(10)), (10, 68));
        assert_eq!(resized_size(4, 25, Resize::ShorterSide(10)), (10, 62));
        assert_eq!(
            resized_size(
                10,
                20,
                Resize::Exact {
                    width: 256,
                    height: 256
                }
            ),
            (256, 256)
        );
    }

    #[test]
    fn crop_offset_rounds_half_to_even() {
        assert_eq!(crop_offset(256, 224), 16);
        assert_eq!(crop_offset(256, 227), 14); // round(14.5) = 14
        assert_eq!(crop_offset(341, 224), 58); // round(58.5) = 58
        assert_eq!(crop_offset(343, 224), 60); // round(59.5) = 60
        assert_eq!(crop_offset(224, 224), 0);
        assert_eq!(crop_offset(225, 224), 0); // round(0.5) = 0
        assert_eq!(crop_offset(227, 224), 2); // round(1.5) = 2
    }

    #[test]
    fn crop_larger_than_image_pads_like_torchvision() {
        // torchvision pads (224 - 100) // 2 = 62 on the left
        assert_eq!(crop_offset(100, 224), -62);
        assert_eq!(crop_offset(101, 224), -61);
    }
}
