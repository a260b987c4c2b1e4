//! Who writes and who reads each blob of a list of nodes: what the passes
//! that merge a node into the one before it (`relu_fusion`, `fold`) need
//! to know that the merge is invisible to the rest of the graph.

use crate::Node;
use std::collections::HashMap;

/// The producers and reader counts of the blobs of some nodes.
pub(crate) struct BlobUse<'a> {
    readers: HashMap<&'a str, usize>,
    producers: HashMap<&'a str, usize>,
}

impl<'a> BlobUse<'a> {
    pub(crate) fn of(nodes: &'a [Node]) -> Self {
        let mut readers: HashMap<&str, usize> = HashMap::new();
        for input in nodes.iter().flat_map(|n| &n.inputs) {
            *readers.entry(input.as_str()).or_default() += 1;
        }
        let producers = nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.as_str(), i)))
            .collect();
        BlobUse { readers, producers }
    }

    /// The index of the node writing `blob` when exactly one node reads
    /// `blob` and it is not the graph's `output`: the reader can then be
    /// merged into that node.
    pub(crate) fn private_producer(&self, blob: &str, output: &str) -> Option<usize> {
        let private = self.readers.get(blob) == Some(&1) && blob != output;
        private.then(|| self.producers.get(blob).copied()).flatten()
    }
}
