//! [`Tensor`]: a dense batch of feature maps in NCHW order.

use super::EngineError;

/// A dense float32 tensor of shape `[batch, channels, height, width]`
/// (NCHW), stored row-major: `data[((n * C + c) * H + h) * W + w]`.
///
/// Fields are public so callers can build and read tensors freely; the
/// engine re-checks `data.len()` against `shape` before using one.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// `[n, c, h, w]`.
    pub shape: [usize; 4],
    /// `n * c * h * w` values in NCHW order.
    pub data: Vec<f32>,
}

/// Number of elements of `shape`, or `None` if it overflows `usize`.
pub(crate) fn element_count(shape: [usize; 4]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// Wrap `data` as a tensor of `shape`, checking that the lengths agree.
    pub fn new(shape: [usize; 4], data: Vec<f32>) -> Result<Self, EngineError> {
        let tensor = Tensor { shape, data };
        tensor.check()?;
        Ok(tensor)
    }

    /// A tensor of `shape` filled with zeros; fails if the element count
    /// overflows.
    pub fn zeros(shape: [usize; 4]) -> Result<Self, EngineError> {
        let len = element_count(shape)
            .ok_or_else(|| EngineError::Tensor(format!("shape {shape:?} has too many elements")))?;
        Ok(Tensor {
            shape,
            data: vec![0.0; len],
        })
    }

    /// Check that `data` holds exactly as many values as `shape` describes.
    pub fn check(&self) -> Result<(), EngineError> {
        match element_count(self.shape) {
            Some(len) if len == self.data.len() => Ok(()),
            _ => Err(EngineError::Tensor(format!(
                "shape {:?} does not match {} values",
                self.shape,
                self.data.len()
            ))),
        }
    }

    /// Batch size `n`.
    pub fn batch(&self) -> usize {
        self.shape[0]
    }

    /// Values per image: `c * h * w`.
    pub fn image_len(&self) -> usize {
        self.shape[1] * self.shape[2] * self.shape[3]
    }

    /// The `c * h * w` values of image `n`, or `None` if `n` is out of range.
    pub fn image(&self, n: usize) -> Option<&[f32]> {
        let len = self.image_len();
        self.data
            .get(n.checked_mul(len)?..(n + 1).checked_mul(len)?)
    }

    /// Mutable view of image `n`, or `None` if `n` is out of range.
    pub fn image_mut(&mut self, n: usize) -> Option<&mut [f32]> {
        let len = self.image_len();
        self.data
            .get_mut(n.checked_mul(len)?..(n + 1).checked_mul(len)?)
    }

    /// Flat position of element `(n, c, h, w)`, or `None` if any index is
    /// out of range.
    pub fn offset(&self, n: usize, c: usize, h: usize, w: usize) -> Option<usize> {
        let [bn, bc, bh, bw] = self.shape;
        (n < bn && c < bc && h < bh && w < bw).then(|| ((n * bc + c) * bh + h) * bw + w)
    }

    /// Element `(n, c, h, w)`, or `None` if out of range.
    pub fn get(&self, n: usize, c: usize, h: usize, w: usize) -> Option<f32> {
        self.data.get(self.offset(n, c, h, w)?).copied()
    }

    /// Mutable element `(n, c, h, w)`, or `None` if out of range.
    pub fn get_mut(&mut self, n: usize, c: usize, h: usize, w: usize) -> Option<&mut f32> {
        let offset = self.offset(n, c, h, w)?;
        self.data.get_mut(offset)
    }
}
