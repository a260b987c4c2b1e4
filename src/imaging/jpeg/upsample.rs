//! Chroma upsampling to full size as libjpeg-turbo does by default
//! ("fancy" upsampling, `jdsample.c`): a triangle filter for 2:1 ratios
//! (3/4 of the nearer sample, 1/4 of the further one, with libjpeg's
//! alternating rounding biases), plain replication for other integral
//! ratios. Edges repeat the outermost real sample, as libjpeg's context rows
//! and special first/last columns do.

use super::entropy::Plane;
use super::header::{Component, Frame};

/// The component's samples at full image size (`width * height`, row-major),
/// or `None` for a non-integral sampling ratio.
pub fn to_full_size(frame: &Frame, c: &Component, plane: &Plane) -> Option<Vec<u8>> {
    if !frame.h_max.is_multiple_of(c.h) || !frame.v_max.is_multiple_of(c.v) {
        return None;
    }
    let (h_ratio, v_ratio) = (frame.h_max / c.h, frame.v_max / c.v);
    let (width, height) = (frame.width, frame.height);
    // Size of the component's real samples (the rest of the plane is block padding).
    let real_w = (width * c.h).div_ceil(frame.h_max);
    let real_h = (height * c.v).div_ceil(frame.v_max);
    let row = |y: usize| &plane.data[y * plane.stride..][..real_w];
    // The row above (`below == false`) or below a row, repeating the edge rows.
    let neighbour = |y: usize, below: bool| {
        if below {
            (y + 1).min(real_h - 1)
        } else {
            y.saturating_sub(1)
        }
    };

    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        match (h_ratio, v_ratio) {
            (1, 1) => out.extend_from_slice(&row(y)[..width]),
            (2, 1) if real_w > 2 => {
                let samples: Vec<i32> = row(y).iter().map(|&s| i32::from(s)).collect();
                out.extend(triangle_row(&samples, 2, 1, 2).take(width));
            }
            (1, 2) => {
                let (r, below) = (y / 2, y % 2 == 1);
                let bias = if below { 2 } else { 1 };
                let near = row(r).iter().zip(row(neighbour(r, below)));
                out.extend(
                    near.map(|(&n, &f)| ((3 * i32::from(n) + i32::from(f) + bias) >> 2) as u8)
                        .take(width),
                );
            }
            (2, 2) if real_w > 2 => {
                let (r, below) = (y / 2, y % 2 == 1);
                let sums: Vec<i32> = row(r)
                    .iter()
                    .zip(row(neighbour(r, below)))
                    .map(|(&n, &f)| 3 * i32::from(n) + i32::from(f))
                    .collect();
                out.extend(triangle_row(&sums, 4, 8, 7).take(width));
            }
            _ => {
                let source = row(y / v_ratio);
                out.extend((0..width).map(|x| source[x / h_ratio]));
            }
        }
    }
    Some(out)
}

/// Horizontal 2:1 triangle filter: output `2i` is
/// `(3 s[i] + s[i-1] + left_bias) >> shift` and output `2i+1` is
/// `(3 s[i] + s[i+1] + right_bias) >> shift`; at the two ends the missing
/// neighbour is replaced by the edge value itself (`4 s[i]`). With samples,
/// shift 2 and biases 1, 2 this is libjpeg's `h2v1_fancy_upsample`; with
/// vertical sums `3 near + far`, shift 4 and biases 8, 7 it is
/// `h2v2_fancy_upsample`. `sums` must hold at least two values.
fn triangle_row(
    sums: &[i32],
    shift: u32,
    left_bias: i32,
    right_bias: i32,
) -> impl Iterator<Item = u8> + '_ {
    let last = sums.len() - 1;
    (0..sums.len()).flat_map(move |i| {
        let near = 3 * sums[i];
        let left = if i == 0 {
            4 * sums[i]
        } else {
            near + sums[i - 1]
        };
        let right = if i == last {
            4 * sums[i]
        } else {
            near + sums[i + 1]
        };
        [
            ((left + left_bias) >> shift) as u8,
            ((right + right_bias) >> shift) as u8,
        ]
    })
}
