//! The graph executor: a [`Session`] runs the nodes in order over
//! slot-bound blobs, freeing each blob after its last reader.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use formats::{Clip, Conv, Layer, Model, Node, Op};

use super::buffers::Buffers;
use super::concat::concat;
use super::conv::conv2d;
use super::depthwise::{conv2d_depthwise, is_depthwise};
use super::elementwise::{add, clip_in_place, relu_in_place, Activation};
use super::fusion::{steps, Step};
use super::kernel::Kernel;
use super::lrn::lrn;
use super::packed::PackedLayer;
use super::packed_conv::conv2d_packed;
use super::plan::{Plan, INPUT_SLOT};
use super::pool::{global_avg_pool, pool};
use super::shapes::{check_layer, infer_planned, Shapes};
use super::softmax::softmax_in_place;
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
/// CPU runs the micro-kernel, every convolution's weights packed for it.
/// Build it once and run it on any number of batches; results are the same
/// bits as [`forward`]'s.
pub struct Session<'m> {
    model: &'m Model,
    plan: Plan,
    convolutions: Convolutions,
    /// What each node does in a run without hook.
    steps: Vec<Step>,
    /// Blob buffers of the last run, reused by the next.
    buffers: Mutex<Buffers>,
}

/// How a session computes convolutions.
enum Convolutions {
    /// The micro-kernel, with each layer packed (`None` for a layer whose
    /// data does not fit its shape: shape inference rejects any use of it).
    Packed(Kernel, Vec<Option<PackedLayer>>),
    /// im2col + faer, on CPUs without AVX2 and FMA.
    Im2col,
}

impl<'m> Session<'m> {
    /// Resolve `model`'s graph and pack its weights; fails if the graph is
    /// malformed (see [`super::infer_shapes`] for the checks done per input).
    pub fn new(model: &'m Model) -> Result<Self, EngineError> {
        Self::with_kernel(model, Kernel::detect())
    }

    /// [`Session::new`] with the micro-kernel or (`None`) the im2col path.
    pub(crate) fn with_kernel(
        model: &'m Model,
        kernel: Option<Kernel>,
    ) -> Result<Self, EngineError> {
        let convolutions = match kernel {
            Some(kernel) => Convolutions::Packed(
                kernel,
                model
                    .layers
                    .iter()
                    .map(|layer| check_layer(layer).is_ok().then(|| PackedLayer::new(layer)))
                    .collect(),
            ),
            None => Convolutions::Im2col,
        };
        let plan = Plan::new(&model.graph)?;
        Ok(Session {
            model,
            steps: steps(model, &plan),
            plan,
            convolutions,
            buffers: Mutex::default(),
        })
    }

    /// Run the model on the NCHW batch `input`; see [`forward`].
    pub fn run(&self, input: &Tensor) -> Result<Tensor, EngineError> {
        self.execute(input, None, None)
    }

    /// Run the model with a hook; see [`forward_hooked`]. Hooked runs see
    /// every node's inputs, so they skip the fusions of [`Session::run`]
    /// (the results are the same bits).
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

    fn execute(
        &self,
        input: &Tensor,
        mut hook: Option<&mut ForwardHook<'_>>,
        mut times: Option<&mut Vec<Duration>>,
    ) -> Result<Tensor, EngineError> {
        let (model, plan) = (self.model, &self.plan);
        input.check()?;
        let shapes = infer_planned(model, plan, input.shape)?;
        let fused = hook.is_none() && matches!(self.convolutions, Convolutions::Packed(..));
        let mut slots: Vec<Option<Cow<Tensor>>> = vec![None; plan.slot_count];
        slots[INPUT_SLOT] = Some(Cow::Borrowed(input));
        let mut buffers = self.take_buffers();
        for (index, node) in model.graph.nodes.iter().enumerate() {
            let start = Instant::now();
            let step = if fused { self.steps[index] } else { Step::Run };
            let replacement = match hook.as_mut() {
                Some(hook) => hook(index, node, &gather(&slots, &plan.inputs[index], node)?),
                None => None,
            };
            if replacement.is_some() && !matches!(node.op, Op::Conv(_)) {
                return Err(EngineError::Hook {
                    node: node.name.clone(),
                    reason: "returned a layer for a node without weights".into(),
                });
            }
            match (step, &node.op) {
                (Step::Skip, _) => {}
                (
                    Step::ConvInto {
                        relu,
                        concat,
                        offset,
                    },
                    Op::Conv(conv),
                ) => {
                    let slot = Plan::output_slot(concat);
                    let mut output = match slots[slot].take() {
                        Some(Cow::Owned(tensor)) => tensor,
                        _ => buffers.tensor(shapes.nodes[concat]),
                    };
                    let conv = Conv {
                        relu: relu || conv.relu,
                        ..*conv
                    };
                    let input = gather(&slots, &plan.inputs[index], node)?[0];
                    self.convolve(input, None, &conv, None, &mut output, offset, node)?;
                    slots[slot] = Some(Cow::Owned(output));
                }
                _ => {
                    let output = self.run_node(
                        index,
                        node,
                        step,
                        replacement,
                        &mut slots,
                        &mut buffers,
                        &shapes,
                    )?;
                    slots[Plan::output_slot(index)] = Some(Cow::Owned(output));
                }
            }
            for &slot in &plan.frees[index] {
                if let Some(Cow::Owned(tensor)) = slots[slot].take() {
                    buffers.recycle(tensor);
                }
            }
            if let Some(times) = times.as_mut() {
                times.push(start.elapsed());
            }
        }
        self.keep_buffers(buffers);
        let mut result = slots[plan.result]
            .take()
            .map(Cow::into_owned)
            .ok_or_else(|| missing(&model.graph.output))?;
        // A recycled buffer may be far larger than the result.
        result.data.shrink_to_fit();
        Ok(result)
    }

    /// The output of node `index` run on its own (step `Run`, `ConvRelu`
    /// or `Pass`).
    #[allow(clippy::too_many_arguments)]
    fn run_node(
        &self,
        index: usize,
        node: &Node,
        step: Step,
        replacement: Option<Layer>,
        slots: &mut [Option<Cow<Tensor>>],
        buffers: &mut Buffers,
        shapes: &Shapes,
    ) -> Result<Tensor, EngineError> {
        let plan = &self.plan;
        let mut output = match &node.op {
            Op::Relu | Op::Clip(_) | Op::Dropout | Op::Softmax | Op::Flatten => {
                take_input(slots, buffers, plan, index, node)?
            }
            _ => buffers.tensor(shapes.nodes[index]),
        };
        let inputs = || gather(slots, &plan.inputs[index], node);
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
                let input = inputs()?[0];
                let replacement = replacement.as_ref();
                self.convolve(input, replacement, &conv, clip, &mut output, 0, node)?;
            }
            Op::Relu | Op::Clip(_) if step == Step::Pass => {}
            Op::Relu => relu_in_place(&mut output),
            Op::Clip(clip) => clip_in_place(&mut output.data, *clip),
            Op::Lrn(parameters) => lrn(inputs()?[0], parameters, &mut output),
            Op::Softmax => softmax_in_place(&mut output),
            Op::Dropout => {}
            Op::Flatten => output.shape = shapes.nodes[index],
            Op::Pool(p) => pool(inputs()?[0], p, &mut output),
            Op::GlobalAvgPool => global_avg_pool(inputs()?[0], &mut output),
            Op::Concat => concat(&inputs()?, &mut output),
            Op::Add => add(&inputs()?, &mut output),
        }
        Ok(output)
    }

    /// One convolution into channels `offset..` of `output`, with the
    /// model's own layer (packed already) or a hook's `replacement` (packed
    /// on the spot). A depthwise convolution runs its direct kernel, which
    /// also applies `clip` (a Clip node that fusion folded into it; `None`
    /// for every other convolution). The im2col path and grouped
    /// convolutions only write whole outputs (`offset` 0: fusion never
    /// puts them into a concatenation).
    #[allow(clippy::too_many_arguments)]
    fn convolve(
        &self,
        input: &Tensor,
        replacement: Option<&Layer>,
        conv: &Conv,
        clip: Option<Clip>,
        output: &mut Tensor,
        offset: usize,
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
        let (Convolutions::Packed(kernel, packed), 1) = (&self.convolutions, conv.groups) else {
            conv2d(input, layer, conv, output);
            return Ok(());
        };
        let channels = offset..offset + own.shape[0];
        match replacement {
            None => {
                let own = packed[conv.layer]
                    .as_ref()
                    .ok_or_else(|| missing(&node.name))?;
                conv2d_packed(*kernel, input, own, conv, output, channels);
            }
            Some(replacement) => {
                let replacement = PackedLayer::new(replacement);
                conv2d_packed(*kernel, input, &replacement, conv, output, channels);
            }
        }
        Ok(())
    }

    /// The buffers kept from earlier runs (none if another run holds them).
    fn take_buffers(&self) -> Buffers {
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

/// The live tensors in `wanted` slots.
fn gather<'s>(
    slots: &'s [Option<Cow<Tensor>>],
    wanted: &[usize],
    node: &Node,
) -> Result<Vec<&'s Tensor>, EngineError> {
    wanted
        .iter()
        .map(|&slot| slots[slot].as_deref().ok_or_else(|| missing(&node.name)))
        .collect()
}

/// The single input of a node that transforms it in place: moved out of its
/// slot when this node is its last reader and owns it, copied otherwise.
fn take_input(
    slots: &mut [Option<Cow<Tensor>>],
    buffers: &mut Buffers,
    plan: &Plan,
    index: usize,
    node: &Node,
) -> Result<Tensor, EngineError> {
    let slot = plan.inputs[index][0];
    match slots[slot].take() {
        Some(Cow::Owned(tensor)) if plan.frees[index].contains(&slot) => return Ok(tensor),
        kept => slots[slot] = kept,
    }
    let source = slots[slot].as_deref().ok_or_else(|| missing(&node.name))?;
    let mut copy = buffers.tensor(source.shape);
    copy.data.copy_from_slice(&source.data);
    Ok(copy)
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

/// A blob the plan promised is gone: an engine bug, reported rather than
/// panicking.
fn missing(name: &str) -> EngineError {
    EngineError::node(name, "internal error: an input blob was freed too early")
}
