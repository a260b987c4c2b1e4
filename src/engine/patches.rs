//! The input patches a convolution's weights multiply, exposed for
//! calibration: a compressor accumulates statistics of exactly the columns
//! the engine's GEMM sees, zero padding included.

use formats::Conv;

use super::conv::ConvGeometry;
use super::im2col::im2col;
use super::shapes::conv_len;
use super::{EngineError, Tensor};

/// The im2col matrix of image `image` of the NCHW `input` for `conv` with a
/// `kernel = [kh, kw]` window: `(channels * kh * kw) x (out_h * out_w)`,
/// row-major, row `(c, ky, kx)`, column `(oy, ox)`.
/// For a grouped convolution the matrix covers every input channel: group
/// `g`'s weights multiply rows `g * d .. (g + 1) * d`, `d = (channels /
/// groups) * kh * kw` (the depth of the layer's shape).
pub fn conv_patches(
    input: &Tensor,
    image: usize,
    kernel: [usize; 2],
    conv: &Conv,
) -> Result<Vec<f32>, EngineError> {
    let [n, channels, h, w] = input.shape;
    if image >= n {
        return Err(EngineError::Input(format!(
            "image {image} of a batch of {n}"
        )));
    }
    let out = |len, k, s, p| {
        conv_len(len, k, s, p).ok_or_else(|| {
            EngineError::Input(format!(
                "{}x{} kernel does not fit a {h}x{w} input",
                kernel[0], kernel[1]
            ))
        })
    };
    let out_h = out(h, kernel[0], conv.stride_h, conv.pad_h)?;
    let out_w = out(w, kernel[1], conv.stride_w, conv.pad_w)?;
    let geometry = ConvGeometry::new(input.shape, kernel, conv, [out_h, out_w]);
    let image_len = channels * h * w;
    let mut columns = vec![0.0; channels * kernel[0] * kernel[1] * out_h * out_w];
    im2col(
        &input.data[image * image_len..(image + 1) * image_len],
        &geometry,
        &mut columns,
    );
    Ok(columns)
}
