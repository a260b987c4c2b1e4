//! The graph executor: a [`Session`] runs the nodes in order over
//! slot-bound blobs, freeing each blob after its last reader.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use formats::{Clip, Conv, Layer, Model, Node, Op, PoolKind};

use super::blocked::conv::{conv2d_blocked, Destination};
use super::blocked::pool::{global_avg_pool as blocked_global_avg_pool, max_pool};
use super::blocked::winograd::{conv2d_winograd, WinogradLayer};
use super::blocked::{Blocked, LANES};
use super::buffers::Buffers;
use super::concat::{concat, concat_images};
use super::conv::conv2d;
use super::depthwise::{conv2d_depthwise, is_depthwise};
use super::elementwise::{add, clip_in_place, relu_values, Activation};
use super::fusion::{steps, Step};
use super::kernel::{Kernel, MR};
use super::lrn::lrn;
use super::packed::PackedLayer;
use super::packed_conv::conv2d_packed;
use super::plan::{Plan, INPUT_SLOT};
use super::pool::{global_avg_pool, pool};
use super::shapes::{check_layer, infer_planned, Shapes};
use super::softmax::softmax_in_place;
use super::value::{missing, Slots, Value};
use super::{EngineError, Tensor};

/// A callback that [`forward_hooked`] calls before each node with the node's
/// index, the node and the tensors it reads; see there.
pub type ForwardHook<'a> = dyn FnMut(usize, &Node, &[&Tensor]) -> Option<Layer> + 'a;

/// Run `model` on the NCHW batch `input` and return its `graph.output` blob.
/// Packs the weights first; to run many batches, build a [`Session`] once.
pub fn forward(model: &Model, input: &Tensor) -> Result<Tensor, EngineError> {
    Session::new(model)?.run(input)
}

/// Like [`forward`], but call `hook(node_index, node, inputs)` before each
/// node with the tensors it is about to read. For a convolution node, a
/// returned [`Layer`] (same shape as the model's) replaces the model's
/// weights for that computation only; this lets a compressor fit each layer
/// on the activations of the already-compressed layers below it in a single
/// pass. Returning a layer for any other node is an error.
///
/// The whole graph is shape-checked before anything runs.
pub fn forward_hooked(
    model: &Model,
    input: &Tensor,
    hook: &mut ForwardHook<'_>,
) -> Result<Tensor, EngineError> {
    Session::new(model)?.run_hooked(input, hook)
}

/// A model made ready to run: its graph resolved into slots and, where the
/// CPU runs the micro-kernels, every convolution's weights packed for them.
/// Build it once and run it on any number of batches; results are the same
/// bits as [`forward`]'s.
///
/// On CPUs with AVX-512, [`Session::run`] keeps activations in the blocked
/// layout ([`super::blocked`]) from the first convolution on: a
/// convolution pulls its input into that layout, and max pooling, global
/// average pooling, ReLU, dropout and aligned concatenations run on
/// whatever layout their input has. Every other operation (and any
/// convolution the blocked path does not run, such as a grouped one)
/// takes NCHW inputs, converted in place, so a new operation plugs in as
/// an NCHW operation in `Session::run_node` and needs nothing else. The
/// result is converted to NCHW at the end. 3x3 convolutions with stride
/// 1 over at least 16 channels run Winograd's F(2x2, 3x3) there, which
/// rounds differently from the direct kernels (see `blocked::winograd`).
pub struct Session<'m> {
    model: &'m Model,
    plan: Plan,
    convolutions: Convolutions,
    /// What each node does in a run without hook.
    steps: Vec<Step>,
    /// Blob buffers of the last run, reused by the next.
    buffers: Mutex<Buffers>,
    /// Whether freed blobs' buffers are kept for reuse (see
    /// [`Session::releasing_buffers`]).
    recycle: bool,
}

/// How a session computes convolutions.
enum Convolutions {
    /// The micro-kernels, with each layer packed for them (`None` for a
    /// layer whose data does not fit its shape: shape inference rejects
    /// any use of it).
    Packed {
        kernel: Kernel,
        /// In blocks of [`LANES`] channels, for blocked inputs.
        blocked: Vec<Option<PackedLayer>>,
        /// Transformed for Winograd convolutions, for the layers of 3x3
        /// convolutions with stride 1 ([`WinogradLayer::fits`]).
        winograd: Vec<Option<WinogradLayer>>,
        /// In blocks of [`MR`] channels, for NCHW inputs: packed at the
        /// first hooked run, as only hooked runs convolve NCHW inputs.
        nchw: OnceLock<Vec<Option<PackedLayer>>>,
    },
    /// im2col + faer, on CPUs without AVX-512.
    Im2col,
}

/// Every layer of `model` that an ungrouped convolution uses, packed in
/// blocks of `width` channels; `None` for the others (grouped and
/// depthwise convolutions never run on the packed kernels).
fn pack(model: &Model, width: usize) -> Vec<Option<PackedLayer>> {
    pack_used(
        model,
        |_, conv| conv.groups == 1,
        |layer| PackedLayer::new(layer, width),
    )
}

/// Every layer of `model` that a convolution `uses(layer, conv)` (and
/// whose data fits its shape) through `prepare`; `None` for the others.
fn pack_used<T>(
    model: &Model,
    uses: impl Fn(&Layer, &Conv) -> bool,
    prepare: impl Fn(&Layer) -> T,
) -> Vec<Option<T>> {
    let used: std::collections::HashSet<usize> = model
        .graph
        .nodes
        .iter()
        .filter_map(|node| match &node.op {
            Op::Conv(conv) => model
                .layers
                .get(conv.layer)
                .is_some_and(|layer| uses(layer, conv))
                .then_some(conv.layer),
            _ => None,
        })
        .collect();
    model
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            (used.contains(&index) && check_layer(layer).is_ok()).then(|| prepare(layer))
        })
        .collect()
}

impl<'m> Session<'m> {
    /// Resolve `model`'s graph and pack its weights; fails if the graph is
    /// malformed (see [`super::infer_shapes`] for the checks done per input).
    pub fn new(model: &'m Model) -> Result<Self, EngineError> {
        Self::with_kernel(model, Kernel::detect())
    }

    /// [`Session::new`] with the micro-kernels or (`None`) the im2col path.
    pub(crate) fn with_kernel(
        model: &'m Model,
        kernel: Option<Kernel>,
    ) -> Result<Self, EngineError> {
        let convolutions = match kernel {
            Some(kernel) => Convolutions::Packed {
                kernel,
                blocked: pack(model, LANES),
                winograd: pack_used(model, WinogradLayer::fits, WinogradLayer::new),
                nchw: OnceLock::new(),
            },
            None => Convolutions::Im2col,
        };
        let plan = Plan::new(&model.graph)?;
        Ok(Session {
            model,
            steps: steps(model, &plan),
            plan,
            convolutions,
            buffers: Mutex::default(),
            recycle: true,
        })
    }

    /// This session, giving each blob's memory back to the allocator as
    /// soon as the blob is dead instead of keeping it for reuse: slower
    /// (fresh pages to fault in), but it holds only the live blobs, never
    /// the largest stretch of the network seen so far. For a pass that
    /// waits while another one computes (calibration's original network).
    pub fn releasing_buffers(mut self) -> Self {
        self.recycle = false;
        self
    }

    /// Run the model on the NCHW batch `input`; see [`forward`].
    pub fn run(&self, input: &Tensor) -> Result<Tensor, EngineError> {
        self.execute(input, None, None)
    }

    /// Run the model with a hook; see [`forward_hooked`]. Hooked runs see
    /// every node's inputs, so they run every node on its own in NCHW,
    /// without the fusions and the blocked layout of [`Session::run`]: the
    /// results are the same bits, but after a 3x3 convolution with stride
    /// 1, which [`Session::run`] computes with Winograd's algorithm
    /// (`blocked::winograd`) and hooked runs directly: the two agree to
    /// float rounding.
    pub fn run_hooked(
        &self,
        input: &Tensor,
        hook: &mut ForwardHook<'_>,
    ) -> Result<Tensor, EngineError> {
        self.execute(input, Some(hook), None)
    }

    /// [`Session::run`], also returning the time spent at each node in
    /// graph order (zero for nodes that fusion made free).
    pub fn run_profiled(&self, input: &Tensor) -> Result<(Tensor, Vec<Duration>), EngineError> {
        let mut times = Vec::with_capacity(self.model.graph.nodes.len());
        let output = self.execute(input, None, Some(&mut times))?;
        Ok((output, times))
    }

    /// The micro-kernel and the layers packed for it, when this run keeps
    /// activations blocked (no hook, and the CPU has the kernel).
    fn blocked_layers(&self, hooked: bool) -> Option<BlockedLayers<'_>> {
        match &self.convolutions {
            Convolutions::Packed {
                kernel,
                blocked,
                winograd,
                ..
            } if !hooked => Some(BlockedLayers {
                kernel: *kernel,
                direct: blocked,
                winograd,
            }),
            _ => None,
        }
    }

    /// Run the graph on `input`; a run that keeps activations blocked
    /// goes through a batch [`IMAGES_PER_PASS`] images at a time, whose
    /// activations stay in cache where a whole batch's would not (each
    /// image's outputs are the same bits in any batch).
    fn execute(
        &self,
        input: &Tensor,
        hook: Option<&mut ForwardHook<'_>>,
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<Tensor, EngineError> {
        input.check()?;
        infer_planned(self.model, &self.plan, input.shape)?;
        let [batch, c, h, w] = input.shape;
        if hook.is_some() || self.blocked_layers(false).is_none() || batch <= IMAGES_PER_PASS {
            return self.execute_pass(input, hook, times);
        }
        let mut outputs = Vec::with_capacity(batch.div_ceil(IMAGES_PER_PASS));
        for images in input.data.chunks(IMAGES_PER_PASS * input.image_len()) {
            let part = Tensor::new([images.len() / input.image_len(), c, h, w], images.to_vec())?;
            let mut part_times = Vec::new();
            outputs.push(self.execute_pass(&part, None, Some(&mut part_times))?);
            if let Some(times) = times.as_mut() {
                times.resize(part_times.len(), Duration::ZERO);
                times.iter_mut().zip(part_times).for_each(|(t, p)| *t += p);
            }
        }
        let [_, oc, oh, ow] = outputs[0].shape;
        let data = outputs.into_iter().flat_map(|part| part.data).collect();
        Tensor::new([batch, oc, oh, ow], data)
    }

    /// [`Session::execute`] on the whole of `input` at once.
    fn execute_pass(
        &self,
        input: &Tensor,
        mut hook: Option<&mut ForwardHook<'_>>,
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<Tensor, EngineError> {
        let (model, plan) = (self.model, &self.plan);
        let shapes = infer_planned(model, plan, input.shape)?;
        let blocked = self.blocked_layers(hook.is_some());
        let mut slots = Slots::new(plan.slot_count, INPUT_SLOT, input);
        let mut buffers = self.take_buffers();
        for (index, node) in model.graph.nodes.iter().enumerate() {
            let start = Instant::now();
            let step = match blocked {
                Some(_) => self.steps[index],
                None => Step::Run,
            };
            let replacement = match hook.as_mut() {
                Some(hook) => hook(
                    index,
                    node,
                    &slots.plain(&plan.inputs[index], &mut buffers, node)?,
                ),
                None => None,
            };
            if replacement.is_some() && !matches!(node.op, Op::Conv(_)) {
                return Err(EngineError::Hook {
                    node: node.name.clone(),
                    reason: "returned a layer for a node without weights".into(),
                });
            }
            match (step, &node.op, blocked) {
                (Step::Skip, _, _) => {}
                (
                    Step::ConvInto {
                        relu,
                        concat,
                        offset,
                    },
                    Op::Conv(conv),
                    Some(layers),
                ) => {
                    let slot = Plan::output_slot(concat);
                    let mut output = match slots.take(slot) {
                        Some(Value::Blocked(output)) => output,
                        _ => Blocked::uninit(shapes.nodes[concat], LANES, &mut buffers),
                    };
                    let conv = Conv {
                        relu: relu || conv.relu,
                        ..*conv
                    };
                    let input = slots.blocked(plan.inputs[index][0], &mut buffers, node)?;
                    let destination = Destination {
                        output: &mut output,
                        first_block: offset / LANES,
                    };
                    layers.convolve(node, input, &conv, destination, &mut buffers)?;
                    slots.put(slot, Value::Blocked(output));
                }
                _ => {
                    let output = self.run_node(
                        index,
                        node,
                        step,
                        replacement,
                        blocked,
                        &mut slots,
                        &mut buffers,
                        &shapes,
                    )?;
                    slots.put(Plan::output_slot(index), output);
                }
            }
            for &slot in &plan.frees[index] {
                slots.free(slot, &mut buffers);
            }
            if let Some(times) = times.as_mut() {
                times.push(start.elapsed());
            }
        }
        let result = slots
            .take(plan.result)
            .ok_or_else(|| missing(&model.graph.output))?;
        let result = result.into_plain(&mut buffers);
        // A recycled buffer may be far larger than the result: copy the
        // result out and keep the buffer for the next run.
        let exact = Tensor {
            shape: result.shape,
            data: result.data.clone(),
        };
        buffers.recycle(result);
        self.keep_buffers(buffers);
        Ok(exact)
    }

    /// The output of node `index` run on its own (step `Run`, `ConvRelu`
    /// or `Pass`): in the blocked layout where [`Session::run_blocked`]
    /// takes it, else in NCHW.
    #[allow(clippy::too_many_arguments)]
    fn run_node<'t>(
        &self,
        index: usize,
        node: &Node,
        step: Step,
        replacement: Option<Layer>,
        blocked: Option<BlockedLayers<'_>>,
        slots: &mut Slots<'t>,
        buffers: &mut Buffers,
        shapes: &Shapes,
    ) -> Result<Value<'t>, EngineError> {
        let inputs = self.plan.inputs[index].as_slice();
        let shape = shapes.nodes[index];
        let run = BlockedRun {
            index,
            node,
            step,
            layers: blocked,
            shape,
        };
        if let Some(output) = self.run_blocked(run, slots, buffers)? {
            return Ok(output);
        }
        let last_reader = self.plan.frees[index].contains(&inputs[0]);
        if let Op::Relu | Op::Clip(_) | Op::Dropout = node.op {
            // Either layout for ReLU, which keeps the zero lanes that pad
            // a blocked tensor zero; a Clip might not, so it runs in NCHW.
            if matches!(node.op, Op::Clip(_)) && step != Step::Pass {
                slots.plain(inputs, buffers, node)?;
            }
            let mut output = slots.take_or_copy(inputs[0], last_reader, buffers, node)?;
            match node.op {
                _ if step == Step::Pass => {}
                Op::Relu => relu_values(output.values_mut()),
                Op::Clip(clip) => clip_in_place(output.values_mut(), clip),
                _ => {}
            }
            return Ok(output);
        }
        let mut output = match &node.op {
            Op::Softmax | Op::Flatten => {
                slots.plain(inputs, buffers, node)?;
                slots
                    .take_or_copy(inputs[0], last_reader, buffers, node)?
                    .into_plain(buffers)
            }
            _ => buffers.tensor(shape),
        };
        match &node.op {
            Op::Conv(conv) => {
                let replacement = checked_replacement(self.model, node, conv.layer, replacement)?;
                let conv = Conv {
                    relu: conv.relu || step == Step::ConvRelu,
                    ..*conv
                };
                let clip = match step {
                    Step::ConvClip(clip) => Some(clip),
                    _ => None,
                };
                let input = slots.plain(inputs, buffers, node)?[0];
                let replacement = replacement.as_ref();
                self.convolve(input, replacement, &conv, clip, &mut output, node)?;
            }
            Op::Lrn(parameters) => lrn(
                slots.plain(inputs, buffers, node)?[0],
                parameters,
                &mut output,
            ),
            Op::Softmax => softmax_in_place(&mut output),
            Op::Flatten => output.shape = shape,
            Op::Pool(p) => pool(slots.plain(inputs, buffers, node)?[0], p, &mut output),
            Op::GlobalAvgPool => {
                global_avg_pool(slots.plain(inputs, buffers, node)?[0], &mut output)
            }
            Op::Concat => concat(&slots.plain(inputs, buffers, node)?, &mut output),
            Op::Add => add(&slots.plain(inputs, buffers, node)?, &mut output),
            Op::Relu | Op::Clip(_) | Op::Dropout => unreachable!("done above"),
        }
        Ok(Value::Plain(Cow::Owned(output)))
    }

    /// The output of node `index` computed in the blocked layout, if it
    /// runs there: a convolution without groups in a run that keeps
    /// activations blocked, and max pooling, global average pooling and
    /// concatenation when their inputs are blocked already (in 16 lanes
    /// but for global pooling; for a concatenation all inputs but the last
    /// a whole number of blocks). `None` for anything else.
    fn run_blocked<'t>(
        &self,
        run: BlockedRun<'_>,
        slots: &mut Slots<'t>,
        buffers: &mut Buffers,
    ) -> Result<Option<Value<'t>>, EngineError> {
        let BlockedRun {
            index,
            node,
            step,
            layers,
            shape,
        } = run;
        let inputs = self.plan.inputs[index].as_slice();
        let output = match (&node.op, layers) {
            (Op::Conv(conv), Some(layers)) if conv.groups == 1 => {
                let conv = Conv {
                    relu: conv.relu || step == Step::ConvRelu,
                    ..*conv
                };
                let mut output = Blocked::uninit(shape, LANES, buffers);
                let input = slots.blocked(inputs[0], buffers, node)?;
                let destination = Destination {
                    output: &mut output,
                    first_block: 0,
                };
                layers.convolve(node, input, &conv, destination, buffers)?;
                Value::Blocked(output)
            }
            (Op::Pool(p), Some(BlockedLayers { kernel, .. }))
                if p.kind == PoolKind::Max && slots.is_blocked_16(inputs[0]) =>
            {
                let input = slots.blocked(inputs[0], buffers, node)?;
                let mut output = Blocked::uninit(shape, LANES, buffers);
                max_pool(kernel, input, p, &mut output);
                Value::Blocked(output)
            }
            (Op::GlobalAvgPool, _) if slots.is_blocked(inputs[0]) => {
                let mut output = buffers.tensor(shape);
                blocked_global_avg_pool(slots.blocked(inputs[0], buffers, node)?, &mut output);
                Value::Plain(Cow::Owned(output))
            }
            (Op::Concat, _) if concatenates_blocks(slots, inputs, node)? => {
                let mut output = Blocked::uninit(shape, LANES, buffers);
                let values = inputs
                    .iter()
                    .map(|&slot| match slots.get(slot, node)? {
                        Value::Blocked(input) => Ok(input.data.as_slice()),
                        Value::Plain(_) => unreachable!("checked to be blocked"),
                    })
                    .collect::<Result<Vec<_>, EngineError>>()?;
                concat_images(&values, shape[0], &mut output.data);
                Value::Blocked(output)
            }
            _ => return Ok(None),
        };
        Ok(Some(output))
    }

    /// One convolution of an NCHW `input` into `output`, with the model's
    /// own layer (packed already) or a hook's `replacement` (packed on the
    /// spot). A depthwise convolution runs its direct kernel, which also
    /// applies `clip` (a Clip node that fusion folded into it; `None` for
    /// every other convolution); other grouped convolutions run im2col.
    fn convolve(
        &self,
        input: &Tensor,
        replacement: Option<&Layer>,
        conv: &Conv,
        clip: Option<Clip>,
        output: &mut Tensor,
        node: &Node,
    ) -> Result<(), EngineError> {
        let own = &self.model.layers[conv.layer];
        let layer = replacement.unwrap_or(own);
        if is_depthwise(layer, conv) {
            let activation = Activation {
                relu: conv.relu,
                clip,
            };
            conv2d_depthwise(input, layer, conv, output, activation);
            return Ok(());
        }
        let (Convolutions::Packed { kernel, nchw, .. }, 1) = (&self.convolutions, conv.groups)
        else {
            conv2d(input, layer, conv, output);
            return Ok(());
        };
        let channels = 0..own.shape[0];
        match replacement {
            None => {
                let own = nchw.get_or_init(|| pack(self.model, MR))[conv.layer]
                    .as_ref()
                    .ok_or_else(|| missing(&node.name))?;
                conv2d_packed(*kernel, input, own, conv, output, channels);
            }
            Some(replacement) => {
                let replacement = PackedLayer::new(replacement, MR);
                conv2d_packed(*kernel, input, &replacement, conv, output, channels);
            }
        }
        Ok(())
    }

    /// The buffers kept from earlier runs (none if another run holds them,
    /// and a pool that keeps nothing if this session releases buffers).
    fn take_buffers(&self) -> Buffers {
        if !self.recycle {
            return Buffers::releasing();
        }
        self.buffers
            .try_lock()
            .map(|mut kept| std::mem::take(&mut *kept))
            .unwrap_or_default()
    }

    /// Keep `buffers` for the next run, so it reuses memory already mapped.
    fn keep_buffers(&self, buffers: Buffers) {
        if let Ok(mut kept) = self.buffers.try_lock() {
            *kept = buffers;
        }
    }
}

/// Images a blocked run computes at once (see [`Session::execute`]). On
/// SqueezeNet v1.0 at batch 16, one thread, passes of 1, 2 and 4 images
/// took 12-15 % less CPU time than the whole batch at once (v1.0's
/// activations reach 15 MB per image); 2 leaves twice the tasks of one
/// image to share between threads.
const IMAGES_PER_PASS: usize = 2;

/// The micro-kernel and the layers prepared for blocked inputs.
#[derive(Clone, Copy)]
struct BlockedLayers<'s> {
    kernel: Kernel,
    /// Packed in blocks of [`LANES`] channels, for the direct kernel.
    direct: &'s [Option<PackedLayer>],
    /// Transformed for [`conv2d_winograd`].
    winograd: &'s [Option<WinogradLayer>],
}

impl BlockedLayers<'_> {
    /// Convolve the blocked `input` of convolution `node` as `conv` says
    /// into `destination`: with Winograd's algorithm where it applies
    /// (see [`WinogradLayer::fits`]; not the direct kernel's bits), else
    /// with the direct kernel.
    fn convolve(
        &self,
        node: &Node,
        input: &Blocked,
        conv: &Conv,
        destination: Destination<'_>,
        buffers: &mut Buffers,
    ) -> Result<(), EngineError> {
        let winograd = self.winograd[conv.layer]
            .as_ref()
            .filter(|_| conv.stride_h == 1 && conv.stride_w == 1 && input.lanes == LANES);
        if let Some(layer) = winograd {
            conv2d_winograd(self.kernel, input, layer, conv, destination, buffers);
            return Ok(());
        }
        let layer = self.direct[conv.layer]
            .as_ref()
            .ok_or_else(|| missing(&node.name))?;
        conv2d_blocked(self.kernel, input, layer, conv, destination, buffers);
        Ok(())
    }
}

/// A node to run in the blocked layout, if it runs there: see
/// [`Session::run_blocked`].
#[derive(Clone, Copy)]
struct BlockedRun<'a> {
    index: usize,
    node: &'a Node,
    step: Step,
    /// `None` in runs that keep activations in NCHW.
    layers: Option<BlockedLayers<'a>>,
    /// The node's output shape.
    shape: [usize; 4],
}

/// True if every input in `inputs` is blocked in [`LANES`] lanes and all
/// but the last fill whole blocks, so their concatenation is a copy of
/// blocks.
fn concatenates_blocks(slots: &Slots, inputs: &[usize], node: &Node) -> Result<bool, EngineError> {
    for (i, &slot) in inputs.iter().enumerate() {
        let Value::Blocked(input) = slots.get(slot, node)? else {
            return Ok(false);
        };
        let last = i + 1 == inputs.len();
        if input.lanes != LANES || !(last || input.shape[1] % LANES == 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A hook's replacement for layer `index` of a convolution node, checked
/// to fit in place of the model's own.
fn checked_replacement(
    model: &Model,
    node: &Node,
    index: usize,
    replacement: Option<Layer>,
) -> Result<Option<Layer>, EngineError> {
    let Some(layer) = replacement else {
        return Ok(None);
    };
    let own = &model.layers[index];
    let hook_error = |reason: String| EngineError::Hook {
        node: node.name.clone(),
        reason,
    };
    if layer.shape != own.shape {
        return Err(hook_error(format!(
            "replacement shape {:?} differs from layer {} {:?}",
            layer.shape, own.name, own.shape
        )));
    }
    check_layer(&layer).map_err(hook_error)?;
    Ok(Some(layer))
}
