//! A block-diagonal layer Hessian, so that layers of any width can be
//! calibrated in bounded memory and time.
//!
//! The full Hessian of a layer with `dim` inputs takes `8·dim²` bytes
//! (25,088 inputs, VGG-16's first fully connected layer: 5 GB) and its
//! factorisations `O(dim³)` time. [`BlockHessian`] keeps only the diagonal
//! blocks of consecutive inputs, at most `max_block` each (equal sizes as
//! far as possible): `8·dim·block` bytes. Treating the cross-block terms
//! as zero splits the layer's reconstruction into independent problems,
//! one per block of weight columns, each solved exactly by the full-Hessian
//! algorithms ([`prune_reconstruct`], [`gptq_quantize`]); the error each
//! block makes is compensated only within the block. A layer no wider than
//! `max_block` has one block, which is the full Hessian: nothing changes.
//!
//! Pruning gives every block the layer's sparsity (so a block's zeros are
//! `max(existing, ⌈s·n_block⌉)`, and the layer's at least `⌈s·n⌉`), which
//! forbids moving pruning between blocks; bias correction is exact (it
//! needs only the mean input, which the blocks keep whole).

use std::ops::Range;

use super::bias::shift_bias;
use super::hessian::check_len;
use super::retarget::{retarget_in_place, shift_bias_to_original};
use super::{
    gptq_quantize, output_error, prune_reconstruct, prune_sweep, CalibError, GptqOptions, Hessian,
    PairMoments, ReconstructOptions, Refit, MAX_DIM,
};

/// Inputs per block when the caller does not choose: its Hessian takes
/// 32 MiB and a factorisation about 3 GFLOP.
pub const DEFAULT_MAX_BLOCK: usize = 2048;

/// The diagonal blocks of a layer's input Hessian (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockHessian {
    dim: usize,
    /// Input range of each block, consecutive, covering `0..dim`.
    ranges: Vec<Range<usize>>,
    blocks: Vec<Hessian>,
}

impl BlockHessian {
    /// An empty accumulator for inputs of length `dim` split into blocks of
    /// at most `max_block` inputs (`1..=MAX_DIM`).
    pub fn new(dim: usize, max_block: usize) -> Result<Self, CalibError> {
        let ranges = block_ranges(dim, max_block)?;
        let blocks = ranges
            .iter()
            .map(|r| Hessian::new(r.len()))
            .collect::<Result<_, _>>()?;
        Ok(BlockHessian {
            dim,
            ranges,
            blocks,
        })
    }

    /// Bytes an accumulator of `dim` inputs in blocks of at most
    /// `max_block` holds, without allocating it: what a caller checks
    /// against its memory budget before any work.
    pub fn bytes(dim: usize, max_block: usize) -> Result<usize, CalibError> {
        Ok(Self::block_lengths(dim, max_block)?
            .iter()
            .map(|n| 8 * (n * n + n))
            .sum())
    }

    /// The block lengths an accumulator of `dim` inputs in blocks of at
    /// most `max_block` would have, without allocating it: what a caller
    /// estimates time and memory from before any work.
    pub fn block_lengths(dim: usize, max_block: usize) -> Result<Vec<usize>, CalibError> {
        Ok(block_ranges(dim, max_block)?
            .iter()
            .map(|r| r.len())
            .collect())
    }

    /// Length of one input column.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of blocks (1 means the full Hessian).
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Each block's input range and Hessian.
    pub fn blocks(&self) -> impl Iterator<Item = (&Range<usize>, &Hessian)> {
        self.ranges.iter().zip(&self.blocks)
    }

    /// Adds `n` input columns given as a row-major `dim × n` matrix, as
    /// [`Hessian::accumulate`]: each block takes its consecutive rows.
    pub fn accumulate(&mut self, columns: &[f32], n: usize) -> Result<(), CalibError> {
        check_len("column block", columns, self.dim, n)?;
        for (range, block) in self.ranges.iter().zip(&mut self.blocks) {
            block.accumulate(&columns[range.start * n..range.end * n], n)?;
        }
        Ok(())
    }

    /// Adds the sums of `other`, which must have the same blocks.
    pub fn merge(&mut self, other: &BlockHessian) -> Result<(), CalibError> {
        if other.ranges != self.ranges {
            return Err(CalibError::DimMismatch {
                dim: self.dim,
                other: other.dim,
            });
        }
        for (mine, theirs) in self.blocks.iter_mut().zip(&other.blocks) {
            mine.merge(theirs)?;
        }
        Ok(())
    }

    /// Runs `f` on each block's columns of `weights` (`rows × dim`,
    /// row-major), its Hessian and its index, in block order. A single block works on
    /// `weights` directly; otherwise each block's columns are copied out
    /// and back, so the extra memory is one block of columns.
    fn for_each_block(
        &self,
        weights: &mut [f32],
        rows: usize,
        mut f: impl FnMut(&mut [f32], &Hessian, usize) -> Result<(), CalibError>,
    ) -> Result<(), CalibError> {
        check_len("weights", weights, rows, self.dim)?;
        if let [h] = self.blocks.as_slice() {
            return f(weights, h, 0);
        }
        for (index, (range, h)) in self.blocks().enumerate() {
            let mut part = columns_of(weights, self.dim, range);
            f(&mut part, h, index)?;
            for (row, new) in weights
                .chunks_exact_mut(self.dim)
                .zip(part.chunks_exact(range.len()))
            {
                row[range.clone()].copy_from_slice(new);
            }
        }
        Ok(())
    }
}

/// [`PairMoments`] over the same diagonal blocks as a [`BlockHessian`]
/// of the same `dim` and `max_block`: what [`retarget_blocks`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockPairs {
    ranges: Vec<Range<usize>>,
    blocks: Vec<PairMoments>,
}

impl BlockPairs {
    /// An empty accumulator, blocked as `BlockHessian::new(dim, max_block)`.
    pub fn new(dim: usize, max_block: usize) -> Result<Self, CalibError> {
        let ranges = block_ranges(dim, max_block)?;
        let blocks = ranges
            .iter()
            .map(|r| PairMoments::new(r.len()))
            .collect::<Result<_, _>>()?;
        Ok(BlockPairs { ranges, blocks })
    }

    /// Adds `n` pairs of columns as [`PairMoments::accumulate`]: each
    /// block takes its consecutive rows of both sides.
    pub fn accumulate(
        &mut self,
        compressed: &[f32],
        original: &[f32],
        n: usize,
    ) -> Result<(), CalibError> {
        let dim = self.ranges.last().map_or(0, |r| r.end);
        check_len("compressed columns", compressed, dim, n)?;
        check_len("original columns", original, dim, n)?;
        for (range, block) in self.ranges.iter().zip(&mut self.blocks) {
            let rows = range.start * n..range.end * n;
            block.accumulate(&compressed[rows.clone()], &original[rows], n)?;
        }
        Ok(())
    }

    /// Adds the sums of `other`, which must have the same blocks.
    pub fn merge(&mut self, other: &BlockPairs) -> Result<(), CalibError> {
        if other.ranges != self.ranges {
            let dim = |c: &BlockPairs| c.ranges.last().map_or(0, |r| r.end);
            return Err(CalibError::DimMismatch {
                dim: dim(self),
                other: dim(other),
            });
        }
        for (mine, theirs) in self.blocks.iter_mut().zip(&other.blocks) {
            mine.merge(theirs)?;
        }
        Ok(())
    }

    /// Checks that these blocks are those of `h`, over the same columns.
    fn check_blocks(&self, h: &BlockHessian) -> Result<(), CalibError> {
        if self.ranges != h.ranges {
            return Err(CalibError::DimMismatch {
                dim: h.dim,
                other: self.ranges.last().map_or(0, |r| r.end),
            });
        }
        self.blocks
            .iter()
            .zip(&h.blocks)
            .try_for_each(|(pairs, block)| pairs.check_hessian(block))
    }
}

/// `⌈dim / max_block⌉` consecutive ranges of nearly equal length covering
/// `0..dim`.
fn block_ranges(dim: usize, max_block: usize) -> Result<Vec<Range<usize>>, CalibError> {
    if dim == 0 || max_block == 0 || max_block > MAX_DIM {
        return Err(CalibError::Dim {
            dim: if dim == 0 { dim } else { max_block },
            max: MAX_DIM,
        });
    }
    let count = dim.div_ceil(max_block);
    let (base, extra) = (dim / count, dim % count);
    let mut start = 0;
    Ok((0..count)
        .map(|b| {
            let len = base + usize::from(b < extra);
            start += len;
            start - len..start
        })
        .collect())
}

/// Columns `range` of the row-major `rows × dim` matrix `weights`, as a
/// row-major `rows × range.len()` matrix.
fn columns_of(weights: &[f32], dim: usize, range: &Range<usize>) -> Vec<f32> {
    weights
        .chunks_exact(dim)
        .flat_map(|row| row[range.clone()].iter().copied())
        .collect()
}

/// [`prune_reconstruct`] (or [`prune_sweep`], per `refit`) on each block:
/// every block is pruned to `sparsity` and its survivors fitted on the
/// block's Hessian.
pub fn prune_reconstruct_blocks(
    weights: &mut [f32],
    rows: usize,
    h: &BlockHessian,
    sparsity: f64,
    opts: &ReconstructOptions,
    refit: Refit,
) -> Result<(), CalibError> {
    h.for_each_block(weights, rows, |part, block, _| match refit {
        Refit::Exact => prune_reconstruct(part, rows, block, sparsity, opts).map(|_| ()),
        Refit::Sweep => prune_sweep(part, rows, block, sparsity, opts),
    })
}

/// [`gptq_quantize`] on each block, onto the layer's one `codebook`.
pub fn gptq_quantize_blocks(
    weights: &mut [f32],
    rows: usize,
    h: &BlockHessian,
    codebook: &[f32],
    opts: &GptqOptions,
) -> Result<(), CalibError> {
    h.for_each_block(weights, rows, |part, block, _| {
        gptq_quantize(part, rows, block, codebook, opts).map(|_| ())
    })
}

/// [`correct_bias`] with the block-diagonal Hessian: the bias shift
/// `(W − Ŵ) μ` needs only the mean input, which the blocks hold whole, so
/// this is exactly what the full Hessian gives.
pub fn correct_bias_blocks(
    bias: &mut [f32],
    original: &[f32],
    compressed: &[f32],
    rows: usize,
    h: &BlockHessian,
) -> Result<(), CalibError> {
    check_len("bias", bias, rows, 1)?;
    check_len("original weights", original, rows, h.dim)?;
    check_len("compressed weights", compressed, rows, h.dim)?;
    let mean: Vec<f64> = h.blocks.iter().flat_map(Hessian::mean_input).collect();
    shift_bias(bias, original, compressed, h.dim, &mean);
    Ok(())
}

/// [`retarget_in_place`] on each block: the weights that reproduce the
/// original network's output from the compressed network's inputs, block
/// by block (cross-block terms of `G` and `H` are not kept).
pub fn retarget_blocks(
    weights: &mut [f32],
    rows: usize,
    h: &BlockHessian,
    cross: &BlockPairs,
    damp: f64,
) -> Result<(), CalibError> {
    cross.check_blocks(h)?;
    h.for_each_block(weights, rows, |part, block, index| {
        retarget_in_place(part, rows, block, &cross.blocks[index], damp)
    })
}

/// [`super::correct_bias_to_original`] with the block-diagonal moments:
/// exact, as it needs only the two mean inputs, which the blocks hold whole.
pub fn correct_bias_to_original_blocks(
    bias: &mut [f32],
    original: &[f32],
    compressed: &[f32],
    rows: usize,
    h: &BlockHessian,
    cross: &BlockPairs,
) -> Result<(), CalibError> {
    cross.check_blocks(h)?;
    check_len("bias", bias, rows, 1)?;
    check_len("original weights", original, rows, h.dim)?;
    check_len("compressed weights", compressed, rows, h.dim)?;
    let compressed_mean: Vec<f64> = h.blocks.iter().flat_map(Hessian::mean_input).collect();
    let original_mean: Vec<f64> = cross
        .blocks
        .iter()
        .flat_map(PairMoments::mean_original)
        .collect();
    shift_bias_to_original(
        bias,
        original,
        compressed,
        h.dim,
        &compressed_mean,
        &original_mean,
    );
    Ok(())
}

/// The output error `‖(W − Ŵ) X‖²` as the block-diagonal Hessian sees it:
/// the sum of each block's [`output_error`] (cross-block terms are not
/// kept, so on a layer of several blocks this is an estimate).
pub fn output_error_blocks(
    original: &[f32],
    compressed: &[f32],
    rows: usize,
    h: &BlockHessian,
) -> Result<f64, CalibError> {
    check_len("original weights", original, rows, h.dim)?;
    check_len("compressed weights", compressed, rows, h.dim)?;
    h.blocks().try_fold(0.0, |sum, (range, block)| {
        let o = columns_of(original, h.dim, range);
        let c = columns_of(compressed, h.dim, range);
        Ok(sum + output_error(&o, &c, rows, block)?)
    })
}
