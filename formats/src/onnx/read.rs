//! ONNX model -> [`Model`]: the graph-level work (opset, graph input and
//! output, initializers becoming layers, preprocessing). The per-operator
//! conversion is in `ops.rs`.

use super::proto::{data_type, GraphProto, ModelProto, NodeProto, TensorProto};
use super::{metadata, pieces};
use crate::fold;
use crate::relu_fusion::{self, unique_name};
use crate::{FormatError, Graph, Layer, Model, Node, Op, Preprocess, Result};
use bytes::Bytes;
use prost::Message;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Oldest standard opset accepted: from opset 7 on, Dropout, Add and the
/// pools have the attributes the importer interprets.
pub const MIN_OPSET: i64 = 7;

/// Where the [`Model::preprocess`] of an imported ONNX model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreprocessSource {
    /// The `sqz.preprocess.*` metadata that [`super::write_onnx`] stores.
    Metadata,
    /// The caller's fallback preset, with its crop replaced by the model's
    /// input size when the input declares a fixed square size.
    Fallback,
}

/// Read the ONNX model at `path`; see [`read_onnx`]. The file is read in
/// pieces (see `pieces.rs`) and each weight tensor's bytes are freed once
/// its layer is built, so reading takes the weights plus the bytes not yet
/// converted, at most the model's weights plus its largest tensor (VGG-16:
/// 553 + 411 MB), not the whole file on top of the weights.
pub fn read_onnx_path(
    path: &Path,
    fallback: Option<Preprocess>,
) -> Result<(Model, PreprocessSource)> {
    let file = std::fs::File::open(path).map_err(|e| FormatError::io(path, e))?;
    let len = file.metadata().map_err(|e| FormatError::io(path, e))?.len();
    let pieces = pieces::read_pieces(std::io::BufReader::new(file), len)?;
    read_onnx_pieces(pieces, fallback)
}

/// Import an ONNX model (see the module documentation for the supported
/// subset). The preprocessing comes from the model's `sqz.preprocess.*`
/// metadata, else from `fallback`; without either the model is refused.
pub fn read_onnx(bytes: &[u8], fallback: Option<Preprocess>) -> Result<(Model, PreprocessSource)> {
    read_onnx_pieces(pieces::read_pieces(bytes, bytes.len() as u64)?, fallback)
}

/// [`read_onnx`] on the file's pieces: tensors' raw data are views into
/// them, not copies.
fn read_onnx_pieces(
    pieces: pieces::Pieces,
    fallback: Option<Preprocess>,
) -> Result<(Model, PreprocessSource)> {
    let mut proto = ModelProto::decode(pieces)
        .map_err(|e| FormatError::invalid(format!("not a readable ONNX model: {e}")))?;
    let opset = standard_opset(&proto)?;
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| FormatError::invalid("ONNX model without a graph"))?;
    let initializers = std::mem::take(&mut graph.initializer);
    let graph = &*graph;
    let mut importer = Importer::new(graph, initializers, opset)?;
    for (index, node) in graph.node.iter().enumerate() {
        importer
            .node(index, node)
            .map_err(|e| in_node(node, index, e))?;
    }
    let (graph_out, layers, input_size) = importer.finish(graph)?;
    let (preprocess, source) =
        match (metadata::from_metadata(&proto.metadata_props)?, fallback) {
            (Some(stored), _) => {
                if let Some(size) = input_size.filter(|&size| size != stored.crop) {
                    return Err(FormatError::invalid(format!(
                        "ONNX metadata says crop {} but the model input is {size}x{size}",
                        stored.crop
                    )));
                }
                (stored, PreprocessSource::Metadata)
            }
            (None, Some(f)) => (
                Preprocess {
                    crop: input_size.unwrap_or(f.crop),
                    ..f
                },
                PreprocessSource::Fallback,
            ),
            (None, None) => return Err(FormatError::invalid(
                "the ONNX model has no sqz.preprocess metadata and no fallback preset was given",
            )),
        };
    let model = Model {
        graph: graph_out,
        layers,
        preprocess,
    };
    model.validate()?;
    Ok((model, source))
}

/// The version of the standard operator set the model imports.
fn standard_opset(proto: &ModelProto) -> Result<i64> {
    let version = proto
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max();
    match version {
        None => Err(FormatError::invalid(
            "ONNX model imports no standard operator set",
        )),
        Some(v) if v < MIN_OPSET => Err(FormatError::unsupported(format!(
            "ONNX opset {v} (sqz reads opset {MIN_OPSET} and later)"
        ))),
        Some(v) => Ok(v),
    }
}

/// Prefix an error with the node it comes from.
fn in_node(node: &NodeProto, index: usize, e: FormatError) -> FormatError {
    let place = format!("ONNX node {} ({})", display_name(node, index), node.op_type);
    match e {
        FormatError::Invalid(m) => FormatError::invalid(format!("{place}: {m}")),
        FormatError::Unsupported(m) => FormatError::unsupported(format!("{place}: {m}")),
        FormatError::Truncated(m) => FormatError::truncated(format!("{place}: {m}")),
        other => other,
    }
}

/// A node's name, or `<op_type>_<index>` for an unnamed node.
pub(super) fn display_name(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("{}_{index}", node.op_type)
    } else {
        node.name.clone()
    }
}

/// What the importer knows about a computed tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Blob {
    /// ONNX rank: 4 for NCHW, 2 after Flatten or Gemm. The engine stores
    /// rank-2 tensors as N x C x 1 x 1.
    pub rank: usize,
    /// Channels (features for rank 2), when known.
    pub channels: Option<usize>,
    /// Spatial size known to be 1x1 (always true at rank 2).
    pub unit_spatial: bool,
    /// Height and width, when the graph input's size is fixed: what
    /// `auto_pad = SAME_*` with a stride needs to compute its padding.
    pub size: Option<[usize; 2]>,
}

/// A layer built from a weight initializer, and how it was built, so a
/// second node using the same weights can be checked against it.
pub(super) struct LayerSlot {
    pub layer: Layer,
    pub bias: Option<String>,
    pub op_type: String,
}

/// Walks the nodes in order, building the graph.
pub(super) struct Importer<'g> {
    pub opset: i64,
    /// Initializers by name. A weight tensor's data is dropped once its
    /// layer is built (see [`Importer::layer`]).
    initializers: HashMap<String, TensorProto>,
    /// Outputs of `Constant` nodes.
    constants: HashMap<String, TensorProto>,
    /// Weight initializer name -> index in `layers` (initializer order).
    slot_of: HashMap<String, usize>,
    /// Weight initializer names, in layer order.
    slot_names: Vec<String>,
    pub layers: Vec<Option<LayerSlot>>,
    /// Layers that hold a batch normalization (see `crate::fold`).
    pub batch_norms: HashSet<usize>,
    /// How many nodes (and graph outputs) read each name.
    pub readers: HashMap<&'g str, usize>,
    blobs: HashMap<String, Blob>,
    /// Which node produced each blob: its op.
    producers: HashMap<String, Op>,
    pub nodes: Vec<Node>,
    input: String,
    input_size: Option<u32>,
}

impl<'g> Importer<'g> {
    /// An importer for `graph`, whose initializers (taken out of it) are
    /// `initializer`.
    fn new(graph: &'g GraphProto, initializer: Vec<TensorProto>, opset: i64) -> Result<Self> {
        if !graph.sparse_initializer.is_empty() {
            return Err(FormatError::unsupported("ONNX sparse initializers"));
        }
        // Layers are numbered in initializer order, the order in which
        // exporters (and sqz) list parameters.
        let weight_inputs: HashSet<&str> = graph
            .node
            .iter()
            .filter(|n| {
                matches!(
                    n.op_type.as_str(),
                    "Conv" | "Gemm" | "MatMul" | "BatchNormalization"
                ) && (n.domain.is_empty() || n.domain == "ai.onnx")
            })
            .filter_map(|n| n.input.get(1).map(String::as_str))
            .collect();
        let slot_names: Vec<String> = initializer
            .iter()
            .map(|t| t.name.as_str())
            .filter(|n| weight_inputs.contains(n))
            .map(str::to_string)
            .collect();
        let mut initializers = HashMap::new();
        for t in initializer {
            if initializers.contains_key(&t.name) {
                return Err(FormatError::invalid(format!(
                    "ONNX initializer {} is defined twice",
                    t.name
                )));
            }
            initializers.insert(t.name.clone(), t);
        }
        let mut readers: HashMap<&str, usize> = HashMap::new();
        let read_names = graph.node.iter().flat_map(|n| &n.input);
        for name in read_names.chain(graph.output.iter().map(|o| &o.name)) {
            *readers.entry(name.as_str()).or_default() += 1;
        }
        let slot_of = slot_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let mut importer = Importer {
            opset,
            initializers,
            constants: HashMap::new(),
            slot_of,
            layers: slot_names.iter().map(|_| None).collect(),
            slot_names,
            batch_norms: HashSet::new(),
            readers,
            blobs: HashMap::new(),
            producers: HashMap::new(),
            nodes: Vec::new(),
            input: String::new(),
            input_size: None,
        };
        importer.graph_input(graph)?;
        Ok(importer)
    }

    /// The one graph input that is not an initializer: a float NCHW image
    /// batch with 3 channels.
    fn graph_input(&mut self, graph: &GraphProto) -> Result<()> {
        let inputs: Vec<_> = graph
            .input
            .iter()
            .filter(|v| !self.initializers.contains_key(v.name.as_str()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(FormatError::unsupported(format!(
                "ONNX graph with {} inputs (sqz models have one)",
                inputs.len()
            )));
        };
        let tensor = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
        let tensor = tensor.ok_or_else(|| {
            FormatError::unsupported(format!("ONNX input {} is not a tensor", input.name))
        })?;
        if tensor.elem_type != data_type::FLOAT {
            return Err(FormatError::unsupported(format!(
                "ONNX input {} has element type {} (only FLOAT)",
                input.name, tensor.elem_type
            )));
        }
        let mut channels = None;
        if let Some(shape) = &tensor.shape {
            let dims: Vec<Option<i64>> = shape
                .dim
                .iter()
                .map(|d| d.dim_value.filter(|&v| v > 0))
                .collect();
            let [_, c, h, w] = dims[..] else {
                return Err(FormatError::unsupported(format!(
                    "ONNX input {} has {} dimensions (only N,C,H,W)",
                    input.name,
                    dims.len()
                )));
            };
            if c.is_some_and(|c| c != 3) {
                return Err(FormatError::unsupported(format!(
                    "ONNX input {} has {} channels (images have 3)",
                    input.name,
                    c.unwrap_or(0)
                )));
            }
            channels = c.map(|c| c as usize);
            if let (Some(h), Some(w)) = (h, w) {
                if h != w {
                    return Err(FormatError::unsupported(format!(
                        "ONNX input {} is {h}x{w} (sqz crops square images)",
                        input.name
                    )));
                }
                self.input_size = Some(
                    u32::try_from(h)
                        .map_err(|_| FormatError::invalid(format!("ONNX input size {h}")))?,
                );
            }
        }
        self.input = input.name.clone();
        self.blobs.insert(
            input.name.clone(),
            Blob {
                rank: 4,
                channels,
                unit_spatial: false,
                size: self.input_size.map(|side| [side as usize; 2]),
            },
        );
        Ok(())
    }

    /// Convert one node: `Constant` nodes become known constants, every
    /// other node a graph [`Node`].
    fn node(&mut self, index: usize, node: &'g NodeProto) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(FormatError::unsupported(format!(
                "operator domain {}",
                node.domain
            )));
        }
        let outputs: Vec<&str> = node
            .output
            .iter()
            .map(String::as_str)
            .filter(|o| !o.is_empty())
            .collect();
        let Some(output) = node.output.first().filter(|o| !o.is_empty()) else {
            return Err(FormatError::invalid("node without an output"));
        };
        // Only Dropout may name a second output (its mask), which nothing
        // can read since the importer does not produce it.
        if outputs.len() > 1 && node.op_type != "Dropout" {
            return Err(FormatError::unsupported(format!(
                "{} outputs (only 1)",
                outputs.len()
            )));
        }
        for o in &outputs {
            if self.blobs.contains_key(*o)
                || self.initializers.contains_key(*o)
                || self.constants.contains_key(*o)
            {
                return Err(FormatError::invalid(format!(
                    "writes {o}, which already exists"
                )));
            }
        }
        if node.op_type == "Add" && self.fold_matmul_bias(node)? {
            return Ok(());
        }
        if node.op_type == "Constant" {
            let value =
                super::attributes::Attributes::new(&node.attribute, &["value"])?.tensor("value")?;
            let value =
                value.ok_or_else(|| FormatError::unsupported("Constant without a tensor value"))?;
            self.constants.insert(output.to_string(), value.clone());
            return Ok(());
        }
        let (op, inputs, blob) = self.convert(node)?;
        self.blobs.insert(output.to_string(), blob);
        self.producers.insert(output.to_string(), op.clone());
        self.nodes.push(Node {
            name: display_name(node, index),
            op,
            inputs,
            outputs: vec![output.to_string()],
        });
        Ok(())
    }

    /// The computed tensor `name` that a node reads.
    pub(super) fn blob(&self, name: &str) -> Result<Blob> {
        if let Some(b) = self.blobs.get(name) {
            return Ok(*b);
        }
        if self.initializers.contains_key(name) || self.constants.contains_key(name) {
            return Err(FormatError::unsupported(format!(
                "input {name} is a constant tensor where sqz needs a computed one"
            )));
        }
        Err(FormatError::invalid(format!(
            "reads {name}, which no earlier node produces"
        )))
    }

    /// Make the node that wrote `from` write `to` instead (a later node
    /// folded into it).
    pub(super) fn rename_output(&mut self, from: &str, to: &str) {
        for node in &mut self.nodes {
            for output in node.outputs.iter_mut().filter(|o| *o == from) {
                *output = to.to_string();
            }
        }
        if let Some(blob) = self.blobs.remove(from) {
            self.blobs.insert(to.to_string(), blob);
        }
        if let Some(op) = self.producers.remove(from) {
            self.producers.insert(to.to_string(), op);
        }
    }

    /// The op of the node that wrote blob `name`, if a node did.
    pub(super) fn producer(&self, name: &str) -> Option<Op> {
        self.producers.get(name).cloned()
    }

    /// The weight initializer name of layer `slot`.
    pub(super) fn slot_name(&self, slot: usize) -> &str {
        &self.slot_names[slot]
    }

    /// Layer `slot`, which [`Importer::layer`] has built.
    pub(super) fn built_layer(&self, slot: usize) -> &Layer {
        match &self.layers[slot] {
            Some(s) => &s.layer,
            None => unreachable!("layer {slot} is built before it is used"),
        }
    }

    /// Whether `name` is a constant tensor (initializer or `Constant`
    /// output).
    pub(super) fn is_constant(&self, name: &str) -> bool {
        self.initializers.contains_key(name) || self.constants.contains_key(name)
    }

    /// The constant tensor `name` (initializer or `Constant` output).
    pub(super) fn constant(&self, name: &str) -> Result<&TensorProto> {
        self.initializers
            .get(name)
            .or_else(|| self.constants.get(name))
            .ok_or_else(|| {
                FormatError::unsupported(format!("input {name} must be a constant tensor"))
            })
    }

    /// The layer of weight initializer `weights`, built by `build` on first
    /// use. A later node using the same weights must use them the same way.
    pub(super) fn layer(
        &mut self,
        op_type: &str,
        weights: &str,
        bias: Option<&str>,
        build: impl FnOnce(&TensorProto) -> Result<Layer>,
    ) -> Result<usize> {
        let Some(&slot) = self.slot_of.get(weights) else {
            return Err(FormatError::unsupported(format!(
                "weights {weights} must be an initializer"
            )));
        };
        match &self.layers[slot] {
            Some(existing) if existing.bias.as_deref() == bias && existing.op_type == op_type => {
                Ok(slot)
            }
            Some(_) => Err(FormatError::unsupported(format!(
                "weights {weights} are shared with a node of another kind or bias"
            ))),
            None => {
                let tensor = self.constant(weights)?;
                let layer = build(tensor)?;
                self.release_data(weights);
                self.layers[slot] = Some(LayerSlot {
                    layer,
                    bias: bias.map(str::to_string),
                    op_type: op_type.to_string(),
                });
                Ok(slot)
            }
        }
    }

    /// Drop the data of initializer `name`, which a layer now holds, so
    /// that reading a big model does not keep every tensor twice; its
    /// other fields (dimensions, type) stay for the checks of a second node
    /// sharing the layer. Reading it as a constant again fails as a tensor
    /// without data.
    fn release_data(&mut self, name: &str) {
        if let Some(t) = self.initializers.get_mut(name) {
            t.raw_data = Bytes::new();
            t.float_data = Vec::new();
            t.int32_data = Vec::new();
        }
    }

    /// The graph, its layers named after their weight initializers (without
    /// a `.weight` suffix, made unique), and the fixed input size if any.
    fn finish(self, graph: &GraphProto) -> Result<(Graph, Vec<Layer>, Option<u32>)> {
        let [declared] = graph.output.as_slice() else {
            return Err(FormatError::unsupported(format!(
                "ONNX graph with {} outputs (sqz models have one)",
                graph.output.len()
            )));
        };
        // Like Graph::logits_blob: a final Softmax is kept, its input exposed.
        let softmax_input = match self.producers.get(&declared.name) {
            Some(Op::Softmax) => self
                .nodes
                .iter()
                .find(|n| n.outputs.contains(&declared.name))
                .and_then(|n| n.inputs.first()),
            _ => None,
        };
        let output = softmax_input.unwrap_or(&declared.name).clone();
        if !self.blobs.contains_key(&output) {
            return Err(FormatError::invalid(format!(
                "ONNX output {output} is not computed by the graph"
            )));
        }
        let mut taken = HashSet::new();
        let mut layers = Vec::with_capacity(self.layers.len());
        for (slot, name) in self.layers.into_iter().zip(&self.slot_names) {
            let mut layer = slot
                .ok_or_else(|| {
                    FormatError::invalid(format!("weights {name} are used by no supported node"))
                })?
                .layer;
            let base = name
                .strip_suffix(".weight")
                .filter(|b| !b.is_empty())
                .unwrap_or(name);
            layer.name = unique_name(base, &mut taken);
            layers.push(layer);
        }
        let (nodes, layers) =
            fold::fold_batch_norms(self.nodes, layers, &self.batch_norms, &output);
        let nodes = relu_fusion::merge(nodes, &output);
        Ok((
            Graph {
                nodes,
                input: self.input,
                output,
            },
            layers,
            self.input_size,
        ))
    }
}
