//! Resolution of blob names into value slots, with each slot's lifetime.
//!
//! Blob names may be reused (Caffe's in-place `ReLU` writes its input blob),
//! so every node output gets a fresh slot and every node input is bound to
//! the slot holding the latest value of that name. A slot can then be freed
//! as soon as its last reader has run, which keeps large batches in memory.

use std::collections::HashMap;

use formats::Graph;

use super::EngineError;

/// Slot of the graph's input blob.
pub(crate) const INPUT_SLOT: usize = 0;

/// The graph's data flow in terms of slots.
#[derive(Debug)]
pub(crate) struct Plan {
    /// For each node, the slot read by each of its inputs.
    pub inputs: Vec<Vec<usize>>,
    /// For each node, the slots that nobody needs once it has run: the ones
    /// it reads for the last time, and its own output if nobody reads it.
    pub frees: Vec<Vec<usize>>,
    /// Slot holding the graph's output.
    pub result: usize,
    /// Number of slots, the input's included.
    pub slot_count: usize,
}

impl Plan {
    /// Bind every node's inputs and output to slots; fails if a node reads a
    /// blob not produced before it, does not have exactly one output, or the
    /// output blob is never produced.
    pub fn new(graph: &Graph) -> Result<Self, EngineError> {
        let mut current: HashMap<&str, usize> = HashMap::from([(graph.input.as_str(), INPUT_SLOT)]);
        let mut inputs = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let slots = node
                .inputs
                .iter()
                .map(|name| {
                    current.get(name.as_str()).copied().ok_or_else(|| {
                        EngineError::node(
                            &node.name,
                            format!("input blob {name} is not produced before it"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let [output] = node.outputs.as_slice() else {
                return Err(EngineError::node(
                    &node.name,
                    format!(
                        "has {} outputs, but every operation has exactly one",
                        node.outputs.len()
                    ),
                ));
            };
            current.insert(output, Self::output_slot(inputs.len()));
            inputs.push(slots);
        }
        let result = *current
            .get(graph.output.as_str())
            .ok_or_else(|| EngineError::Node {
                node: "(graph)".into(),
                reason: format!("output blob {} is never produced", graph.output),
            })?;
        let slot_count = inputs.len() + 1;
        let frees = Self::lifetimes(&inputs, result, slot_count);
        Ok(Plan {
            inputs,
            frees,
            result,
            slot_count,
        })
    }

    /// Slot written by node `node`: slots are numbered in execution order,
    /// right after the input's.
    pub fn output_slot(node: usize) -> usize {
        node + 1
    }

    /// For each node, the slots that die once it has run.
    fn lifetimes(inputs: &[Vec<usize>], result: usize, slot_count: usize) -> Vec<Vec<usize>> {
        let mut last_reader: Vec<Option<usize>> = vec![None; slot_count];
        for (node, slots) in inputs.iter().enumerate() {
            for &slot in slots {
                last_reader[slot] = Some(node);
            }
        }
        let mut frees = vec![Vec::new(); inputs.len()];
        for (slot, reader) in last_reader.iter().enumerate() {
            if slot == result {
                continue;
            }
            match reader {
                Some(node) => frees[*node].push(slot),
                // Outputs that nobody reads die at once; the input is borrowed.
                None if slot != INPUT_SLOT => frees[slot - Self::output_slot(0)].push(slot),
                None => {}
            }
        }
        frees
    }
}
