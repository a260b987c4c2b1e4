//! The network from a cut onward, for trials that change one layer.
//!
//! A sensitivity trial replaces one layer and runs the network again. All
//! nodes before that layer compute exactly what the original network
//! computed, so a trial only needs to run from the last *cut* before the
//! layer: a node where a single blob carries everything the rest of the
//! graph reads (in SqueezeNet, the input of each fire module). [`Tails`]
//! saves that blob's activations from one pass of the original network and
//! runs each trial as a [`Session`] of the graph's tail on them, which
//! also uses the engine's fused, packed path instead of a hooked run.

use std::collections::HashMap;

use formats::{Graph, Layer, Model, Node, Op, Preprocess};

use super::error::PipelineError;
use crate::engine::{Session, Tensor};

/// A node before which exactly one blob is live, read by that node.
#[derive(Debug, Clone, PartialEq)]
struct Cut {
    node: usize,
    blob: String,
}

/// The cuts of `graph`, ascending by node. Node 0 is one when it reads the
/// graph's input and nothing else is live.
fn cuts(graph: &Graph) -> Vec<Cut> {
    let nodes = &graph.nodes;
    // First producer and last reader of every blob; the input is produced
    // "before node 0" and the output is read "after the last node".
    let mut produced: HashMap<&str, usize> = HashMap::from([(graph.input.as_str(), 0)]);
    let mut last_read: HashMap<&str, usize> = HashMap::from([(graph.output.as_str(), nodes.len())]);
    for (i, node) in nodes.iter().enumerate() {
        for blob in &node.inputs {
            let last = last_read.entry(blob.as_str()).or_insert(i);
            *last = (*last).max(i);
        }
        for blob in &node.outputs {
            produced.entry(blob.as_str()).or_insert(i + 1);
        }
    }
    (0..nodes.len())
        .filter_map(|i| {
            let mut live = produced
                .iter()
                .filter(|(blob, &p)| p <= i && last_read.get(*blob).is_some_and(|&r| r >= i));
            let (blob, _) = live.next()?;
            let single = live.next().is_none() && nodes[i].inputs.iter().any(|b| b == blob);
            single.then(|| Cut {
                node: i,
                blob: blob.to_string(),
            })
        })
        .collect()
}

/// The graph from one cut onward. Its layers are not copied: a trial
/// clones them from the original model when it runs (a VGG-16 has two
/// dozen cuts, each followed by most of its 553 MB of weights).
struct Tail {
    /// The nodes from the cut, reading the cut blob as input, their
    /// convolutions numbering only the layers the tail uses.
    graph: Graph,
    /// The original index of each of the tail's layers.
    originals: Vec<usize>,
    /// The tail's preprocessing: the original's, cropped to the cut blob.
    preprocess: Preprocess,
    /// The original network's activations of the cut blob.
    input: Tensor,
    /// The tail's index of each original layer it uses.
    layers: HashMap<usize, usize>,
}

/// The tails of a network from each of its cuts, with their inputs.
pub struct Tails<'m> {
    /// The network the tails are cut from.
    model: &'m Model,
    /// Ascending by cut node.
    tails: Vec<(usize, Tail)>,
    /// The first node using each layer.
    first_use: Vec<Option<usize>>,
}

impl<'m> Tails<'m> {
    /// Save the activations at every cut of `model` during a pass on
    /// `calib`; `observe` sees every node of that pass as a
    /// [`crate::engine::forward_hooked`] hook does (without replacing
    /// layers), so the same pass can gather what else is needed. Returns
    /// the tails and the network's output.
    pub fn capture(
        model: &'m Model,
        calib: &Tensor,
        observe: &mut dyn FnMut(&Node, &[&Tensor]),
    ) -> Result<(Self, Tensor), PipelineError> {
        let cuts = cuts(&model.graph);
        let mut saved: Vec<Option<Tensor>> = vec![None; cuts.len()];
        let mut hook = |index: usize, node: &Node, inputs: &[&Tensor]| -> Option<Layer> {
            if let Some(c) = cuts.iter().position(|c| c.node == index) {
                let blob = node.inputs.iter().position(|b| *b == cuts[c].blob);
                saved[c] = blob.map(|b| inputs[b].clone());
            }
            observe(node, inputs);
            None
        };
        let output = Session::new(model)?.run_hooked(calib, &mut hook)?;
        let mut first_use = vec![None; model.layers.len()];
        for (i, node) in model.graph.nodes.iter().enumerate() {
            if let Op::Conv(c) = &node.op {
                first_use[c.layer].get_or_insert(i);
            }
        }
        let tails = cuts
            .into_iter()
            .zip(saved)
            .filter_map(|(cut, input)| Some((cut.node, tail(model, &cut, input?)?)))
            .collect();
        Ok((
            Tails {
                model,
                tails,
                first_use,
            },
            output,
        ))
    }

    /// How many cuts the network has (trials of the layers after the last
    /// one run only the graph's tail from there).
    pub fn cut_count(&self) -> usize {
        self.tails.len()
    }

    /// The network's output on the calibration batch with layer `index`
    /// replaced by `layer`: the same bits as a full run, computed from the
    /// last cut before the layer's first use.
    pub fn run_with(&self, index: usize, layer: Layer) -> Result<Tensor, PipelineError> {
        let unused = || PipelineError::UnusedLayer(layer.name.clone());
        let first = self
            .first_use
            .get(index)
            .copied()
            .flatten()
            .ok_or_else(unused)?;
        let (_, tail) = self
            .tails
            .iter()
            .rev()
            .find(|(node, _)| *node <= first)
            .ok_or_else(unused)?;
        let replaced = tail.layers[&index];
        let mut trial = Some(layer);
        let layers = tail
            .originals
            .iter()
            .enumerate()
            .map(|(i, &original)| {
                let replacement = if i == replaced { trial.take() } else { None };
                replacement.unwrap_or_else(|| self.model.layers[original].clone())
            })
            .collect();
        let model = Model {
            graph: tail.graph.clone(),
            layers,
            preprocess: tail.preprocess,
        };
        Ok(Session::new(&model)?.run(&tail.input)?)
    }
}

/// The model of the nodes from `cut` onward, fed with `input`; `None`
/// when the activations are not square (the engine takes square inputs of
/// the model's crop size, which the tail sets to the activations' size).
fn tail(model: &Model, cut: &Cut, input: Tensor) -> Option<Tail> {
    let [_, _, height, width] = input.shape;
    if height != width {
        return None;
    }
    let mut layers = HashMap::new();
    let mut originals = Vec::new();
    let nodes = model.graph.nodes[cut.node..]
        .iter()
        .map(|node| {
            let mut node = node.clone();
            if let Op::Conv(conv) = &mut node.op {
                conv.layer = *layers.entry(conv.layer).or_insert_with(|| {
                    originals.push(conv.layer);
                    originals.len() - 1
                });
            }
            node
        })
        .collect();
    Some(Tail {
        graph: Graph {
            nodes,
            input: cut.blob.clone(),
            output: model.graph.output.clone(),
        },
        originals,
        preprocess: Preprocess {
            crop: width.try_into().ok()?,
            ..model.preprocess
        },
        input,
        layers,
    })
}
