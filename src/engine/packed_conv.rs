//! 2-D convolution on the micro-kernel, with weights packed in advance.
//!
//! Per image, the output `out_c x positions` is cut into fixed tasks of
//! [`TASK_ROWS`] channels by [`TASK_COLS`] positions, run in parallel.
//! A task walks its positions [`NR`] at a time and their depth (rows of
//! the image's im2col matrix) [`DEPTH_CHUNK`] rows at a time: it gathers
//! those rows and columns into a small panel (straight from the image, no
//! im2col matrix is ever built; a 1x1 convolution reads the image in place
//! instead) and runs the kernel on it for each block of [`MR`] channels,
//! which adds the bias, applies ReLU after the last chunk and stores the
//! result in place. The output may be a channel range
//! of a wider tensor, so a convolution can write straight into the
//! concatenation that reads it.

use std::cell::RefCell;
use std::ops::Range;

use formats::Conv;
use rayon::prelude::*;

use super::conv::{split_tiles, ConvGeometry, Tile};
use super::im2col::valid_outputs;
use super::kernel::{Kernel, Panel, MR, NR};
use super::packed::PackedLayer;
use super::Tensor;

/// Output channels per task (a multiple of [`MR`]).
const TASK_ROWS: usize = 128;
/// Output positions per task (a multiple of [`NR`]).
const TASK_COLS: usize = 96;
/// Depth of the panel used at once. 640 covers every layer of both
/// SqueezeNets in one pass (at most 576 deep: a panel of 108 KiB, which
/// stays in the second-level cache), so no sum goes through memory
/// between chunks; 640 was faster in the whole network than chunks of
/// 128 or 256 that fit the first-level cache (README, Speed).
const DEPTH_CHUNK: usize = 640;

thread_local! {
    /// Per-thread panel: [`DEPTH_CHUNK`] rows of [`NR`] im2col columns.
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Convolve `input` with `layer` as `conv` says, into channels `channels`
/// of `output` (as many as the layer has; the spatial shape is set
/// and was checked by shape inference).
pub(crate) fn conv2d_packed(
    kernel: Kernel,
    input: &Tensor,
    layer: &PackedLayer,
    conv: &Conv,
    output: &mut Tensor,
    channels: Range<usize>,
) {
    let [_, _, out_h, out_w] = output.shape;
    let g = ConvGeometry::new(input.shape, layer.kernel, conv, [out_h, out_w]);
    let positions = out_h * out_w;
    let out_len = output.image_len();
    output
        .data
        .par_chunks_mut(out_len)
        .zip(input.data.par_chunks(input.image_len()))
        .for_each(|(out, image)| {
            let out = &mut out[channels.start * positions..channels.end * positions];
            split_tiles(out, positions, [TASK_ROWS, TASK_COLS])
                .into_par_iter()
                .for_each(|tile| compute_task(kernel, image, &g, layer, conv.relu, tile));
        });
}

/// All the output values of one task.
fn compute_task(
    kernel: Kernel,
    image: &[f32],
    g: &ConvGeometry,
    layer: &PackedLayer,
    relu: bool,
    mut tile: Tile<'_>,
) {
    let width = tile.width;
    let runs = (0..width)
        .step_by(NR)
        .map(|start| (start, NR.min(width - start)));
    let chunks = || {
        (0..layer.depth)
            .step_by(DEPTH_CHUNK)
            .map(|first| first..layer.depth.min(first + DEPTH_CHUNK))
    };
    if g.is_pointwise() {
        // The image is the im2col matrix already: the kernel reads its
        // rows (channels) in place, a plane apart.
        let plane = g.in_h * g.in_w;
        for (start, cols) in runs {
            for depth in chunks() {
                let panel = Panel {
                    values: &image[depth.start * plane + tile.col + start..],
                    stride: plane,
                    depth: depth.len(),
                };
                multiply_chunk(kernel, layer, relu, &mut tile, [start, cols], depth, panel);
            }
        }
        return;
    }
    let valid: Vec<(usize, usize)> = (0..g.kw)
        .map(|kx| valid_outputs(g.out_w, g.in_w, g.sw, g.pw, kx))
        .collect();
    PANEL.with_borrow_mut(|panel| {
        panel.resize(layer.depth.min(DEPTH_CHUNK) * NR, 0.0);
        for (start, cols) in runs {
            let first = tile.col + start;
            let segments = Segments::new(g, first..first + cols);
            // Each chunk is packed just before the kernel reads it, so it
            // is still in cache.
            for depth in chunks() {
                let rows = &mut panel[..depth.len() * NR];
                pack_rows(image, g, &valid, &segments, depth.clone(), rows);
                let panel = Panel {
                    values: rows,
                    stride: NR,
                    depth: depth.len(),
                };
                multiply_chunk(kernel, layer, relu, &mut tile, [start, cols], depth, panel);
            }
        }
    });
}

/// Add the input rows `depth` of the task's output columns
/// `start..start + cols` (`cols <= NR`), given as `panel`, to the sums of
/// every block of [`MR`] channels: one kernel call per block. The first
/// chunk starts the sums at the bias; the last applies ReLU if `relu`.
fn multiply_chunk(
    kernel: Kernel,
    layer: &PackedLayer,
    relu: bool,
    tile: &mut Tile<'_>,
    [start, cols]: [usize; 2],
    depth: Range<usize>,
    panel: Panel<'_>,
) {
    let last = depth.end == layer.depth;
    for (block, rows) in tile.rows.chunks_mut(MR).enumerate() {
        let (weights, bias) = layer.block(tile.row + block * MR);
        let weights = &weights[depth.start * MR..depth.end * MR];
        let bias = (depth.start == 0).then(|| bias.try_into().expect("MR biases per block"));
        let count = rows.len();
        let mut outs: [&mut [f32]; MR] = Default::default();
        for (out, row) in outs.iter_mut().zip(rows.iter_mut()) {
            *out = &mut row[start..];
        }
        kernel.block(weights, panel, bias, relu && last, &mut outs[..count], cols);
    }
}

/// The positions of one panel (at most [`NR`]), cut where they wrap to
/// the next output row.
struct Segments {
    list: [Segment; NR],
    count: usize,
}

impl Segments {
    fn new(g: &ConvGeometry, columns: Range<usize>) -> Self {
        let mut list = [Segment::default(); NR];
        let mut count = 0;
        let mut start = columns.start;
        while start < columns.end {
            let (oy, first_x) = (start / g.out_w, start % g.out_w);
            let len = (g.out_w - first_x).min(columns.end - start);
            list[count] = Segment {
                oy,
                first_x,
                len,
                offset: start - columns.start,
            };
            count += 1;
            start += len;
        }
        Segments { list, count }
    }
}

/// Fill `rows` (`depth.len() x NR`) with the rows `depth` (row
/// `(c, ky, kx)`) of the im2col matrix of `image` at the positions of
/// `segments`, zeros in the padding; columns past the positions are left
/// as they are (the kernel does not read them). `valid[kx]` is the range
/// of output columns whose input column lies inside the image for kernel
/// column `kx`.
fn pack_rows(
    image: &[f32],
    g: &ConvGeometry,
    valid: &[(usize, usize)],
    segments: &Segments,
    depth: Range<usize>,
    rows: &mut [f32],
) {
    let plane = g.in_h * g.in_w;
    let segments = &segments.list[..segments.count];
    for (k, row) in depth.zip(rows.chunks_exact_mut(NR)) {
        let (channel, ky, kx) = (k / (g.kh * g.kw), k / g.kw % g.kh, k % g.kw);
        let channel = &image[channel * plane..][..plane];
        for segment in segments {
            segment.fill(
                &mut row[segment.offset..][..segment.len],
                channel,
                g,
                [ky, kx],
                valid[kx],
            );
        }
    }
}

/// A run of panel positions within one output row.
#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    /// Output row.
    oy: usize,
    /// Output column of the first position.
    first_x: usize,
    /// Positions.
    len: usize,
    /// Panel column of the first position.
    offset: usize,
}

impl Segment {
    /// Write into `dst` the inputs that kernel cell `[ky, kx]` meets at
    /// this segment's positions in `channel`, zeros in the padding.
    /// `valid` is the range of output columns whose input column lies
    /// inside the image for `kx`.
    fn fill(
        &self,
        dst: &mut [f32],
        channel: &[f32],
        g: &ConvGeometry,
        [ky, kx]: [usize; 2],
        (valid_lo, valid_hi): (usize, usize),
    ) {
        let Some(iy) = (self.oy * g.sh + ky)
            .checked_sub(g.ph)
            .filter(|&iy| iy < g.in_h)
        else {
            dst.fill(0.0);
            return;
        };
        let end = self.first_x + self.len;
        let lo = valid_lo.clamp(self.first_x, end) - self.first_x;
        let hi = valid_hi.clamp(self.first_x + lo, end) - self.first_x;
        dst[..lo].fill(0.0);
        dst[hi..].fill(0.0);
        if lo == hi {
            return;
        }
        let first_in = (self.first_x + lo) * g.sw + kx - g.pw;
        let in_row = &channel[iy * g.in_w..][..g.in_w];
        if g.sw == 1 {
            dst[lo..hi].copy_from_slice(&in_row[first_in..first_in + hi - lo]);
        } else {
            for (value, &x) in dst[lo..hi]
                .iter_mut()
                .zip(in_row[first_in..].iter().step_by(g.sw))
            {
                *value = x;
            }
        }
    }
}
