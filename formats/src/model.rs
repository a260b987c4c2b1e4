//! The one in-memory model type shared by every crate of sqz.
//!
//! A [`Model`] is what every file format holds: a graph of operations over
//! named blobs, the learned [`Layer`]s (dense float32 weights in
//! `[out][in][kh][kw]` order plus biases), and the [`Preprocess`] preset that
//! turns an image into the network's input. Readers produce it, writers
//! consume it, the engine runs it and the compressor rewrites its weights.
//! Weights are always dense here: sparse and quantized storage only exists
//! inside files (see `sqz`), and a pruned weight is simply `0.0`.

use crate::FormatError;

/// A whole network: graph, weights and preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The operations and the blobs that connect them.
    pub graph: Graph,
    /// Learned parameters; [`Op::Conv`] refers to them by index.
    pub layers: Vec<Layer>,
    /// How images must be turned into the input tensor.
    pub preprocess: Preprocess,
}

/// The network's topology, without weights: what a `.sqz` file stores next
/// to its encoded layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Operations in an order where every input blob is produced before use.
    pub nodes: Vec<Node>,
    /// Name of the blob fed with the preprocessed image batch (NCHW).
    pub input: String,
    /// Name of the blob holding the network's output (logits or probabilities).
    pub output: String,
}

/// One operation of the graph, reading and writing named blobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Layer name as given by the source file (e.g. `fire2/squeeze1x1`).
    pub name: String,
    /// What the node computes.
    pub op: Op,
    /// Input blob names.
    pub inputs: Vec<String>,
    /// Output blob names (one for every op but `Split`-like copies, which the
    /// readers resolve into blob aliases instead of nodes).
    pub outputs: Vec<String>,
}

/// The operations the engine implements.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// 2-D convolution with the weights of `layers[layer]`.
    Conv(Conv),
    /// Rectified linear unit, element-wise.
    Relu,
    /// Max or average pooling over a window.
    Pool(Pool),
    /// Average over all spatial positions: NCHW -> NC11.
    GlobalAvgPool,
    /// Join inputs along the channel axis.
    Concat,
    /// Identity at inference.
    Dropout,
    /// Element-wise sum of all inputs.
    Add,
    /// Softmax over channels (axis 1).
    Softmax,
    /// NCHW -> N x (C*H*W) x 1 x 1; the engine keeps 4-D tensors. A fully
    /// connected layer is a 1x1 [`Op::Conv`] on such a tensor.
    Flatten,
    /// Local response normalisation across channels (AlexNet, GoogLeNet).
    Lrn(Lrn),
    /// Element-wise clamp to `[min, max]` (ReLU6 is `Clip { 0, 6 }`).
    Clip(Clip),
}

/// Local response normalisation across channels, as ONNX `LRN` and Caffe's
/// `LRN` with `ACROSS_CHANNELS` define it:
/// `y[c] = x[c] / (bias + alpha / size * sum(x[c']^2))^beta`, the sum over
/// the `size` channels `c - (size - 1) / 2 ..= c + size / 2` that exist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    /// Number of channels in the window (odd in every known model).
    pub size: usize,
    pub alpha: f32,
    pub beta: f32,
    /// Caffe's `k`.
    pub bias: f32,
}

/// Bounds of an element-wise clamp; `min <= max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    pub min: f32,
    pub max: f32,
}

/// Hyper-parameters of a convolution; weights live in [`Model::layers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    /// Index into [`Model::layers`].
    pub layer: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    /// Channel groups: input and output channels are split into `groups`
    /// equal parts, and output part `g` sees only input part `g`. 1 is an
    /// ordinary convolution; `groups` equal to the channel count is a
    /// depthwise one.
    pub groups: usize,
    /// Apply ReLU to the output (ncnn fuses it into the convolution).
    pub relu: bool,
}

impl Conv {
    /// A convolution of `layer` with stride 1, no padding and no fused
    /// ReLU, in `groups` groups: with a `[out, in, 1, 1]` layer on an
    /// `N x K x 1 x 1` tensor, a fully connected layer (1 group); with a
    /// `[C, 1, 1, 1]` layer, a per-channel affine map (C groups).
    pub fn unit(layer: usize, groups: usize) -> Conv {
        Conv {
            layer,
            stride_h: 1,
            stride_w: 1,
            pad_h: 0,
            pad_w: 0,
            groups,
            relu: false,
        }
    }
}

/// Kind of pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// A pooling window. Output size uses ceil rounding when `ceil_mode` is set
/// (Caffe and ncnn "full" padding), floor otherwise, and never starts a window
/// inside the right/bottom padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub kind: PoolKind,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub ceil_mode: bool,
    /// Average pooling's divisor: `true` divides by the window clipped to
    /// the padded input (Caffe, ncnn, PyTorch's default and ONNX
    /// `count_include_pad=1`), `false` by the number of real input values
    /// in the window (ONNX's default). Max pooling ignores it.
    pub count_include_pad: bool,
}

impl Pool {
    /// A pool of square `kernel` x `kernel` windows with stride `stride`
    /// and symmetric padding `pad` on both axes; averages divide by the
    /// window clipped to the padded input (`count_include_pad`), as Caffe
    /// and ncnn do. SqueezeNet's max pools are
    /// `Pool::square(PoolKind::Max, 3, 2, 0, true)`.
    pub const fn square(
        kind: PoolKind,
        kernel: usize,
        stride: usize,
        pad: usize,
        ceil_mode: bool,
    ) -> Self {
        Pool {
            kind,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: stride,
            stride_w: stride,
            pad_h: pad,
            pad_w: pad,
            ceil_mode,
            count_include_pad: true,
        }
    }
}

/// Learned parameters of one convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Unique layer name, used for per-layer options such as `conv1=8`.
    pub name: String,
    /// `[out_channels, in_channels / groups, kernel_h, kernel_w]` (see
    /// [`Conv::groups`]); a fully connected layer is `[out, in, 1, 1]`.
    pub shape: [usize; 4],
    /// Dense weights, `shape` product long, in `[out][in][kh][kw]` order.
    pub weights: Vec<f32>,
    /// One bias per output channel (zeros when the source has none).
    pub bias: Vec<f32>,
}

impl Layer {
    /// Number of weights, `out * in * kh * kw`.
    pub fn weight_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of weights that are not exactly zero.
    pub fn nonzeros(&self) -> usize {
        self.weights.iter().filter(|w| **w != 0.0).count()
    }

    /// The distinct nonzero weight values, ascending: after weight sharing,
    /// the layer's shared values (its codebook without the pruned zero).
    /// `0.0` and `-0.0` are both zero and never listed, as
    /// [`Layer::nonzeros`] counts them; every other value is compared bit for
    /// bit, so each value a file must store appears exactly once.
    pub fn distinct_nonzero_weights(&self) -> Vec<f32> {
        distinct_nonzero(self.weights.iter().copied())
    }
}

/// The distinct nonzero values of `values`, ascending, as
/// [`Layer::distinct_nonzero_weights`] defines them.
fn distinct_nonzero(values: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    distinct_values(values.filter(|w| *w != 0.0))
}

/// The distinct values of `values` (bit for bit), ascending in total
/// order. Weights after sharing have few, so they are collected in a small
/// sorted list; only past [`FEW_DISTINCT`] of them are all the values
/// copied and sorted (a second pass over `values`).
pub(crate) fn distinct_values(values: impl Iterator<Item = f32> + Clone) -> Vec<f32> {
    let mut few: Vec<f32> = Vec::new();
    for v in values.clone() {
        if let Err(at) = few.binary_search_by(|c| c.total_cmp(&v)) {
            if few.len() == FEW_DISTINCT {
                let mut all: Vec<f32> = values.collect();
                all.sort_unstable_by(f32::total_cmp);
                all.dedup_by(|a, b| a.to_bits() == b.to_bits());
                return all;
            }
            few.insert(at, v);
        }
    }
    few
}

/// Distinct values [`distinct_values`] collects before it sorts instead.
const FEW_DISTINCT: usize = 4096;

/// Order of colour channels in the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How the image is resized before the centre crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// Scale so the shorter side has this length, keeping the aspect ratio
    /// (torchvision `Resize(256)`).
    ShorterSide(u32),
    /// Scale to exactly `width x height`, ignoring the aspect ratio (Caffe).
    Exact { width: u32, height: u32 },
}

/// Image preprocessing: resize (antialiased bilinear), centre crop, then
/// `(pixel * scale - mean[c]) / std[c]` per channel in `channel_order`, where
/// `pixel` is 0..=255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    pub resize: Resize,
    /// Side of the square centre crop: the network's input height and width.
    pub crop: u32,
    pub channel_order: ChannelOrder,
    /// Multiplier applied to 0..=255 pixel values before the mean.
    pub scale: f32,
    /// Per-channel mean, in `channel_order`.
    pub mean: [f32; 3],
    /// Per-channel divisor, in `channel_order`.
    pub std: [f32; 3],
}

impl Preprocess {
    /// torchvision ImageNet preset: RGB, shorter side 256, crop 224, [0,1],
    /// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    pub fn torchvision() -> Self {
        Preprocess {
            resize: Resize::ShorterSide(256),
            crop: 224,
            channel_order: ChannelOrder::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Caffe ImageNet preset: BGR, resize to 256x256, crop 227, 0..255 minus
    /// mean (104, 117, 123).
    pub fn caffe() -> Self {
        Preprocess {
            resize: Resize::Exact {
                width: 256,
                height: 256,
            },
            crop: 227,
            channel_order: ChannelOrder::Bgr,
            scale: 1.0,
            mean: [104.0, 117.0, 123.0],
            std: [1.0, 1.0, 1.0],
        }
    }
}

impl Model {
    /// Total number of weights over all layers (biases excluded).
    pub fn weight_count(&self) -> usize {
        self.layers.iter().map(Layer::weight_count).sum()
    }

    /// Total number of parameters: weights plus biases.
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.weight_count() + l.bias.len())
            .sum()
    }

    /// The distinct nonzero weight values over all layers, ascending, with
    /// the zero handling of [`Layer::distinct_nonzero_weights`].
    pub fn distinct_nonzero_weights(&self) -> Vec<f32> {
        distinct_nonzero(self.layers.iter().flat_map(|l| l.weights.iter().copied()))
    }

    /// Index of the layer called `name`.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name == name)
    }

    /// Check the model's internal consistency: weight and bias lengths match
    /// shapes and the graph is well formed (see [`Graph::validate`]). Readers
    /// call this so a corrupt file is rejected before the engine sees it.
    pub fn validate(&self) -> Result<(), FormatError> {
        for l in &self.layers {
            if l.shape.contains(&0) {
                return Err(FormatError::invalid(format!(
                    "layer {}: zero-sized shape {:?}",
                    l.name, l.shape
                )));
            }
            if l.weights.len() != l.weight_count() {
                return Err(FormatError::invalid(format!(
                    "layer {}: {} weights for shape {:?}",
                    l.name,
                    l.weights.len(),
                    l.shape
                )));
            }
            if l.bias.len() != l.shape[0] {
                return Err(FormatError::invalid(format!(
                    "layer {}: {} biases for {} output channels",
                    l.name,
                    l.bias.len(),
                    l.shape[0]
                )));
            }
        }
        self.graph.validate(self.layers.len())
    }
}

impl Graph {
    /// The blob a reader should make [`Graph::output`]: the only blob of
    /// `nodes` that no node reads, or, when a Softmax produces it, that
    /// Softmax's input. sqz evaluates and compares pre-softmax logits, so a
    /// file ending in Softmax keeps the node but exposes the blob before it.
    /// Errors when the nodes leave no unread blob or several.
    pub fn logits_blob(nodes: &[Node]) -> Result<String, FormatError> {
        let read: std::collections::HashSet<&str> = nodes
            .iter()
            .flat_map(|n| n.inputs.iter().map(String::as_str))
            .collect();
        let mut sinks = nodes
            .iter()
            .flat_map(|n| n.outputs.iter().map(move |o| (n, o)))
            .filter(|(_, o)| !read.contains(o.as_str()));
        let (node, blob) = sinks.next().ok_or_else(|| {
            FormatError::invalid("the graph has no output: every blob is read by some node")
        })?;
        if let Some((_, other)) = sinks.next() {
            return Err(FormatError::unsupported(format!(
                "the graph has several outputs ({blob}, {other}, ...); sqz needs exactly one"
            )));
        }
        match (&node.op, node.inputs.as_slice()) {
            (Op::Softmax, [logits]) => Ok(logits.clone()),
            _ => Ok(blob.clone()),
        }
    }

    /// Check that every blob is produced before it is read, that each node's
    /// arity fits its operation, that convolutions refer to one of
    /// `layer_count` layers, and that the output blob exists.
    pub fn validate(&self, layer_count: usize) -> Result<(), FormatError> {
        let mut known: std::collections::HashSet<&str> = std::collections::HashSet::new();
        known.insert(&self.input);
        for n in &self.nodes {
            for i in &n.inputs {
                if !known.contains(i.as_str()) {
                    return Err(FormatError::invalid(format!(
                        "node {}: input blob {i} is not produced before it",
                        n.name
                    )));
                }
            }
            if let Op::Conv(c) = &n.op {
                if c.layer >= layer_count {
                    return Err(FormatError::invalid(format!(
                        "node {}: refers to missing layer {}",
                        n.name, c.layer
                    )));
                }
                if c.stride_h == 0 || c.stride_w == 0 {
                    return Err(FormatError::invalid(format!(
                        "node {}: zero stride",
                        n.name
                    )));
                }
                if c.groups == 0 {
                    return Err(FormatError::invalid(format!(
                        "node {}: zero convolution groups",
                        n.name
                    )));
                }
            }
            match &n.op {
                Op::Lrn(l)
                    if l.size == 0
                        || !(l.alpha.is_finite() && l.beta.is_finite() && l.bias.is_finite()) =>
                {
                    return Err(FormatError::invalid(format!(
                        "node {}: LRN size 0 or non-finite alpha, beta or bias",
                        n.name
                    )));
                }
                Op::Clip(c) if c.min.is_nan() || c.max.is_nan() || c.min > c.max => {
                    return Err(FormatError::invalid(format!(
                        "node {}: clip bounds [{}, {}] are not an interval",
                        n.name, c.min, c.max
                    )));
                }
                _ => {}
            }
            if let Op::Pool(p) = &n.op {
                if p.kernel_h == 0 || p.kernel_w == 0 || p.stride_h == 0 || p.stride_w == 0 {
                    return Err(FormatError::invalid(format!(
                        "node {}: zero pooling kernel or stride",
                        n.name
                    )));
                }
            }
            let arity_ok = match n.op {
                Op::Concat | Op::Add => !n.inputs.is_empty(),
                _ => n.inputs.len() == 1,
            };
            if !arity_ok || n.outputs.len() != 1 {
                return Err(FormatError::invalid(format!(
                    "node {}: {} inputs and {} outputs do not fit its operation",
                    n.name,
                    n.inputs.len(),
                    n.outputs.len()
                )));
            }
            for o in &n.outputs {
                known.insert(o);
            }
        }
        if !known.contains(self.output.as_str()) {
            return Err(FormatError::invalid(format!(
                "output blob {} is never produced",
                self.output
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Graph, Layer, Model, Preprocess};

    #[test]
    fn distinct_nonzero_weights_skip_both_zeros_and_sort() {
        let layer = Layer {
            name: "l".into(),
            shape: [1, 1, 1, 7],
            weights: vec![0.5, -0.0, -1.0, 0.0, 0.5, -1.0, 2.0],
            bias: vec![0.0],
        };
        assert_eq!(layer.distinct_nonzero_weights(), vec![-1.0, 0.5, 2.0]);
        let other = Layer {
            weights: vec![2.0, 3.0],
            ..layer.clone()
        };
        let model = Model {
            graph: Graph {
                nodes: Vec::new(),
                input: "in".into(),
                output: "in".into(),
            },
            layers: vec![layer, other],
            preprocess: Preprocess::torchvision(),
        };
        assert_eq!(model.distinct_nonzero_weights(), vec![-1.0, 0.5, 2.0, 3.0]);
    }
}
