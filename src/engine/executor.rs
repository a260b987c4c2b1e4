//! The graph executor: runs the nodes in order over slot-bound blobs,
//! freeing each blob after its last reader.

use std::borrow::Cow;

use formats::{Layer, Model, Node, Op};

use super::concat::concat;
use super::conv::conv2d;
use super::elementwise::{add, relu_in_place};
use super::plan::{Plan, INPUT_SLOT};
use super::pool::{global_avg_pool, pool};
use super::shapes::{check_layer, infer_planned};
use super::softmax::softmax_in_place;
use super::{EngineError, Tensor};

/// A callback that [`forward_hooked`] calls before each node with the node's
/// index, the node and the tensors it reads; see there.
pub type ForwardHook<'a> = dyn FnMut(usize, &Node, &[&Tensor]) -> Option<Layer> + 'a;

/// Run `model` on the NCHW batch `input` and return its `graph.output` blob.
pub fn forward(model: &Model, input: &Tensor) -> Result<Tensor, EngineError> {
    forward_hooked(model, input, &mut |_, _, _| None)
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
    input.check()?;
    let plan = Plan::new(&model.graph)?;
    let shapes = infer_planned(model, &plan, input.shape)?;
    let mut slots: Vec<Option<Cow<Tensor>>> = vec![None; plan.slot_count];
    slots[INPUT_SLOT] = Some(Cow::Borrowed(input));
    for (index, node) in model.graph.nodes.iter().enumerate() {
        let replacement = hook(index, node, &gather(&slots, &plan.inputs[index], node)?);
        let out_shape = shapes.nodes[index];
        let output = match &node.op {
            Op::Conv(conv) => {
                let layer = conv_layer(model, node, conv.layer, replacement)?;
                conv2d(gather(&slots, &plan.inputs[index], node)?[0], &layer, conv, out_shape)?
            }
            _ if replacement.is_some() => {
                return Err(EngineError::Hook {
                    node: node.name.clone(),
                    reason: "returned a layer for a node without weights".into(),
                })
            }
            Op::Relu => {
                let mut tensor = take_input(&mut slots, &plan, index, node)?;
                relu_in_place(&mut tensor);
                tensor
            }
            Op::Softmax => {
                let mut tensor = take_input(&mut slots, &plan, index, node)?;
                softmax_in_place(&mut tensor);
                tensor
            }
            Op::Dropout => take_input(&mut slots, &plan, index, node)?,
            Op::Flatten => Tensor { shape: out_shape, data: take_input(&mut slots, &plan, index, node)?.data },
            Op::Pool(p) => pool(gather(&slots, &plan.inputs[index], node)?[0], p, out_shape)?,
            Op::GlobalAvgPool => global_avg_pool(gather(&slots, &plan.inputs[index], node)?[0])?,
            Op::Concat => concat(&gather(&slots, &plan.inputs[index], node)?, out_shape)?,
            Op::Add => add(&gather(&slots, &plan.inputs[index], node)?),
        };
        slots[Plan::output_slot(index)] = Some(Cow::Owned(output));
        for &slot in &plan.frees[index] {
            slots[slot] = None;
        }
    }
    slots[plan.result].take().map(Cow::into_owned).ok_or_else(|| missing(&model.graph.output))
}

/// The live tensors in `wanted` slots.
fn gather<'s>(slots: &'s [Option<Cow<Tensor>>], wanted: &[usize], node: &Node) -> Result<Vec<&'s Tensor>, EngineError> {
    wanted.iter().map(|&slot| slots[slot].as_deref().ok_or_else(|| missing(&node.name))).collect()
}

/// The single input of a node that transforms it in place: moved out of its
/// slot when this node is its last reader, copied otherwise.
fn take_input(slots: &mut [Option<Cow<Tensor>>], plan: &Plan, index: usize, node: &Node) -> Result<Tensor, EngineError> {
    let slot = plan.inputs[index][0];
    let tensor = if plan.frees[index].contains(&slot) { slots[slot].take() } else { slots[slot].clone() };
    tensor.map(Cow::into_owned).ok_or_else(|| missing(&node.name))
}

/// The layer a convolution node computes with: the hook's replacement if
/// it returned one that fits, else the model's own.
fn conv_layer<'m>(model: &'m Model, node: &Node, index: usize, replacement: Option<Layer>) -> Result<Cow<'m, Layer>, EngineError> {
    let own = &model.layers[index];
    let Some(layer) = replacement else {
        return Ok(Cow::Borrowed(own));
    };
    let hook_error = |reason: String| EngineError::Hook { node: node.name.clone(), reason };
    if layer.shape != own.shape {
        return Err(hook_error(format!("replacement shape {:?} differs from layer {} {:?}", layer.shape, own.name, own.shape)));
    }
    check_layer(&layer).map_err(hook_error)?;
    Ok(Cow::Owned(layer))
}

/// A blob the plan promised is gone: an engine bug, reported rather than
/// panicking.
fn missing(name: &str) -> EngineError {
    EngineError::node(name, "internal error: an input blob was freed too early")
}
