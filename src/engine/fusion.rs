//! Fusions that save whole passes over memory when no hook watches the
//! run: a ReLU right after a convolution is done by the convolution's
//! kernel, as is a Clip (ReLU6) right after a depthwise convolution, and a
//! concatenation of ungrouped convolutions is assembled by the
//! convolutions writing their channels straight into its output (in the
//! blocked layout, so only where every convolution's channels start at a
//! whole block). Either way every value is computed exactly as without
//! fusion.

use formats::{Clip, Model, Op};

use super::blocked::LANES;
use super::depthwise::is_depthwise;
use super::plan::{Plan, INPUT_SLOT};

/// What the executor does at a node of a fused run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Step {
    /// The node's own operation.
    Run,
    /// A convolution that also applies the ReLU node reading it.
    ConvRelu,
    /// A depthwise convolution that also applies the Clip node reading it.
    ConvClip(Clip),
    /// A convolution without groups (with the ReLU node after it if
    /// `relu`) writing channels `offset..` (a multiple of [`LANES`]) of the
    /// output of concatenation node `concat`, in the blocked layout.
    ConvInto {
        relu: bool,
        concat: usize,
        offset: usize,
    },
    /// A ReLU or Clip done by the convolution before it: its input moves
    /// on as is.
    Pass,
    /// Nothing left to do: a ReLU done by a convolution that writes into a
    /// concatenation, or a concatenation its inputs have assembled.
    Skip,
}

/// The step of every node of `model` (whose graph `plan` resolves).
pub(crate) fn steps(model: &Model, plan: &Plan) -> Vec<Step> {
    let nodes = &model.graph.nodes;
    let mut readers = vec![0usize; plan.slot_count];
    for slots in &plan.inputs {
        for &slot in slots {
            readers[slot] += 1;
        }
    }
    // The node producing `slot`, if only one node reads it once and it is
    // not the graph's result.
    let private_producer = |slot: usize| {
        (slot != INPUT_SLOT && slot != plan.result && readers[slot] == 1).then(|| slot - 1)
    };
    let mut steps = vec![Step::Run; nodes.len()];
    // ReLU after a convolution without one, Clip after a depthwise one.
    for (index, node) in nodes.iter().enumerate() {
        let [slot] = plan.inputs[index].as_slice() else {
            continue;
        };
        let Some(conv) = private_producer(*slot) else {
            continue;
        };
        let Op::Conv(c) = &nodes[conv].op else {
            continue;
        };
        let fused = match node.op {
            Op::Relu if !c.relu => Step::ConvRelu,
            Op::Clip(clip)
                if model
                    .layers
                    .get(c.layer)
                    .is_some_and(|l| is_depthwise(l, c)) =>
            {
                Step::ConvClip(clip)
            }
            _ => continue,
        };
        steps[conv] = fused;
        steps[index] = Step::Pass;
    }
    for (index, node) in nodes.iter().enumerate() {
        if !matches!(node.op, Op::Concat) {
            continue;
        }
        // The convolution behind each input, with its ReLU node if folded.
        let sources: Option<Vec<(usize, Option<usize>)>> = plan.inputs[index]
            .iter()
            .map(|&slot| {
                let producer = private_producer(slot)?;
                let ungrouped =
                    |node: usize| matches!(nodes[node].op, Op::Conv(c) if c.groups == 1);
                match steps[producer] {
                    Step::Run if ungrouped(producer) => Some((producer, None)),
                    Step::Pass if matches!(nodes[producer].op, Op::Relu) => {
                        let conv = private_producer(plan.inputs[producer][0])?;
                        ungrouped(conv).then_some((conv, Some(producer)))
                    }
                    _ => None,
                }
            })
            .collect();
        let Some(sources) = sources else { continue };
        let mut offset = 0;
        let mut fused = Vec::with_capacity(sources.len());
        for &(conv, relu) in &sources {
            let Op::Conv(c) = &nodes[conv].op else {
                unreachable!("sources are convolutions")
            };
            let Some(layer) = model.layers.get(c.layer) else {
                break;
            };
            if offset % LANES != 0 {
                break;
            }
            fused.push((conv, relu, offset));
            offset += layer.shape[0];
        }
        if fused.len() < sources.len() {
            continue;
        }
        for (conv, relu, offset) in fused {
            steps[conv] = Step::ConvInto {
                relu: relu.is_some(),
                concat: index,
                offset,
            };
            if let Some(relu) = relu {
                steps[relu] = Step::Skip;
            }
        }
        steps[index] = Step::Skip;
    }
    steps
}
