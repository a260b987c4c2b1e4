//! 2-D convolution as im2col + GEMM, with bias and optional fused ReLU.
//!
//! Per image, the output `out_c x (out_h * out_w)` is the product of the
//! weights (`out_c x in_c*kh*kw`) and the im2col matrix; a 1x1 convolution
//! with stride 1 and no padding uses the image itself as that matrix. A
//! grouped convolution is one such product per group, on the group's
//! channels of the input and output (contiguous in NCHW); a depthwise one
//! (one input channel per group) runs the direct kernel of
//! [`super::depthwise`] instead. The
//! product is cut into fixed tiles of [`TILE_ROWS`] output channels by
//! [`TILE_COLS`] positions, computed in parallel across images and tiles.
//! Tiles never depend on the batch size or thread count, so neither does
//! any output bit; and a single image still gets several parallel tasks.

use std::cell::RefCell;

use faer::MatRef;
use formats::{Conv, Layer};
use rayon::prelude::*;

use super::depthwise::{conv2d_depthwise, is_depthwise};
use super::elementwise::Activation;
use super::gemm::matmul;
use super::im2col::im2col;
use super::Tensor;

/// Output channels per tile.
const TILE_ROWS: usize = 64;
/// Output positions per tile.
const TILE_COLS: usize = 1024;

/// Sizes of one convolution, as im2col needs them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvGeometry {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub ph: usize,
    pub pw: usize,
}

impl ConvGeometry {
    /// The geometry of `conv` with a `kh x kw` kernel on an NCHW input of
    /// `input_shape` producing `out_h x out_w` positions.
    pub(crate) fn new(
        input_shape: [usize; 4],
        [kh, kw]: [usize; 2],
        conv: &Conv,
        [out_h, out_w]: [usize; 2],
    ) -> Self {
        let [_, channels, in_h, in_w] = input_shape;
        ConvGeometry {
            channels,
            in_h,
            in_w,
            out_h,
            out_w,
            kh,
            kw,
            sh: conv.stride_h,
            sw: conv.stride_w,
            ph: conv.pad_h,
            pw: conv.pad_w,
        }
    }

    /// True when the input image already is the im2col matrix.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
}

/// Convolve `input` with `layer` as `conv` says into `output`, whose shape
/// is set (and was checked by shape inference).
pub(crate) fn conv2d(input: &Tensor, layer: &Layer, conv: &Conv, output: &mut Tensor) {
    if is_depthwise(layer, conv) {
        let activation = Activation {
            relu: conv.relu,
            clip: None,
        };
        return conv2d_depthwise(input, layer, conv, output, activation);
    }
    let [_, _, out_h, out_w] = output.shape;
    let [out_c, group_in_c, kh, kw] = layer.shape;
    let groups = conv.groups;
    let mut geometry = ConvGeometry::new(input.shape, [kh, kw], conv, [out_h, out_w]);
    geometry.channels = group_in_c;
    let group_out_c = out_c / groups;
    let depth = group_in_c * kh * kw;
    let out_len = output.image_len() / groups;
    // Chunk k is group k % groups of image k / groups, in input and output.
    output
        .data
        .par_chunks_mut(out_len)
        .zip(input.data.par_chunks(input.image_len() / groups))
        .enumerate()
        .for_each(|(chunk, (out, image))| {
            let rows = chunk % groups * group_out_c..(chunk % groups + 1) * group_out_c;
            let weights = GroupWeights {
                weights: &layer.weights[rows.start * depth..rows.end * depth],
                bias: &layer.bias[rows],
            };
            convolve_image(image, out, &geometry, weights, conv.relu);
        });
}

/// The weights and biases of one group's output channels: rows of the
/// layer's `out_c x depth` weight matrix.
#[derive(Clone, Copy)]
struct GroupWeights<'a> {
    weights: &'a [f32],
    bias: &'a [f32],
}

/// One output tile: rows `row..row + rows.len()` of the image's output
/// matrix, restricted to columns `col..col + width`.
pub(crate) struct Tile<'a> {
    pub row: usize,
    pub col: usize,
    pub width: usize,
    /// The tile's part of each of its output rows.
    pub rows: Vec<&'a mut [f32]>,
}

thread_local! {
    /// Per-thread im2col matrix, reused from image to image.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread buffer receiving one tile's matrix product.
    static TILE_BUFFER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn convolve_image(
    image: &[f32],
    out: &mut [f32],
    g: &ConvGeometry,
    layer: GroupWeights<'_>,
    relu: bool,
) {
    if g.is_pointwise() {
        return multiply(image, out, g, layer, relu);
    }
    // Taken rather than borrowed: while this thread waits for the tiles
    // below, rayon may run another image's convolution on it.
    let mut columns = COLUMNS.take();
    columns.resize(g.channels * g.kh * g.kw * g.out_h * g.out_w, 0.0);
    im2col(image, g, &mut columns);
    multiply(&columns, out, g, layer, relu);
    COLUMNS.set(columns);
}

/// `out = layer * columns + bias` (then ReLU), tile by tile in parallel.
fn multiply(
    columns: &[f32],
    out: &mut [f32],
    g: &ConvGeometry,
    layer: GroupWeights<'_>,
    relu: bool,
) {
    let positions = g.out_h * g.out_w;
    let columns = MatRef::from_row_major_slice(columns, g.channels * g.kh * g.kw, positions);
    split_tiles(out, positions, [TILE_ROWS, TILE_COLS])
        .into_par_iter()
        .for_each(|tile| compute_tile(tile, layer, columns, relu));
}

/// Cut the `out_c x positions` row-major output into disjoint tiles of
/// `tile_rows x tile_cols` (smaller at the edges).
pub(crate) fn split_tiles(
    out: &mut [f32],
    positions: usize,
    [tile_rows, tile_cols]: [usize; 2],
) -> Vec<Tile<'_>> {
    let col_tiles = positions.div_ceil(tile_cols);
    let row_tiles = (out.len() / positions).div_ceil(tile_rows);
    let mut tiles: Vec<Tile> = (0..row_tiles)
        .flat_map(|r| {
            (0..col_tiles).map(move |c| Tile {
                row: r * tile_rows,
                col: c * tile_cols,
                width: tile_cols.min(positions - c * tile_cols),
                rows: Vec::with_capacity(tile_rows),
            })
        })
        .collect();
    for (row, values) in out.chunks_mut(positions).enumerate() {
        for (c, part) in values.chunks_mut(tile_cols).enumerate() {
            tiles[row / tile_rows * col_tiles + c].rows.push(part);
        }
    }
    tiles
}

/// Multiply the tile's weight rows by its columns, then write
/// `product + bias` (through ReLU if asked) into the output.
fn compute_tile(mut tile: Tile<'_>, layer: GroupWeights<'_>, columns: MatRef<'_, f32>, relu: bool) {
    let depth = columns.nrows();
    let rows = tile.rows.len();
    let weights = &layer.weights[tile.row * depth..(tile.row + rows) * depth];
    TILE_BUFFER.with_borrow_mut(|buffer| {
        if buffer.len() < rows * tile.width {
            buffer.resize(rows * tile.width, 0.0);
        }
        let product = &mut buffer[..rows * tile.width];
        matmul(
            weights,
            rows,
            depth,
            columns.subcols(tile.col, tile.width),
            product,
        );
        for ((out, sums), &bias) in tile
            .rows
            .iter_mut()
            .zip(product.chunks(tile.width))
            .zip(&layer.bias[tile.row..])
        {
            if relu {
                out.iter_mut()
                    .zip(sums)
                    .for_each(|(o, s)| *o = (s + bias).max(0.0));
            } else {
                out.iter_mut().zip(sums).for_each(|(o, s)| *o = s + bias);
            }
        }
    });
}
