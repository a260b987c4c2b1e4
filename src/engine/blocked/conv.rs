//! Direct 2-D convolution on the blocked layout: no im2col, weights packed
//! once in blocks of 16 output channels ([`PackedLayer`] of width
//! [`LANES`]), bias and ReLU fused, any kernel size, stride and padding.
//!
//! A padded convolution first copies its input with a border of zeros
//! (cheap next to the convolution), so every window lies inside the input
//! and the kernel needs no bounds checks. The output is cut into fixed
//! tasks: per image, per group of [`BLOCKS`] output blocks, a run of at
//! most [`SEGMENTS_PER_TASK`] segments of at most [`POSITIONS`] positions
//! of one output row (a 1x1 convolution with stride 1 treats the whole plane
//! as one row). A task walks its segments once per part of the depth
//! ([`STEPS_PER_PART`] steps), so the part's weights stay in the L1 cache
//! however deep the layer is. No output value is split between tasks, so nothing
//! depends on the thread count. The output may be a range of channel
//! blocks of a wider tensor, so a convolution can write straight into the
//! concatenation that reads it.

use formats::Conv;
use rayon::prelude::*;

use super::kernel::{convolve, Filters, Source, Target, BLOCKS, POSITIONS};
use super::{Blocked, LANES};
use crate::engine::buffers::Buffers;
use crate::engine::kernel::Kernel;
use crate::engine::packed::PackedLayer;

/// Segments (kernel calls) per task at most: about a hundred positions.
/// A layer's segments are shared evenly between its tasks.
const SEGMENTS_PER_TASK: usize = 16;

/// Where a convolution writes: channel blocks `first_block..` of
/// `output` (16 lanes; its spatial shape is set and was checked by shape
/// inference).
pub(crate) struct Destination<'a> {
    pub output: &'a mut Blocked,
    pub first_block: usize,
}

/// Convolve `input` with `layer` (packed in blocks of [`LANES`]) as `conv`
/// says into `destination`; `buffers` lends the padded copy.
pub(crate) fn conv2d_blocked(
    _proof: Kernel,
    input: &Blocked,
    layer: &PackedLayer,
    conv: &Conv,
    Destination {
        output,
        first_block,
    }: Destination<'_>,
    buffers: &mut Buffers,
) {
    assert_eq!((layer.width, output.lanes), (LANES, LANES));
    assert!(first_block + layer.block_count() <= output.blocks());
    let padded =
        (conv.pad_h > 0 || conv.pad_w > 0).then(|| input.padded([conv.pad_h, conv.pad_w], buffers));
    let source = padded.as_ref().unwrap_or(input);
    let layout = Layout::new(source, layer, conv, output.shape);
    let segments = layout.segments();
    let batch = output.shape[0];
    let chunks = chunk_count(
        segments.len(),
        SEGMENTS_PER_TASK,
        batch,
        layer.block_count(),
    );
    let (out_image, out_plane) = (output.image_len(), output.plane_len());
    let in_image = source.image_len();
    let out = SharedOutput(output.data.as_mut_ptr());
    let parts = depth_parts(&layout.source);
    for_each_task(batch, layer.block_count(), chunks, |task| {
        let Task {
            image,
            first,
            blocks,
            ..
        } = task;
        let image_values = &source.data[image * in_image..][..in_image];
        let run = task.share(segments.len(), chunks);
        for (index, part) in parts.iter().enumerate() {
            let filters = Filters {
                weights: &layer.blocks[first * layer.depth * LANES + part.first_step * LANES..],
                bias: (index == 0).then(|| &layer.bias[first * LANES..]),
                depth: part.steps,
                stride: layer.depth * LANES,
                blocks,
            };
            let relu = conv.relu && index + 1 == parts.len();
            for segment in &segments[run.clone()] {
                let source = Source {
                    values: &image_values[layout.window_corner(segment) + part.offset..],
                    channels: part.channels,
                    ..layout.source
                };
                let offset = image * out_image
                    + (first_block + first) * out_plane
                    + (segment.row * layout.cols + segment.col) * LANES;
                let target = Target {
                    // SAFETY: `offset` plus the kernel's writes stay inside
                    // `output` (blocks checked above, positions within the
                    // plane), and tasks write disjoint (block, position) sets.
                    pointer: unsafe { out.at(offset) },
                    block_stride: out_plane,
                    positions: segment.len,
                };
                // SAFETY: a `Kernel` proves AVX-512F; see `target` above.
                unsafe { convolve(source, filters, relu, target) };
            }
        }
    });
    if let Some(padded) = padded {
        buffers.keep(padded.data);
    }
}

/// Depth steps (input channel, ky, kx) per part at most: the weights of
/// one part for [`BLOCKS`] output blocks (`BLOCKS * 16 * 4` bytes per
/// step) stay in the L1 cache while a task walks its segments.
const STEPS_PER_PART: usize = 128;

/// A run of whole input blocks, the depth one pass of a task covers.
struct DepthPart {
    /// Input channels of the part.
    channels: usize,
    /// Its first depth step and its number of steps.
    first_step: usize,
    steps: usize,
    /// Offset of its first channel in an input image.
    offset: usize,
}

/// The depth of a convolution reading `source` cut into parts of whole
/// input blocks of at most [`STEPS_PER_PART`] steps (at least one block).
/// Each output value is still the bias plus its products in depth order:
/// a part starts from the partial sums the previous one stored.
fn depth_parts(source: &Source<'_>) -> Vec<DepthPart> {
    let window = source.kernel[0] * source.kernel[1];
    let blocks_per_part = (STEPS_PER_PART / (window * source.lanes)).max(1);
    let channels_per_part = blocks_per_part * source.lanes;
    (0..source.channels)
        .step_by(channels_per_part)
        .map(|first| {
            let channels = channels_per_part.min(source.channels - first);
            DepthPart {
                channels,
                first_step: first * window,
                steps: channels * window,
                offset: first / source.lanes * source.block_stride,
            }
        })
        .collect()
}

/// One task of a blocked convolution: one image, output blocks `first..
/// first + blocks` (a group of at most [`BLOCKS`]), and share `chunk` of
/// its positions.
#[derive(Debug, Clone, Copy)]
pub(super) struct Task {
    pub image: usize,
    pub first: usize,
    pub blocks: usize,
    pub chunk: usize,
}

impl Task {
    /// The task's even share of `len` positions cut in `chunks`.
    pub(super) fn share(&self, len: usize, chunks: usize) -> std::ops::Range<usize> {
        self.chunk * len / chunks..(self.chunk + 1) * len / chunks
    }
}

/// Tasks a convolution is cut into at least, where it has the positions
/// for them: at batch 1 the 13x13 layers of SqueezeNet would otherwise
/// make 2 tasks, which two threads share well only if both start at once.
/// (How work is cut never changes an output bit.)
const MIN_TASKS: usize = 8;

/// Chunks to cut `len` positions (segments, tiles) into: `per_task` per
/// chunk at most, and enough for [`MIN_TASKS`] tasks over `batch` images
/// and the groups of `block_count` output blocks, but never more than
/// there are positions.
pub(super) fn chunk_count(len: usize, per_task: usize, batch: usize, block_count: usize) -> usize {
    let other_tasks = batch * block_count.div_ceil(BLOCKS);
    len.div_ceil(per_task)
        .max(MIN_TASKS.div_ceil(other_tasks))
        .min(len)
        .max(1)
}

/// Run `task` in parallel for every image of `batch`, group of
/// [`BLOCKS`] of `block_count` output blocks and chunk of `chunks`: a
/// fixed cut, whatever the thread count.
pub(super) fn for_each_task(
    batch: usize,
    block_count: usize,
    chunks: usize,
    task: impl Fn(Task) + Sync + Send,
) {
    let groups = block_count.div_ceil(BLOCKS);
    (0..batch * groups * chunks)
        .into_par_iter()
        .for_each(|index| {
            let group = index / chunks % groups;
            let first = group * BLOCKS;
            task(Task {
                image: index / (groups * chunks),
                first,
                blocks: BLOCKS.min(block_count - first),
                chunk: index % chunks,
            })
        });
}

/// The output pointer shared by the tasks, which write disjoint parts.
pub(super) struct SharedOutput(pub(super) *mut f32);
// SAFETY: see the writes in `conv2d_blocked`: no two tasks write the same
// value and nothing reads the output while they run.
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// The pointer `offset` values on.
    ///
    /// # Safety
    /// `offset` must lie inside the output.
    pub(super) unsafe fn at(&self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// How output positions map to input windows.
struct Layout {
    /// The kernel's view of the input, `values` left empty.
    source: Source<'static>,
    /// Output rows and positions per row (one row of the whole plane for a
    /// 1x1 convolution with stride 1).
    rows: usize,
    cols: usize,
    /// Input values between the windows of consecutive rows.
    row_step: usize,
}

/// Up to [`POSITIONS`] consecutive output positions of one row.
struct Segment {
    row: usize,
    col: usize,
    len: usize,
}

impl Layout {
    fn new(source: &Blocked, layer: &PackedLayer, conv: &Conv, out_shape: [usize; 4]) -> Self {
        let [_, channels, in_h, in_w] = source.shape;
        let [_, _, out_h, out_w] = out_shape;
        let lanes = source.lanes;
        // Input pixel i feeds output position i.
        let flat = layer.kernel == [1, 1] && [in_h, in_w] == [out_h, out_w];
        let (rows, cols) = if flat {
            (1, out_h * out_w)
        } else {
            (out_h, out_w)
        };
        let stride_w = if flat { 1 } else { conv.stride_w };
        Layout {
            source: Source {
                values: &[],
                channels,
                lanes,
                block_stride: source.plane_len(),
                row_stride: in_w * lanes,
                position_stride: stride_w * lanes,
                kernel: layer.kernel,
            },
            rows,
            cols,
            row_step: conv.stride_h * in_w * lanes,
        }
    }

    /// Every row cut into as few segments as [`POSITIONS`] allows, of
    /// nearly equal lengths.
    fn segments(&self) -> Vec<Segment> {
        let per_row = self.cols.div_ceil(POSITIONS);
        let (short, longer) = (self.cols / per_row, self.cols % per_row);
        (0..self.rows)
            .flat_map(|row| {
                (0..per_row).scan(0, move |col, i| {
                    let len = short + usize::from(i < longer);
                    let segment = Segment {
                        row,
                        col: *col,
                        len,
                    };
                    *col += len;
                    Some(segment)
                })
            })
            .collect()
    }

    /// Offset in an input image of the first window of `segment`.
    fn window_corner(&self, segment: &Segment) -> usize {
        segment.row * self.row_step + segment.col * self.source.position_stride
    }
}
