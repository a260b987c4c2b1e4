//! Recycling of blob buffers within one forward pass.
//!
//! A fresh large allocation costs a page fault and a kernel-side zeroing per
//! page when first written, which made up about a quarter of SqueezeNet's
//! run time. The executor therefore hands every freed blob's buffer back
//! here and takes the buffers of new blobs from here. Operations overwrite
//! every value of their output, so a recycled buffer's old contents never
//! show. Nothing outlives the forward pass.

use super::Tensor;

/// How many times too large a recycled buffer may be before it gives its
/// excess back to the allocator. Giving it back costs page faults when
/// the memory is needed again: at 2, every SqueezeNet run faulted in
/// about 2 MB per image again (10 % of its time).
const SHRINK_ABOVE: usize = 8;

/// Buffers of freed blobs, ready to hold new ones.
pub(crate) struct Buffers {
    free: Vec<Vec<f32>>,
    /// Whether freed buffers are kept at all.
    keeping: bool,
}

impl Default for Buffers {
    /// A pool that keeps every freed buffer.
    fn default() -> Self {
        Buffers {
            free: Vec::new(),
            keeping: true,
        }
    }
}

impl Buffers {
    /// A pool that keeps nothing: every freed buffer goes straight back to
    /// the allocator.
    pub fn releasing() -> Self {
        Buffers {
            free: Vec::new(),
            keeping: false,
        }
    }

    /// A tensor of `shape` (whose element count shape inference checked)
    /// with unspecified contents: the smallest free buffer that is large
    /// enough, else a new one. A buffer more than [`SHRINK_ABOVE`] times too
    /// large gives its excess back to the allocator, so recycling never
    /// holds far more memory than the live blobs.
    pub fn tensor(&mut self, shape: [usize; 4]) -> Tensor {
        Tensor {
            shape,
            data: self.values(shape.iter().product()),
        }
    }

    /// A buffer of `len` values with unspecified contents, chosen as for
    /// [`Buffers::tensor`].
    pub fn values(&mut self, len: usize) -> Vec<f32> {
        let best = (0..self.free.len())
            .filter(|&i| self.free[i].capacity() >= len)
            .min_by_key(|&i| self.free[i].capacity());
        match best {
            Some(i) => {
                let mut data = self.free.swap_remove(i);
                data.resize(len, 0.0);
                if data.capacity() / SHRINK_ABOVE > len {
                    data.shrink_to_fit();
                }
                data
            }
            None => vec![0.0; len],
        }
    }

    /// Keep `tensor`'s buffer for a later [`Buffers::tensor`].
    pub fn recycle(&mut self, tensor: Tensor) {
        self.keep(tensor.data);
    }

    /// Keep `values` for a later [`Buffers::values`] (drop them, if this
    /// pool keeps nothing).
    pub fn keep(&mut self, values: Vec<f32>) {
        if self.keeping {
            self.free.push(values);
        }
    }
}
