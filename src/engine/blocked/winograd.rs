//! Winograd F(2x2, 3x3) convolution on the blocked layout, for 3x3
//! convolutions with stride 1 over at least one full block of input
//! channels (SqueezeNet's expand layers, VGG's layers).
//!
//! The output is cut into tiles of 2 x 2 pixels. Each tile's 4 x 4 input
//! window `d` becomes `V = Bᵀ d B` and each filter `g` becomes
//! `U = G g Gᵀ` (once, at packing); then for each of the 16 points of the
//! transformed tile, `M = Σ over input channels of U V` is a product of
//! depth `in_c` (not `9 in_c`), computed by the direct micro-kernel as a
//! 1x1 convolution over tiles; the tile's output is `Aᵀ M A`. That is 16
//! multiply-adds per 4 outputs instead of 36: 2.25 times fewer, for the
//! price of the two transforms (additions only, on 16 channels at once).
//!
//! **Rounding.** The result is the convolution's exact value up to float
//! rounding, but not the same bits as the direct kernels: the transforms
//! add and subtract inputs before multiplying, and `U` is rounded once to
//! float. With `|x| ≤ X`, `|w| ≤ W` and `k = in_c`, every transformed
//! value is bounded (`|V| ≤ 4X`, `|U| ≤ 9W/4`), so each of the 16 sums
//! is at most `9 k X W` in size with rounding error below `(k + 2) ε` of
//! that, and the 9 terms the output transform adds at most 9 times it:
//! `|winograd − exact| ≤ 81 (k + 2) k ε X W` (`ε = 2⁻²³`), plus the direct
//! kernel's own error. That is a loose bound; measured on the shipped
//! SqueezeNets, logits stay within 1e-4 of the reference (README, Speed).
//! The work is cut into fixed tasks (per image, per group of 4 output
//! blocks, a fixed run of tiles) and each value is computed in the same
//! order whatever the split, so the bits do not depend on the thread count.

use std::cell::RefCell;

use formats::{Conv, Layer};

use super::conv::{chunk_count, for_each_task, Destination, SharedOutput, Task};
use super::kernel::{convolve, Filters, Source, Target, BLOCKS, POSITIONS};
use super::{Blocked, LANES};
use crate::engine::buffers::Buffers;
use crate::engine::kernel::Kernel;

/// Points of a transformed tile (4 x 4).
const POINTS: usize = 16;
/// The point that adds into every output of its tile with coefficient 1
/// (row 1, column 1 of `Aᵀ M A`): its sum starts at the bias, so the
/// output transform adds no bias.
const BIAS_POINT: usize = 5;
/// Tiles per task at most. A task's transformed inputs and products
/// (16 points x 64 channels x 36 tiles, 147 KiB each) stay in the
/// second-level cache.
const TILES_PER_TASK: usize = 36;
/// Bias of the points other than [`BIAS_POINT`].
const ZERO_BIAS: [f32; BLOCKS * LANES] = [0.0; BLOCKS * LANES];

thread_local! {
    /// Per-thread scratch: transformed inputs, then products.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A 3x3 layer's filters transformed (`U = G g Gᵀ`, in double precision,
/// rounded once) and packed for the micro-kernel: for each of the 16
/// points, blocks of 16 output channels, each `in_c x 16`.
#[derive(Debug, Clone)]
pub(crate) struct WinogradLayer {
    /// `[point][block][input channel][lane]`.
    weights: Vec<f32>,
    /// Biases, padded with zeros to whole blocks.
    bias: Vec<f32>,
    /// Input channels.
    channels: usize,
    /// Output blocks.
    blocks: usize,
}

impl WinogradLayer {
    /// Whether a convolution of `layer` as `conv` says runs here: 3x3,
    /// stride 1, no groups, at least [`LANES`] input channels (a smaller
    /// input is in blocks of one channel, and is the network's image,
    /// whose convolution the direct kernel does better).
    pub(crate) fn fits(layer: &Layer, conv: &Conv) -> bool {
        let [_, in_c, kh, kw] = layer.shape;
        [kh, kw, conv.stride_h, conv.stride_w, conv.groups] == [3, 3, 1, 1, 1] && in_c >= LANES
    }

    /// Transform and pack `layer` (3x3; its data fits its shape).
    pub(crate) fn new(layer: &Layer) -> Self {
        let [out_c, in_c, kh, kw] = layer.shape;
        assert_eq!([kh, kw], [3, 3], "Winograd F(2x2, 3x3) takes 3x3 filters");
        let blocks = out_c.div_ceil(LANES);
        let mut weights = vec![0.0; POINTS * blocks * in_c * LANES];
        for (out, filters) in layer.weights.chunks_exact(in_c * 9).enumerate() {
            for (channel, filter) in filters.chunks_exact(9).enumerate() {
                for (point, value) in transform_filter(filter).into_iter().enumerate() {
                    let block = point * blocks + out / LANES;
                    weights[(block * in_c + channel) * LANES + out % LANES] = value;
                }
            }
        }
        let mut bias = layer.bias.clone();
        bias.resize(blocks * LANES, 0.0);
        WinogradLayer {
            weights,
            bias,
            channels: in_c,
            blocks,
        }
    }

    /// The filters of `point` for output blocks `first..first + blocks`.
    fn filters(&self, point: usize, first: usize, blocks: usize) -> Filters<'_> {
        let depth = self.channels;
        Filters {
            weights: &self.weights[(point * self.blocks + first) * depth * LANES..],
            bias: Some(if point == BIAS_POINT {
                &self.bias[first * LANES..]
            } else {
                &ZERO_BIAS
            }),
            depth,
            stride: depth * LANES,
            blocks,
        }
    }
}

/// `G g Gᵀ` for one 3x3 filter `g` (row-major), the 4 x 4 result
/// row-major, computed in double precision.
fn transform_filter(g: &[f32]) -> [f32; POINTS] {
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    std::array::from_fn(|point| {
        let (i, j) = (point / 4, point % 4);
        let mut sum = 0.0;
        for y in 0..3 {
            for x in 0..3 {
                sum += G[i][y] * f64::from(g[y * 3 + x]) * G[j][x];
            }
        }
        sum as f32
    })
}

/// Convolve `input` (in [`LANES`] lanes) with `layer` as `conv` says
/// (stride 1, [`WinogradLayer::fits`]) into `destination`; `buffers`
/// lends the zero-bordered copy of the input.
pub(crate) fn conv2d_winograd(
    _proof: Kernel,
    input: &Blocked,
    layer: &WinogradLayer,
    conv: &Conv,
    Destination {
        output,
        first_block,
    }: Destination<'_>,
    buffers: &mut Buffers,
) {
    assert_eq!((input.lanes, output.lanes), (LANES, LANES));
    assert_eq!(input.shape[1], layer.channels);
    assert!(first_block + layer.blocks <= output.blocks());
    let [batch, _, _, _] = input.shape;
    let [_, _, out_h, out_w] = output.shape;
    let tiles = Tiles {
        rows: out_h.div_ceil(2),
        cols: out_w.div_ceil(2),
    };
    // Every tile's 4 x 4 window lies inside the copy, the last row and
    // column of tiles included when the output's size is odd.
    let size = [2 * tiles.rows + 2, 2 * tiles.cols + 2];
    let padded = input.padded_to([conv.pad_h, conv.pad_w], size, buffers);
    let count = tiles.rows * tiles.cols;
    let chunks = chunk_count(count, TILES_PER_TASK, batch, layer.blocks);
    let (out_image, out_plane) = (output.image_len(), output.plane_len());
    let out = SharedOutput(output.data.as_mut_ptr());
    let relu = conv.relu;
    for_each_task(batch, layer.blocks, chunks, |task| {
        let Task {
            image,
            first,
            blocks,
            ..
        } = task;
        let share = task.share(count, chunks);
        let run = Run {
            first: share.start,
            len: share.len(),
        };
        let image_values = &padded.data[image * padded.image_len()..][..padded.image_len()];
        SCRATCH.with_borrow_mut(|(transformed, products)| {
            transformed.resize(POINTS * padded.blocks() * run.len * LANES, 0.0);
            products.resize(POINTS * blocks * run.len * LANES, 0.0);
            // SAFETY: a `Kernel` proves AVX-512F; `transform_inputs`
            // reads windows inside the zero-bordered copy.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx512::transform_inputs(&padded, image_values, &tiles, run, transformed)
            };
            for point in 0..POINTS {
                let filters = layer.filters(point, first, blocks);
                multiply_point(&padded, transformed, filters, run.len, point, products);
            }
            let place = Placement {
                // SAFETY: the first output block of this task's group
                // lies inside `output` (checked above).
                pointer: unsafe { out.at(image * out_image + (first_block + first) * out_plane) },
                block_stride: out_plane,
                size: [out_h, out_w],
            };
            // SAFETY: as above; tasks write disjoint (block, pixel)
            // sets, and every write is inside the plane (checked by
            // `transform_outputs` against `place.size`).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                avx512::transform_outputs(products, blocks, &tiles, run, relu, place)
            };
        });
    });
    buffers.keep(padded.data);
}

/// The tiles of an output plane: `rows x cols`, numbered row by row.
struct Tiles {
    rows: usize,
    cols: usize,
}

/// The tiles `first..first + len` of a plane, one task's share.
#[derive(Clone, Copy)]
struct Run {
    first: usize,
    len: usize,
}

/// Where a task writes: output block `b`'s plane starts at `pointer + b *
/// block_stride` and has `size = [height, width]` pixels of 16 values.
struct Placement {
    pointer: *mut f32,
    block_stride: usize,
    size: [usize; 2],
}

/// The products of one point for `tiles` tiles: a 1x1 convolution over
/// the tiles by the micro-kernel, [`POSITIONS`] tiles per call, from
/// `transformed` (`[point][input block][tile][lane]`) into `products`
/// (`[point][output block][tile][lane]`).
fn multiply_point(
    padded: &Blocked,
    transformed: &[f32],
    filters: Filters<'_>,
    tiles: usize,
    point: usize,
    products: &mut [f32],
) {
    let plane = tiles * LANES;
    let inputs = &transformed[point * padded.blocks() * plane..];
    let outputs = &mut products[point * filters.blocks * plane..][..filters.blocks * plane];
    for start in (0..tiles).step_by(POSITIONS) {
        let source = Source {
            values: &inputs[start * LANES..],
            channels: padded.shape[1],
            lanes: LANES,
            block_stride: plane,
            row_stride: 0,
            position_stride: LANES,
            kernel: [1, 1],
        };
        let target = Target {
            pointer: outputs[start * LANES..].as_mut_ptr(),
            block_stride: plane,
            positions: POSITIONS.min(tiles - start),
        };
        // SAFETY: the proof of AVX-512F was checked by the caller; the
        // target's `blocks` planes of `tiles` pixels lie in `outputs`.
        unsafe { convolve(source, filters, false, target) };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Blocked, Placement, Run, Tiles, LANES, POINTS};

    /// `V = Bᵀ d B` of every input block of every tile of `run` of one
    /// image (`image`, in the zero-bordered copy `padded`) into
    /// `transformed`, `[point][input block][tile][lane]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_inputs(
        padded: &Blocked,
        image: &[f32],
        tiles: &Tiles,
        run: Run,
        transformed: &mut [f32],
    ) {
        let (blocks, plane) = (padded.blocks(), padded.plane_len());
        let row_stride = padded.shape[3] * LANES;
        let point_stride = blocks * run.len * LANES;
        assert!(transformed.len() >= POINTS * point_stride);
        for t in 0..run.len {
            let tile = run.first + t;
            let (ty, tx) = (tile / tiles.cols, tile % tiles.cols);
            for block in 0..blocks {
                let corner = block * plane + 2 * ty * row_stride + 2 * tx * LANES;
                let window = &image[corner..][..3 * row_stride + 4 * LANES];
                let d: [[__m512; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| {
                        _mm512_loadu_ps(window.as_ptr().add(i * row_stride + j * LANES))
                    })
                });
                let mut r = [[_mm512_setzero_ps(); 4]; 4];
                for j in 0..4 {
                    r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                    r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                    r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                    r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
                }
                let out = transformed.as_mut_ptr().add((block * run.len + t) * LANES);
                for (i, r) in r.iter().enumerate() {
                    let v = [
                        _mm512_sub_ps(r[0], r[2]),
                        _mm512_add_ps(r[1], r[2]),
                        _mm512_sub_ps(r[2], r[1]),
                        _mm512_sub_ps(r[1], r[3]),
                    ];
                    for (j, v) in v.into_iter().enumerate() {
                        _mm512_storeu_ps(out.add((i * 4 + j) * point_stride), v);
                    }
                }
            }
        }
    }

    /// `Aᵀ M A` of every tile of `run` for `blocks` output blocks, from
    /// `products` (`[point][block][tile][lane]`, bias included), through
    /// ReLU if `relu`, written to the tile's pixels that lie inside the
    /// plane.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, and `place` must be valid for writes of
    /// `blocks` planes of its size that no other thread touches.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_outputs(
        products: &[f32],
        blocks: usize,
        tiles: &Tiles,
        run: Run,
        relu: bool,
        place: Placement,
    ) {
        let point_stride = blocks * run.len * LANES;
        assert!(products.len() >= POINTS * point_stride);
        let [height, width] = place.size;
        let zero = _mm512_setzero_ps();
        for block in 0..blocks {
            let plane = place.pointer.add(block * place.block_stride);
            for t in 0..run.len {
                let tile = run.first + t;
                let (ty, tx) = (tile / tiles.cols, tile % tiles.cols);
                let m = products.as_ptr().add((block * run.len + t) * LANES);
                let m: [[__m512; 4]; 4] = std::array::from_fn(|i| {
                    std::array::from_fn(|j| _mm512_loadu_ps(m.add((i * 4 + j) * point_stride)))
                });
                let mut t0 = m[0];
                let mut t1 = m[0];
                for j in 0..4 {
                    t0[j] = _mm512_add_ps(_mm512_add_ps(m[0][j], m[1][j]), m[2][j]);
                    t1[j] = _mm512_sub_ps(_mm512_sub_ps(m[1][j], m[2][j]), m[3][j]);
                }
                for (dy, t) in [t0, t1].iter().enumerate() {
                    let y = 2 * ty + dy;
                    if y >= height {
                        continue;
                    }
                    let pair = [
                        _mm512_add_ps(_mm512_add_ps(t[0], t[1]), t[2]),
                        _mm512_sub_ps(_mm512_sub_ps(t[1], t[2]), t[3]),
                    ];
                    for (dx, mut value) in pair.into_iter().enumerate() {
                        let x = 2 * tx + dx;
                        if x >= width {
                            continue;
                        }
                        if relu {
                            value = _mm512_max_ps(value, zero);
                        }
                        _mm512_storeu_ps(plane.add((y * width + x) * LANES), value);
                    }
                }
            }
        }
    }
}
