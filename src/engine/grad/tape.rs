//! The training executor: a forward pass that keeps what the backward pass
//! needs (a [`Tape`]), and the backward pass that turns the gradient of the
//! output into the gradients of every convolution's weights and biases and
//! of the input.
//!
//! The forward pass runs in NCHW with the kernels that
//! [`forward`](crate::engine::forward) uses (on CPUs with AVX-512 the packed
//! micro-kernel for ungrouped convolutions, whose sums have the same bits as
//! the blocked layout's; im2col + faer elsewhere), so its output is
//! bit-identical to it. It keeps a blob only if a backward step reads it:
//! the input of every convolution and LRN, and the output of every
//! fused-ReLU convolution, ReLU, Clip and softmax (plus the graph's
//! output); max pooling keeps only the index of each output's maximum.
//! Everything else is freed after its last forward reader, as in
//! inference. The backward pass visits the nodes in reverse, adds the
//! gradients of a blob read by several nodes in that fixed order, and frees
//! each saved blob once its producer is done.

use std::time::{Duration, Instant};

use formats::{Model, Node, Op, PoolKind};

use super::concat::concat_backward;
use super::conv::conv_backward;
use super::elementwise::{add_into, mask_clipped, mask_inactive, pass_through};
use super::lrn::lrn_backward;
use super::pool::{
    avg_pool_backward, global_avg_pool_backward, max_pool_backward, max_pool_with_argmax,
};
use super::softmax::softmax_backward;
use crate::engine::buffers::Buffers;
use crate::engine::concat::concat;
use crate::engine::conv::conv2d;
use crate::engine::depthwise::is_depthwise;
use crate::engine::elementwise::{add, clip_in_place, relu_in_place};
use crate::engine::kernel::{Kernel, MR};
use crate::engine::lrn::lrn;
use crate::engine::packed::PackedLayer;
use crate::engine::packed_conv::conv2d_packed;
use crate::engine::plan::{Plan, INPUT_SLOT};
use crate::engine::pool::{global_avg_pool, pool};
use crate::engine::shapes::infer_planned;
use crate::engine::softmax::softmax_in_place;
use crate::engine::{EngineError, Tensor};

/// A forward pass of a model on one batch, with the blobs its backward pass
/// needs. Made by [`forward_for_training`]; consumed by [`Tape::backward`].
pub struct Tape<'a> {
    model: &'a Model,
    input: &'a Tensor,
    plan: Plan,
    /// Shape of every slot's blob.
    shapes: Vec<[usize; 4]>,
    /// The kept blob of every node output slot (`None` for the input's,
    /// which is borrowed, and for freed ones).
    values: Vec<Option<Tensor>>,
    /// Per node, for max pooling, the index in its input plane of each
    /// output's maximum (see [`max_pool_with_argmax`]).
    argmax: Vec<Option<Vec<u32>>>,
    /// The packed micro-kernel for the forward pass's convolutions, where
    /// the CPU runs it (`None`: im2col + faer; the backward pass always
    /// multiplies with faer).
    kernel: Option<Kernel>,
    /// Per layer, its weights packed for the micro-kernel once a
    /// convolution on it ran there.
    packed: Vec<Option<PackedLayer>>,
    /// Free buffers, for the backward pass and then the next step.
    memory: StepMemory,
}

/// Gradients of the model's parameters and input, from [`Tape::backward`].
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// One per model layer, in `model.layers` order (zero for a layer that
    /// no convolution on the way to the output uses).
    pub layers: Vec<LayerGradient>,
    /// With respect to the input batch.
    pub input: Tensor,
}

/// Gradients of one layer's parameters, laid out like them. A layer used
/// by several convolutions gets the sum of their gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGradient {
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Buffers that one training step hands to the next: the tape's blobs and
/// the gradients, which a fresh allocation would make the kernel zero page
/// by page (a large part of a step's time otherwise). Start with
/// `StepMemory::default()` and pass the same one to every step; it holds
/// about as much memory as one step uses at its peak.
#[derive(Default)]
pub struct StepMemory {
    buffers: Buffers,
    /// Free argmax vectors of max pooling.
    indices: Vec<Vec<u32>>,
}

impl StepMemory {
    /// A vector of `len` indices with unspecified contents: the smallest
    /// free one that is large enough (so each max pooling gets back the
    /// one it had in the last step, with no allocation), else a new one.
    fn indices(&mut self, len: usize) -> Vec<u32> {
        let best = (0..self.indices.len())
            .filter(|&i| self.indices[i].capacity() >= len)
            .min_by_key(|&i| self.indices[i].capacity());
        let mut indices = best.map_or_else(Vec::new, |i| self.indices.swap_remove(i));
        indices.resize(len, 0);
        indices
    }
}

/// Run `model` on the NCHW batch `input` like [`forward`](crate::engine::forward),
/// keeping what [`Tape::backward`] needs, in buffers taken from `memory`.
/// The whole graph is shape-checked first.
pub fn forward_for_training<'a>(
    model: &'a Model,
    input: &'a Tensor,
    memory: &mut StepMemory,
) -> Result<Tape<'a>, EngineError> {
    forward_with_kernel(model, input, memory, Kernel::detect())
}

/// [`forward_for_training`] with the packed micro-kernel or (`None`) with
/// im2col + faer convolutions.
pub(super) fn forward_with_kernel<'a>(
    model: &'a Model,
    input: &'a Tensor,
    memory: &mut StepMemory,
    kernel: Option<Kernel>,
) -> Result<Tape<'a>, EngineError> {
    input.check()?;
    let plan = Plan::new(&model.graph)?;
    let node_shapes = infer_planned(model, &plan, input.shape)?.nodes;
    let shapes: Vec<[usize; 4]> = std::iter::once(input.shape).chain(node_shapes).collect();
    let kept = kept_slots(model, &plan);
    let mut tape = Tape {
        model,
        input,
        plan,
        shapes,
        values: std::iter::repeat_with(|| None).take(kept.len()).collect(),
        argmax: std::iter::repeat_with(|| None)
            .take(model.graph.nodes.len())
            .collect(),
        kernel,
        packed: std::iter::repeat_with(|| None)
            .take(model.layers.len())
            .collect(),
        memory: StepMemory::default(),
    };
    let mut memory = std::mem::take(memory);
    for (index, node) in model.graph.nodes.iter().enumerate() {
        let output = tape.run(index, node, &kept, &mut memory)?;
        tape.values[Plan::output_slot(index)] = Some(output);
        for &slot in &tape.plan.frees[index] {
            if !kept[slot] {
                if let Some(value) = tape.values[slot].take() {
                    memory.buffers.recycle(value);
                }
            }
        }
    }
    tape.memory = memory;
    Ok(tape)
}

/// Which slots the backward pass reads (the graph's output included).
fn kept_slots(model: &Model, plan: &Plan) -> Vec<bool> {
    let mut kept = vec![false; plan.slot_count];
    kept[plan.result] = true;
    for (index, node) in model.graph.nodes.iter().enumerate() {
        let output = Plan::output_slot(index);
        match &node.op {
            Op::Conv(conv) => {
                kept[plan.inputs[index][0]] = true;
                kept[output] |= conv.relu;
            }
            Op::Lrn(_) => kept[plan.inputs[index][0]] = true,
            Op::Relu | Op::Clip(_) | Op::Softmax => kept[output] = true,
            _ => {}
        }
    }
    kept
}

impl<'a> Tape<'a> {
    /// The model's output for the batch (bit-identical to
    /// [`forward`](crate::engine::forward)'s).
    pub fn output(&self) -> &Tensor {
        self.values[self.plan.result].as_ref().unwrap_or(self.input)
    }

    /// Bytes of the blobs the tape holds (the borrowed input excluded).
    pub fn saved_bytes(&self) -> usize {
        self.values
            .iter()
            .flatten()
            .map(|t| t.data.len() * std::mem::size_of::<f32>())
            .sum()
    }

    /// The blob of `slot`, when the tape kept it.
    fn value(&self, slot: usize, node: &Node) -> Result<&Tensor, EngineError> {
        if slot == INPUT_SLOT {
            return Ok(self.input);
        }
        self.values[slot].as_ref().ok_or_else(|| {
            EngineError::node(&node.name, "internal error: a blob was freed too early")
        })
    }

    /// Compute the output of node `index`.
    fn run(
        &mut self,
        index: usize,
        node: &Node,
        kept: &[bool],
        memory: &mut StepMemory,
    ) -> Result<Tensor, EngineError> {
        let buffers = &mut memory.buffers;
        let inputs = self.plan.inputs[index].clone();
        let shape = self.shapes[Plan::output_slot(index)];
        let mut output = match &node.op {
            Op::Relu | Op::Clip(_) | Op::Dropout | Op::Softmax | Op::Flatten => {
                self.take_or_copy(inputs[0], index, node, kept, buffers)?
            }
            _ => buffers.tensor(shape),
        };
        match &node.op {
            Op::Conv(conv) => self.convolve(inputs[0], conv, node, &mut output)?,
            Op::Relu => relu_in_place(&mut output),
            Op::Clip(clip) => clip_in_place(&mut output.data, *clip),
            Op::Lrn(parameters) => lrn(self.value(inputs[0], node)?, parameters, &mut output),
            Op::Softmax => softmax_in_place(&mut output),
            Op::Dropout => {}
            Op::Flatten => output.shape = shape,
            Op::Pool(p) if p.kind == PoolKind::Max => {
                let mut argmax = memory.indices(output.data.len());
                max_pool_with_argmax(
                    self.kernel,
                    self.value(inputs[0], node)?,
                    p,
                    &mut output,
                    &mut argmax,
                );
                self.argmax[index] = Some(argmax);
            }
            Op::Pool(p) => pool(self.value(inputs[0], node)?, p, &mut output),
            Op::GlobalAvgPool => global_avg_pool(self.value(inputs[0], node)?, &mut output),
            Op::Concat => concat(&self.all(&inputs, node)?, &mut output),
            Op::Add => add(&self.all(&inputs, node)?, &mut output),
        }
        Ok(output)
    }

    /// The convolution `conv` of the blob in `slot` into `output`, on the
    /// kernel [`forward`](crate::engine::forward) uses for it: the packed
    /// micro-kernel for an ungrouped convolution where the CPU has it
    /// (packing the layer at its first use in this pass), else im2col +
    /// faer or the depthwise kernel.
    fn convolve(
        &mut self,
        slot: usize,
        conv: &formats::Conv,
        node: &Node,
        output: &mut Tensor,
    ) -> Result<(), EngineError> {
        let layer = &self.model.layers[conv.layer];
        match self.kernel {
            Some(kernel) if conv.groups == 1 && !is_depthwise(layer, conv) => {
                if self.packed[conv.layer].is_none() {
                    self.packed[conv.layer] = Some(PackedLayer::new(layer, MR));
                }
                let packed = self.packed[conv.layer].as_ref();
                let input = self.value(slot, node)?;
                let packed = packed.expect("packed above");
                conv2d_packed(kernel, input, packed, conv, output, 0..layer.shape[0]);
            }
            _ => conv2d(self.value(slot, node)?, layer, conv, output),
        }
        Ok(())
    }

    /// Every blob in `slots`.
    fn all(&self, slots: &[usize], node: &Node) -> Result<Vec<&Tensor>, EngineError> {
        slots.iter().map(|&slot| self.value(slot, node)).collect()
    }

    /// The input of an in-place node: moved out of its slot when nobody
    /// needs it any more (not read later, not kept), copied otherwise.
    fn take_or_copy(
        &mut self,
        slot: usize,
        index: usize,
        node: &Node,
        kept: &[bool],
        buffers: &mut Buffers,
    ) -> Result<Tensor, EngineError> {
        if !kept[slot] && self.plan.frees[index].contains(&slot) {
            if let Some(tensor) = self.values[slot].take() {
                return Ok(tensor);
            }
        }
        let source = self.value(slot, node)?;
        let mut copy = buffers.tensor(source.shape);
        copy.data.copy_from_slice(&source.data);
        Ok(copy)
    }

    /// Back-propagate `d_output`, the gradient of a scalar loss with respect
    /// to [`Tape::output`], through the whole graph; the tape's buffers go
    /// back to `memory` for the next step.
    ///
    /// Fails if `d_output`'s shape or length differs from the output's.
    pub fn backward(
        self,
        d_output: Tensor,
        memory: &mut StepMemory,
    ) -> Result<Gradients, EngineError> {
        self.backward_timed(d_output, memory, true, &mut |_, _| {})
    }

    /// [`Tape::backward`] for training, which needs only the layers'
    /// gradients: a convolution that reads the input batch skips the
    /// gradient of its input (for SqueezeNet's first convolution as much
    /// arithmetic as its weight gradient).
    pub fn parameter_gradients(
        self,
        d_output: Tensor,
        memory: &mut StepMemory,
    ) -> Result<Vec<LayerGradient>, EngineError> {
        let gradients = self.backward_timed(d_output, memory, false, &mut |_, _| {})?;
        Ok(gradients.layers)
    }

    /// [`Tape::backward`], calling `timing(node, duration)` after each
    /// node's backward step with the time it took (for profiling). Without
    /// `input_gradient`, [`Gradients::input`] is all zeros and costs no
    /// arithmetic, as in [`Tape::parameter_gradients`].
    pub fn backward_timed(
        mut self,
        d_output: Tensor,
        memory: &mut StepMemory,
        input_gradient: bool,
        timing: &mut dyn FnMut(&Node, Duration),
    ) -> Result<Gradients, EngineError> {
        d_output.check()?;
        if d_output.shape != self.output().shape {
            return Err(EngineError::Tensor(format!(
                "output gradient has shape {:?} but the output is {:?}",
                d_output.shape,
                self.output().shape
            )));
        }
        let model = self.model;
        let mut step_memory = std::mem::take(&mut self.memory);
        let buffers = &mut step_memory.buffers;
        let mut layers: Vec<LayerGradient> = model
            .layers
            .iter()
            .map(|layer| LayerGradient {
                weights: vec![0.0; layer.weights.len()],
                bias: vec![0.0; layer.bias.len()],
            })
            .collect();
        let mut gradients: Vec<Option<Tensor>> = std::iter::repeat_with(|| None)
            .take(self.shapes.len())
            .collect();
        gradients[self.plan.result] = Some(own_copy(d_output, buffers));
        for (index, node) in model.graph.nodes.iter().enumerate().rev() {
            let start = Instant::now();
            let output_slot = Plan::output_slot(index);
            // A node whose output does not reach the graph's output has no
            // gradient to pass on.
            if let Some(d_out) = gradients[output_slot].take() {
                let passed =
                    self.node_backward(index, node, d_out, input_gradient, &mut layers, buffers)?;
                for (slot, d_input) in passed {
                    match slot == INPUT_SLOT && !input_gradient {
                        true => buffers.recycle(d_input),
                        false => accumulate(&mut gradients[slot], d_input, buffers),
                    }
                }
            }
            if let Some(value) = self.values[output_slot].take() {
                buffers.recycle(value);
            }
            timing(node, start.elapsed());
        }
        let input = match gradients[INPUT_SLOT].take() {
            Some(gradient) => gradient,
            None => Tensor::zeros(self.input.shape)?,
        };
        step_memory
            .indices
            .extend(self.argmax.into_iter().flatten());
        *memory = step_memory;
        Ok(Gradients { layers, input })
    }

    /// The gradients node `index` passes to its input slots, given the
    /// gradient of its output; a convolution also adds its parameter
    /// gradients to `layers`. Gradient tensors come from and go back to
    /// `buffers`.
    fn node_backward(
        &self,
        index: usize,
        node: &Node,
        mut d_out: Tensor,
        input_gradient: bool,
        layers: &mut [LayerGradient],
        buffers: &mut Buffers,
    ) -> Result<Vec<(usize, Tensor)>, EngineError> {
        let inputs = &self.plan.inputs[index];
        let output = Plan::output_slot(index);
        let first = inputs[0];
        let d_first = match &node.op {
            Op::Relu => {
                mask_inactive(&mut d_out, self.value(output, node)?);
                d_out
            }
            Op::Clip(clip) => {
                mask_clipped(&mut d_out, self.value(output, node)?, *clip);
                d_out
            }
            Op::Softmax => {
                softmax_backward(self.value(output, node)?, &mut d_out);
                d_out
            }
            Op::Dropout | Op::Flatten => pass_through(d_out, self.shapes[first]),
            Op::Concat => {
                let mut d_inputs: Vec<Tensor> = inputs
                    .iter()
                    .map(|&s| buffers.tensor(self.shapes[s]))
                    .collect();
                concat_backward(&d_out, &mut d_inputs);
                buffers.recycle(d_out);
                return Ok(inputs.iter().copied().zip(d_inputs).collect());
            }
            Op::Add => {
                let mut terms = Vec::with_capacity(inputs.len());
                for &slot in &inputs[1..] {
                    let mut copy = buffers.tensor(d_out.shape);
                    copy.data.copy_from_slice(&d_out.data);
                    terms.push((slot, copy));
                }
                terms.insert(0, (first, d_out));
                return Ok(terms);
            }
            Op::Conv(_) | Op::Pool(_) | Op::GlobalAvgPool | Op::Lrn(_) => {
                let mut d_input = buffers.tensor(self.shapes[first]);
                match &node.op {
                    Op::Conv(conv) => {
                        let relu_output = match conv.relu {
                            true => Some(self.value(output, node)?),
                            false => None,
                        };
                        let layer = &self.model.layers[conv.layer];
                        let input = self.value(first, node)?;
                        let skip_input = first == INPUT_SLOT && !input_gradient;
                        let g = conv_backward(
                            input,
                            relu_output,
                            layer,
                            conv,
                            &mut d_out,
                            (!skip_input).then_some(&mut d_input),
                        );
                        let sums = &mut layers[conv.layer];
                        add_into(&mut sums.weights, &g.weights);
                        add_into(&mut sums.bias, &g.bias);
                    }
                    Op::Pool(p) if p.kind == PoolKind::Max => {
                        let argmax = self.argmax[index].as_ref().ok_or_else(|| {
                            EngineError::node(&node.name, "internal error: no argmax kept")
                        })?;
                        max_pool_backward(argmax, &d_out, &mut d_input);
                    }
                    Op::Pool(p) => avg_pool_backward(p, &d_out, &mut d_input),
                    Op::Lrn(parameters) => {
                        let input = self.value(first, node)?;
                        lrn_backward(input, parameters, &d_out, &mut d_input);
                    }
                    _ => global_avg_pool_backward(&d_out, &mut d_input),
                }
                buffers.recycle(d_out);
                d_input
            }
        };
        Ok(vec![(first, d_first)])
    }
}

/// `tensor` in a buffer from `buffers`: a gradient handed in by the caller
/// ends up in `buffers` once used, so without the copy the memory kept for
/// the next step would grow by one such buffer at every step.
fn own_copy(tensor: Tensor, buffers: &mut Buffers) -> Tensor {
    let mut copy = buffers.tensor(tensor.shape);
    copy.data.copy_from_slice(&tensor.data);
    copy
}

/// Add `term` to the gradient collected so far for one slot, recycling
/// its buffer once added.
fn accumulate(sum: &mut Option<Tensor>, term: Tensor, buffers: &mut Buffers) {
    match sum {
        Some(sum) => {
            add_into(&mut sum.data, &term.data);
            buffers.recycle(term);
        }
        None => *sum = Some(term),
    }
}
