//! The layer Hessian `H = Σ x xᵀ` of the calibration inputs, and the output
//! error it measures.
//!
//! For a layer computing `y = W x`, the squared output error of replacing
//! the weights `W` by `Ŵ`, summed over every calibration input `x`, is
//! `‖(W − Ŵ) X‖² = Σ_rows Δwᵀ H Δw`. So once `H` is accumulated, neither
//! the reconstruction nor its evaluation needs the (large) activations.

use std::ops::Range;

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::{Accum, Mat, MatRef, Par};
use rayon::prelude::*;

use super::CalibError;

/// Largest supported input dimension: the Hessian of 8192 inputs takes
/// 512 MiB. SqueezeNet's largest is 576 (64 channels × 3 × 3).
pub const MAX_DIM: usize = 8192;

/// Columns converted to `f64` and multiplied together (one parallel task).
pub(crate) const CHUNK: usize = 1024;

/// Chunks computed in parallel before their sums are added, in order, to
/// `H`; fixed so that the result does not depend on the thread count.
pub(crate) const GROUP: usize = 8;

/// Running sums over calibration input columns of one layer: `Σ x xᵀ`,
/// `Σ x` and the number of columns, in `f64`.
///
/// The sums depend only on the sequence of [`accumulate`](Self::accumulate)
/// and [`merge`](Self::merge) calls and their arguments, never on the
/// number of threads: columns are summed in fixed chunks, in parallel, and
/// the chunk sums are added in column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Hessian {
    dim: usize,
    /// `Σ x xᵀ`, row-major `dim × dim`; only the lower triangle (column ≤
    /// row) is accumulated, the rest stays zero.
    gram: Vec<f64>,
    /// `Σ x`.
    sum: Vec<f64>,
    /// Number of columns accumulated.
    samples: usize,
}

impl Hessian {
    /// An empty accumulator for inputs (columns) of length `dim`, which must
    /// be in `1..=MAX_DIM`.
    pub fn new(dim: usize) -> Result<Self, CalibError> {
        if dim == 0 || dim > MAX_DIM {
            return Err(CalibError::Dim { dim, max: MAX_DIM });
        }
        Ok(Self {
            dim,
            gram: vec![0.0; dim * dim],
            sum: vec![0.0; dim],
            samples: 0,
        })
    }

    /// Length of one input column: `in_channels · kernel_h · kernel_w` of
    /// the layer.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of input columns accumulated.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Adds `n` input columns given as a row-major `dim × n` matrix: row
    /// `j` holds input feature `j` of every column, column `c` is one input
    /// `x`. This is the layout of the inference engine's im2col matrix of
    /// one image (and, for a 1×1 convolution, of the input activation
    /// itself), so it can be passed on without copying.
    ///
    /// Chunks of a call are multiplied in parallel; for more parallelism
    /// across calls, accumulate disjoint batches into separate Hessians
    /// and [`merge`](Self::merge) them in a fixed order.
    pub fn accumulate(&mut self, columns: &[f32], n: usize) -> Result<(), CalibError> {
        check_len("column block", columns, self.dim, n)?;
        let chunks: Vec<usize> = (0..n).step_by(CHUNK).collect();
        for group in chunks.chunks(GROUP) {
            let partials: Vec<ChunkSums> = group
                .par_iter()
                .map(|&start| ChunkSums::of(columns, n, start..(start + CHUNK).min(n), self.dim))
                .collect();
            for partial in &partials {
                self.add_chunk(partial);
            }
        }
        self.samples += n;
        Ok(())
    }

    /// Adds one chunk's sums (lower triangle of `H` only).
    fn add_chunk(&mut self, chunk: &ChunkSums) {
        let d = self.dim;
        for j in 0..d {
            for i in j..d {
                self.gram[i * d + j] += chunk.gram[(i, j)];
            }
        }
        self.sum
            .iter_mut()
            .zip(&chunk.sum)
            .for_each(|(a, b)| *a += b);
    }

    /// Adds the sums of `other` (accumulated from other columns of the same
    /// layer) to these. Merging partial Hessians in a fixed order keeps
    /// parallel accumulation deterministic.
    pub fn merge(&mut self, other: &Hessian) -> Result<(), CalibError> {
        if other.dim != self.dim {
            return Err(CalibError::DimMismatch {
                dim: self.dim,
                other: other.dim,
            });
        }
        self.gram
            .iter_mut()
            .zip(&other.gram)
            .for_each(|(a, b)| *a += b);
        self.sum
            .iter_mut()
            .zip(&other.sum)
            .for_each(|(a, b)| *a += b);
        self.samples += other.samples;
        Ok(())
    }

    /// The mean input column `Σ x / n` (zeros before any column arrived).
    pub fn mean_input(&self) -> Vec<f64> {
        let n = self.samples.max(1) as f64;
        self.sum.iter().map(|s| s / n).collect()
    }

    /// `H = Σ x xᵀ` as a full symmetric row-major `dim × dim` matrix.
    pub fn gram(&self) -> Vec<f64> {
        let d = self.dim;
        let mut full = self.gram.clone();
        for i in 0..d {
            for j in i + 1..d {
                full[i * d + j] = full[j * d + i];
            }
        }
        full
    }
}

/// `Σ x xᵀ` (lower triangle) and `Σ x` of one chunk of columns.
struct ChunkSums {
    gram: Mat<f64>,
    sum: Vec<f64>,
}

impl ChunkSums {
    /// The sums over `range` of the columns of the row-major `dim × n`
    /// block `columns`, widened to `f64` and multiplied with a sequential
    /// faer product that computes only the lower triangle.
    fn of(columns: &[f32], n: usize, range: Range<usize>, dim: usize) -> Self {
        let len = range.len();
        let (x, sum) = widen_columns(columns, n, range, dim);
        let x = MatRef::from_row_major_slice(&x, dim, len);
        let mut gram = Mat::zeros(dim, dim);
        triangular::matmul(
            gram.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            x,
            BlockStructure::Rectangular,
            x.transpose(),
            BlockStructure::Rectangular,
            1.0,
            Par::Seq,
        );
        Self { gram, sum }
    }
}

/// Columns `range` of the row-major `dim × n` block `columns`, widened to
/// a row-major `dim × range.len()` `f64` matrix, and the sum of each row.
pub(crate) fn widen_columns(
    columns: &[f32],
    n: usize,
    range: Range<usize>,
    dim: usize,
) -> (Vec<f64>, Vec<f64>) {
    let len = range.len();
    let mut x = vec![0.0f64; dim * len];
    let mut sum = vec![0.0f64; dim];
    for (j, (row, s)) in x.chunks_exact_mut(len).zip(&mut sum).enumerate() {
        let source = &columns[j * n + range.start..j * n + range.end];
        row.iter_mut()
            .zip(source)
            .for_each(|(d, v)| *d = f64::from(*v));
        *s = row.iter().sum();
    }
    (x, sum)
}

/// The output error `‖(W − Ŵ) X‖²` over the calibration columns behind
/// `h`, where `original` is `W` and `compressed` is `Ŵ` (`rows × h.dim()`,
/// row-major, as a conv layer's weight slice). Computed as
/// `Σ_rows Δwᵀ H Δw`, so it needs no activations; lets tests and callers
/// measure reconstruction quality.
pub fn output_error(
    original: &[f32],
    compressed: &[f32],
    rows: usize,
    h: &Hessian,
) -> Result<f64, CalibError> {
    check_len("original weights", original, rows, h.dim)?;
    check_len("compressed weights", compressed, rows, h.dim)?;
    let gram = h.gram();
    let per_row = row_errors(original, compressed, h.dim, &gram);
    Ok(per_row.iter().sum())
}

/// `Δwᵀ H Δw` of every row, computed in parallel (one task per row, so the
/// values do not depend on the thread count).
fn row_errors(original: &[f32], compressed: &[f32], dim: usize, gram: &[f64]) -> Vec<f64> {
    original
        .par_chunks(dim)
        .zip(compressed.par_chunks(dim))
        .map(|(w, q)| {
            let delta: Vec<f64> = w
                .iter()
                .zip(q)
                .map(|(a, b)| f64::from(*a) - f64::from(*b))
                .collect();
            quadratic_form(gram, &delta)
        })
        .collect()
}

/// `δᵀ G δ` for a full symmetric row-major `G`; rows where `δ` is zero are
/// skipped, which makes sparse differences cheap.
pub(crate) fn quadratic_form(gram: &[f64], delta: &[f64]) -> f64 {
    let dim = delta.len();
    delta
        .iter()
        .enumerate()
        .filter(|(_, d)| **d != 0.0)
        .map(|(i, d)| d * dot(&gram[i * dim..(i + 1) * dim], delta))
        .sum()
}

/// `Σ aᵢ bᵢ` over equally long slices, in eight interleaved partial sums
/// (a fixed order, so deterministic) that the compiler can vectorise.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0.0f64; LANES];
    let (a_body, a_tail) = a.split_at(a.len() - a.len() % LANES);
    let (b_body, b_tail) = b.split_at(a_body.len());
    for (x, y) in a_body.chunks_exact(LANES).zip(b_body.chunks_exact(LANES)) {
        for k in 0..LANES {
            lanes[k] += x[k] * y[k];
        }
    }
    let tail: f64 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f64>() + tail
}

/// Checks that `values` is a `rows × dim` matrix.
pub(crate) fn check_len<T>(
    what: &'static str,
    values: &[T],
    rows: usize,
    dim: usize,
) -> Result<(), CalibError> {
    let expected = rows.saturating_mul(dim);
    if values.len() == expected {
        Ok(())
    } else {
        Err(CalibError::Length {
            what,
            len: values.len(),
            expected,
        })
    }
}
