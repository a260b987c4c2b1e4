//! Caffe network definitions (`NetParameter`, usually a deploy `.prototxt`)
//! turned into a [`Graph`] plus the shapes of its learned layers.
//!
//! Weights are not part of a net definition: they come from a Deep
//! Compression `.net` ([`crate::deep_compression`]) or a `.caffemodel`, and
//! are joined with the definition by [`CaffeNet::into_model`].
//!
//! Caffe lets a layer write the blob it reads (`top == bottom`, e.g. ReLU).
//! The graph here is in single-assignment form instead: such a layer's
//! output is renamed `<blob>/<layer>` (`conv1` then `conv1/relu_conv1`) and
//! later layers read the newest version. The input channels of each
//! convolution (and the inputs of each fully connected layer) are inferred
//! by following blob sizes through the graph from the input shape.
//! Layers whose `include`/`exclude` rules leave them out of the TEST phase
//! are skipped, as Caffe does at deployment.
//!
//! Layer types: `Input`, `Convolution` (with `group`), `InnerProduct` (a
//! Flatten node `<layer>/flatten` is added before it when its input is a
//! map), `Pooling` (max or average, with padding, which Caffe's average
//! counts; global average), `LRN` (`ACROSS_CHANNELS`), `BatchNorm` and
//! `Scale` (one bottom; both per-channel affine maps, folded into the
//! convolution before them when the weights are joined, see `crate::fold`),
//! `ReLU`, `Clip`, `Dropout`, `Softmax`, `Concat` (channels), `Eltwise`
//! (unweighted sum) and `Flatten`. Anything else is an unsupported-layer
//! error naming the layer and its type.

use crate::fold;
use crate::prototxt::{self, Message, Value};
use crate::{
    Clip, Conv, FormatError, Graph, Layer, Lrn, Model, Node, Op, Pool, PoolKind, Preprocess,
    Resize, Result,
};
use std::collections::{HashMap, HashSet};

/// Largest weight count accepted for one layer (2^28, 1 GiB of float32):
/// far above any network sqz targets, and a guard against a corrupt
/// definition making a reader allocate tens of gigabytes.
pub const MAX_LAYER_WEIGHTS: usize = 1 << 28;

/// A learned layer as the definition describes it; its weights are loaded
/// separately.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerShape {
    /// Layer name, unique in the net.
    pub name: String,
    /// `[out_channels, in_channels / groups, kernel_h, kernel_w]`; a
    /// fully connected layer is `[out, in, 1, 1]`, a per-channel affine
    /// map (`BatchNorm`, `Scale`) `[channels, 1, 1, 1]`.
    pub shape: [usize; 4],
    /// Whether the layer has biases (`bias_term`: default true for
    /// convolutions and fully connected layers, false for `Scale`).
    pub bias_term: bool,
    /// The Caffe layer type, which says what its weight blobs hold.
    pub kind: LayerKind,
}

/// The Caffe layer types that carry weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerKind {
    /// `Convolution`: weights `[out, in / group, kh, kw]`, then biases.
    Convolution,
    /// `InnerProduct`: weights `[out, in]`, then biases.
    InnerProduct,
    /// `BatchNorm`: running mean, running variance and the moving-average
    /// scale factor they are divided by; `eps` is added to the variance.
    BatchNorm { eps: f32 },
    /// `Scale` (one bottom): per-channel factors, then offsets if
    /// `bias_term`.
    Scale,
}

impl LayerKind {
    /// Whether the layer is a per-channel affine map, held as a depthwise
    /// 1x1 convolution and folded into the convolution before it (see
    /// `crate::fold`).
    pub fn is_affine(self) -> bool {
        matches!(self, LayerKind::BatchNorm { .. } | LayerKind::Scale)
    }
}

impl LayerShape {
    /// Number of weights, `out * in * kh * kw`.
    pub fn weight_count(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A Caffe network without weights.
#[derive(Debug, Clone, PartialEq)]
pub struct CaffeNet {
    /// Topology; conv nodes refer to `layers` by index.
    pub graph: Graph,
    /// Learned layers in definition order, the order weight files use.
    pub layers: Vec<LayerShape>,
    /// `[N, C, H, W]` of the input blob.
    pub input_shape: [usize; 4],
}

/// Parse a net definition from prototxt text.
pub fn parse_net_text(text: &str) -> Result<CaffeNet> {
    parse_net(&prototxt::parse(text)?)
}

/// Read the graph and layer shapes from a parsed `NetParameter`.
pub fn parse_net(net: &Message) -> Result<CaffeNet> {
    let mut builder = Builder::default();
    builder.net_input(net)?;
    let (v2, v1) = (
        net.get_all_messages("layer")?,
        net.get_all_messages("layers")?,
    );
    if !v2.is_empty() && !v1.is_empty() {
        return Err(FormatError::invalid(
            "net mixes `layer` and legacy `layers` fields",
        ));
    }
    for layer in v2.into_iter().chain(v1) {
        if in_test_phase(layer)? {
            builder.layer(layer)?;
        }
    }
    builder.finish()
}

impl CaffeNet {
    /// Caffe's ImageNet preprocessing ([`Preprocess::caffe`]) with the crop
    /// set to the input size. Needs a square 3-channel input no larger than
    /// the preset's 256x256 resize.
    pub fn preprocess(&self) -> Result<Preprocess> {
        let [_, channels, h, w] = self.input_shape;
        let base = Preprocess::caffe();
        let resize = match base.resize {
            Resize::Exact { width, height } => width.min(height),
            Resize::ShorterSide(side) => side,
        };
        if channels != 3 {
            return Err(FormatError::unsupported(format!(
                "input with {channels} channels (images have 3)"
            )));
        }
        if h != w || h == 0 || h > resize as usize {
            return Err(FormatError::unsupported(format!(
                "input size {h}x{w} (must be square and at most {resize})"
            )));
        }
        Ok(Preprocess {
            crop: h as u32,
            ..base
        })
    }

    /// Join the definition with its parameters: one `(weights, bias)` pair
    /// per entry of `layers`, in order, with `weight_count` weights and
    /// `out_channels` biases (zeros for a layer without `bias_term`; for a
    /// `BatchNorm` or `Scale` layer, the per-channel scale and shift). Then
    /// `BatchNorm` and `Scale` layers are folded into the convolution
    /// before them where that is exact (see `crate::fold`).
    pub fn into_model(self, params: Vec<(Vec<f32>, Vec<f32>)>) -> Result<Model> {
        let preprocess = self.preprocess()?;
        if params.len() != self.layers.len() {
            return Err(FormatError::invalid(format!(
                "{} parameter sets for {} learned layers",
                params.len(),
                self.layers.len()
            )));
        }
        let affine: HashSet<usize> = (0..self.layers.len())
            .filter(|&i| self.layers[i].kind.is_affine())
            .collect();
        let layers: Vec<Layer> = self
            .layers
            .into_iter()
            .zip(params)
            .map(|(l, (weights, bias))| Layer {
                name: l.name,
                shape: l.shape,
                weights,
                bias,
            })
            .collect();
        // Checked before folding, which relies on the sizes.
        Model {
            graph: self.graph.clone(),
            layers: layers.clone(),
            preprocess,
        }
        .validate()?;
        let (nodes, layers) =
            fold::fold_batch_norms(self.graph.nodes, layers, &affine, &self.graph.output);
        let model = Model {
            graph: Graph {
                nodes,
                ..self.graph
            },
            layers,
            preprocess,
        };
        model.validate()?;
        Ok(model)
    }
}

/// Whether Caffe would instantiate `layer` in the TEST phase: no `exclude`
/// rule names TEST, and if there are `include` rules one of them admits TEST.
fn in_test_phase(layer: &Message) -> Result<bool> {
    for rule in layer.get_all_messages("exclude")? {
        if rule.get_ident("phase")? == Some("TEST") {
            return Ok(false);
        }
    }
    let includes = layer.get_all_messages("include")?;
    if includes.is_empty() {
        return Ok(true);
    }
    for rule in includes {
        if rule.get_ident("phase")?.is_none_or(|p| p == "TEST") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The layer type as a modern name; legacy `layers` use enum words such as
/// `CONVOLUTION`.
fn layer_type(layer: &Message) -> Result<String> {
    let legacy = [
        ("CONVOLUTION", "Convolution"),
        ("RELU", "ReLU"),
        ("POOLING", "Pooling"),
        ("CONCAT", "Concat"),
        ("DROPOUT", "Dropout"),
        ("ELTWISE", "Eltwise"),
        ("SOFTMAX", "Softmax"),
        ("INNER_PRODUCT", "InnerProduct"),
        ("FLATTEN", "Flatten"),
    ];
    match layer.get("type")? {
        Some(Value::Str(t)) => Ok(t.clone()),
        Some(Value::Ident(word)) => Ok(legacy
            .iter()
            .find(|(w, _)| *w == word.as_str())
            .map_or(word.as_str(), |(_, t)| t)
            .to_string()),
        Some(other) => Err(FormatError::invalid(format!(
            "layer type must be a string, found {}",
            other.describe()
        ))),
        None => Err(FormatError::invalid("layer without a type")),
    }
}

/// An enum field given by word or number (the text format allows both).
fn enum_field(p: &Message, field: &str, words: &[&str]) -> Result<Option<usize>> {
    match p.get(field)? {
        None => Ok(None),
        Some(Value::Ident(w)) => match words.iter().position(|x| *x == w.as_str()) {
            Some(i) => Ok(Some(i)),
            None => Err(FormatError::unsupported(format!("{field}: {w}"))),
        },
        Some(v) => v.as_usize().map(Some).map_err(|_| {
            FormatError::invalid(format!("{field}: {} is not one of {words:?}", v.describe()))
        }),
    }
}

/// A 2-D size given as the repeated field `list` (one value for both axes,
/// or h then w) or as separate `{field}_h`/`{field}_w` fields, never both.
fn spatial(p: &Message, list: &str, field: &str, default: Option<usize>) -> Result<(usize, usize)> {
    let list = p.get_all_usize(list)?;
    let h = p.get_usize(&format!("{field}_h"))?;
    let w = p.get_usize(&format!("{field}_w"))?;
    match (list.as_slice(), h, w) {
        ([], Some(h), Some(w)) => Ok((h, w)),
        ([], None, None) => default
            .map(|d| (d, d))
            .ok_or_else(|| FormatError::invalid(format!("{field} size is missing"))),
        ([v], None, None) => Ok((*v, *v)),
        ([h, w], None, None) => Ok((*h, *w)),
        ([], _, _) => Err(FormatError::invalid(format!(
            "{field}_h and {field}_w must be given together"
        ))),
        (values, None, None) => Err(FormatError::unsupported(format!(
            "{} {field} values (only 2-D)",
            values.len()
        ))),
        _ => Err(FormatError::invalid(format!(
            "{field} cannot be combined with {field}_h/{field}_w"
        ))),
    }
}

/// Require `value == 1` for a parameter sqz supports only at 1.
fn require_one<T: PartialEq + From<u8> + std::fmt::Display>(value: T, what: &str) -> Result<()> {
    if value != T::from(1) {
        return Err(FormatError::unsupported(format!("{what} {value} (only 1)")));
    }
    Ok(())
}

/// What the builder knows of a blob: channels, spatial size, and whether
/// Caffe holds it as `N x C` (the output of Flatten or InnerProduct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dims {
    channels: usize,
    height: usize,
    width: usize,
    flat: bool,
}

impl Dims {
    /// The same blob with `channels` channels.
    fn with_channels(self, channels: usize) -> Dims {
        Dims { channels, ..self }
    }

    /// An `N x features` blob.
    fn flat(features: usize) -> Dims {
        Dims {
            channels: features,
            height: 1,
            width: 1,
            flat: true,
        }
    }

    /// Values per image.
    fn features(self) -> Result<usize> {
        [self.channels, self.height, self.width]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| FormatError::invalid("blob size overflows"))
    }
}

/// Accumulates nodes, layer shapes and per-blob sizes while walking the
/// layers in order.
#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    layers: Vec<LayerShape>,
    input: Option<(String, [usize; 4])>,
    /// Caffe blob name → name of its newest version in the graph.
    current: HashMap<String, String>,
    /// Every graph blob name used so far.
    produced: HashSet<String>,
    /// Size of each graph blob.
    dims: HashMap<String, Dims>,
    /// Names of the layers seen, which must be unique.
    layer_names: HashSet<String>,
}

impl Builder {
    /// Net-level `input:` with `input_dim` ×4 or `input_shape { dim }`.
    fn net_input(&mut self, net: &Message) -> Result<()> {
        let names = net.get_all_str("input")?;
        let dims = net.get_all_usize("input_dim")?;
        let shapes = net.get_all_messages("input_shape")?;
        match (names.as_slice(), shapes.as_slice()) {
            ([], []) if dims.is_empty() => Ok(()),
            ([name], []) => self.set_input(name, &dims),
            ([name], [shape]) if dims.is_empty() => {
                self.set_input(name, &shape.get_all_usize("dim")?)
            }
            ([], _) => Err(FormatError::invalid(
                "input_dim or input_shape without an input name",
            )),
            ([_], _) => Err(FormatError::invalid(
                "give either input_dim or one input_shape",
            )),
            (several, _) => Err(FormatError::unsupported(format!(
                "{} net inputs (sqz models have one)",
                several.len()
            ))),
        }
    }

    fn set_input(&mut self, name: &str, dims: &[usize]) -> Result<()> {
        let shape: [usize; 4] = dims.try_into().map_err(|_| {
            FormatError::unsupported(format!(
                "input {name} has {} dimensions (only N,C,H,W)",
                dims.len()
            ))
        })?;
        if self.input.is_some() {
            return Err(FormatError::unsupported(
                "a second net input (sqz models have one)",
            ));
        }
        let blob = self.produce(name, "input");
        let [_, channels, height, width] = shape;
        let input_dims = Dims {
            channels,
            height,
            width,
            flat: false,
        };
        self.dims.insert(blob.clone(), input_dims);
        self.input = Some((blob, shape));
        Ok(())
    }

    fn layer(&mut self, layer: &Message) -> Result<()> {
        let name = layer
            .get_str("name")?
            .ok_or_else(|| FormatError::invalid("layer without a name"))?
            .to_string();
        self.add_layer(&name, layer).map_err(|e| match e {
            FormatError::Invalid(m) => FormatError::invalid(format!("Caffe layer {name}: {m}")),
            FormatError::Unsupported(m) => {
                FormatError::unsupported(format!("Caffe layer {name}: {m}"))
            }
            other => other,
        })
    }

    fn add_layer(&mut self, name: &str, layer: &Message) -> Result<()> {
        if !self.layer_names.insert(name.to_string()) {
            return Err(FormatError::invalid("duplicate layer name"));
        }
        let kind = layer_type(layer)?;
        let tops = layer.get_all_str("top")?;
        let [top] = tops.as_slice() else {
            return Err(FormatError::unsupported(format!(
                "{} top blobs (only 1)",
                tops.len()
            )));
        };
        if kind == "Input" {
            let shape = layer
                .get_message("input_param")?
                .and_then(|p| p.get_message("shape").transpose())
                .transpose()?;
            let shape = shape
                .ok_or_else(|| FormatError::invalid("Input layer without input_param { shape }"))?;
            return self.set_input(top, &shape.get_all_usize("dim")?);
        }
        let mut inputs = layer
            .get_all_str("bottom")?
            .into_iter()
            .map(|b| {
                self.current.get(b).cloned().ok_or_else(|| {
                    FormatError::invalid(format!("bottom {b} is produced by no earlier layer"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if inputs.is_empty() {
            return Err(arity(1, 0));
        }
        // Every graph blob gets its size when it is produced.
        let in_dims: Vec<Dims> = inputs.iter().map(|b| self.dims[b]).collect();
        let params = |field: &str| -> Result<Message> {
            Ok(layer.get_message(field)?.cloned().unwrap_or_default())
        };
        let (op, dims) = match kind.as_str() {
            "Convolution" => {
                self.convolution(name, &params("convolution_param")?, single(&in_dims)?)?
            }
            "InnerProduct" => {
                let input = single(&in_dims)?;
                if !input.flat {
                    // Caffe's InnerProduct flattens its input itself.
                    inputs = vec![self.flatten_before(name, &inputs[0], input)?];
                }
                self.inner_product(name, &params("inner_product_param")?, input.features()?)?
            }
            "BatchNorm" => {
                self.batch_norm(name, &params("batch_norm_param")?, single(&in_dims)?)?
            }
            "Scale" => self.scale(name, &params("scale_param")?, &in_dims)?,
            "Pooling" => pooling(&params("pooling_param")?, single(&in_dims)?)?,
            "LRN" => (lrn(&params("lrn_param")?)?, single(&in_dims)?),
            "Clip" => (clip(&params("clip_param")?)?, single(&in_dims)?),
            "ReLU" => {
                if params("relu_param")?
                    .get_f64("negative_slope")?
                    .is_some_and(|s| s != 0.0)
                {
                    return Err(FormatError::unsupported("leaky ReLU"));
                }
                (Op::Relu, single(&in_dims)?)
            }
            "Dropout" => (Op::Dropout, single(&in_dims)?),
            "Softmax" => {
                require_one(
                    params("softmax_param")?
                        .get_with("axis", Value::as_i64)?
                        .unwrap_or(1),
                    "softmax axis",
                )?;
                (Op::Softmax, single(&in_dims)?)
            }
            "Concat" => {
                let p = params("concat_param")?;
                let axis = p
                    .get_with("axis", Value::as_i64)?
                    .or(p.get_with("concat_dim", Value::as_i64)?)
                    .unwrap_or(1);
                if axis != 1 {
                    return Err(FormatError::unsupported(format!(
                        "concat axis {axis} (only 1)"
                    )));
                }
                let channels = in_dims.iter().map(|d| d.channels).sum();
                (Op::Concat, same_size(&in_dims)?.with_channels(channels))
            }
            "Eltwise" => {
                let dims = same_size(&in_dims)?;
                if in_dims.iter().any(|d| d.channels != dims.channels) {
                    return Err(FormatError::invalid(format!(
                        "element-wise inputs with different channels {:?}",
                        in_dims.iter().map(|d| d.channels).collect::<Vec<_>>()
                    )));
                }
                (eltwise(&params("eltwise_param")?)?, dims)
            }
            "Flatten" => {
                let p = params("flatten_param")?;
                require_one(
                    p.get_with("axis", Value::as_i64)?.unwrap_or(1),
                    "flatten axis",
                )?;
                (Op::Flatten, Dims::flat(single(&in_dims)?.features()?))
            }
            other => {
                return Err(FormatError::unsupported(format!(
                    "Caffe layer type {other}"
                )))
            }
        };
        let output = self.produce(top, name);
        self.dims.insert(output.clone(), dims);
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs: vec![output],
        });
        Ok(())
    }

    /// Add a Flatten node `<layer>/flatten` reading `input` (of size
    /// `dims`) before the InnerProduct `layer`; returns its output blob.
    fn flatten_before(&mut self, layer: &str, input: &str, dims: Dims) -> Result<String> {
        let name = format!("{layer}/flatten");
        let output = self.fresh_blob(&name);
        self.dims
            .insert(output.clone(), Dims::flat(dims.features()?));
        self.nodes.push(Node {
            name,
            op: Op::Flatten,
            inputs: vec![input.to_string()],
            outputs: vec![output.clone()],
        });
        Ok(output)
    }

    /// Record learned layer `name` of `shape`, refusing absurd sizes, and
    /// return its index.
    fn learned(
        &mut self,
        name: &str,
        shape: [usize; 4],
        bias_term: bool,
        kind: LayerKind,
    ) -> Result<usize> {
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if count.is_none_or(|c| c > MAX_LAYER_WEIGHTS) {
            return Err(FormatError::unsupported(format!(
                "shape {shape:?} has more than {MAX_LAYER_WEIGHTS} weights"
            )));
        }
        self.layers.push(LayerShape {
            name: name.to_string(),
            shape,
            bias_term,
            kind,
        });
        Ok(self.layers.len() - 1)
    }

    /// A convolution's op and output size; records its layer shape.
    fn convolution(&mut self, name: &str, p: &Message, input: Dims) -> Result<(Op, Dims)> {
        let out = p
            .get_usize("num_output")?
            .ok_or_else(|| FormatError::invalid("convolution without num_output"))?;
        let (kernel_h, kernel_w) = spatial(p, "kernel_size", "kernel", None)?;
        let (stride_h, stride_w) = spatial(p, "stride", "stride", Some(1))?;
        let (pad_h, pad_w) = spatial(p, "pad", "pad", Some(0))?;
        for d in p.get_all_usize("dilation")? {
            require_one(d, "dilation")?;
        }
        let groups = p.get_usize("group")?.unwrap_or(1);
        require_one(
            p.get_with("axis", Value::as_i64)?.unwrap_or(1),
            "convolution axis",
        )?;
        if out == 0
            || kernel_h == 0
            || kernel_w == 0
            || stride_h == 0
            || stride_w == 0
            || groups == 0
        {
            return Err(FormatError::invalid(
                "zero num_output, kernel, stride or group",
            ));
        }
        if !input.channels.is_multiple_of(groups) || !out.is_multiple_of(groups) {
            return Err(FormatError::invalid(format!(
                "group {groups} does not divide {} input and {out} output channels",
                input.channels
            )));
        }
        let shape = [out, input.channels / groups, kernel_h, kernel_w];
        let bias_term = p.get_bool("bias_term")?.unwrap_or(true);
        let layer = self.learned(name, shape, bias_term, LayerKind::Convolution)?;
        let conv = Conv {
            layer,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            groups,
            relu: false,
        };
        let dims = Dims {
            channels: out,
            height: window_count(input.height, kernel_h, stride_h, pad_h, false)?,
            width: window_count(input.width, kernel_w, stride_w, pad_w, false)?,
            // A 1x1 convolution on an N x K blob (as sqz wrote fully
            // connected layers before it wrote InnerProduct) is one too.
            flat: input.flat && (kernel_h, kernel_w, pad_h, pad_w) == (1, 1, 0, 0),
        };
        Ok((Op::Conv(conv), dims))
    }

    /// A fully connected layer on `features` values per image: a 1x1
    /// convolution on the engine's N x K x 1 x 1 tensor.
    fn inner_product(&mut self, name: &str, p: &Message, features: usize) -> Result<(Op, Dims)> {
        let out = p
            .get_usize("num_output")?
            .filter(|&o| o > 0)
            .ok_or_else(|| FormatError::invalid("InnerProduct without num_output"))?;
        require_one(
            p.get_with("axis", Value::as_i64)?.unwrap_or(1),
            "InnerProduct axis",
        )?;
        if p.get_bool("transpose")?.unwrap_or(false) {
            return Err(FormatError::unsupported(
                "InnerProduct with transpose: true",
            ));
        }
        let bias_term = p.get_bool("bias_term")?.unwrap_or(true);
        let layer = self.learned(
            name,
            [out, features, 1, 1],
            bias_term,
            LayerKind::InnerProduct,
        )?;
        Ok((Op::Conv(Conv::unit(layer, 1)), Dims::flat(out)))
    }

    /// Caffe's `BatchNorm` with stored statistics (the TEST phase default).
    fn batch_norm(&mut self, name: &str, p: &Message, input: Dims) -> Result<(Op, Dims)> {
        if p.get_bool("use_global_stats")? == Some(false) {
            return Err(FormatError::unsupported(
                "BatchNorm with use_global_stats: false (statistics of each batch)",
            ));
        }
        let eps = p.get_f64("eps")?.unwrap_or(1e-5) as f32;
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(FormatError::invalid(format!("eps {eps}")));
        }
        let kind = LayerKind::BatchNorm { eps };
        let layer = self.learned(name, [input.channels, 1, 1, 1], true, kind)?;
        Ok((fold::affine_op(layer, input.channels), input))
    }

    /// Caffe's `Scale` by learned per-channel factors (one bottom).
    fn scale(&mut self, name: &str, p: &Message, in_dims: &[Dims]) -> Result<(Op, Dims)> {
        let [input] = in_dims else {
            return Err(FormatError::unsupported(format!(
                "Scale with {} bottoms (only learned factors, one bottom)",
                in_dims.len()
            )));
        };
        require_one(
            p.get_with("axis", Value::as_i64)?.unwrap_or(1),
            "Scale axis",
        )?;
        require_one(
            p.get_with("num_axes", Value::as_i64)?.unwrap_or(1),
            "Scale num_axes",
        )?;
        let bias_term = p.get_bool("bias_term")?.unwrap_or(false);
        let layer = self.learned(name, [input.channels, 1, 1, 1], bias_term, LayerKind::Scale)?;
        Ok((fold::affine_op(layer, input.channels), *input))
    }

    /// Name the new version of Caffe blob `top` written by `layer`: `top`
    /// itself the first time, `top/layer` when it is rewritten.
    fn produce(&mut self, top: &str, layer: &str) -> String {
        let base = if self.current.contains_key(top) {
            format!("{top}/{layer}")
        } else {
            top.to_string()
        };
        let name = self.fresh_blob(&base);
        self.current.insert(top.to_string(), name.clone());
        name
    }

    /// `base`, or `base#2`, `base#3`, ...: the first blob name not used yet.
    fn fresh_blob(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut suffix = 2;
        while self.produced.contains(&name) {
            name = format!("{base}#{suffix}");
            suffix += 1;
        }
        self.produced.insert(name.clone());
        name
    }

    fn finish(self) -> Result<CaffeNet> {
        let (input, input_shape) = self
            .input
            .ok_or_else(|| FormatError::invalid("net has no input (input: or an Input layer)"))?;
        let output = Graph::logits_blob(&self.nodes)?;
        let graph = Graph {
            nodes: self.nodes,
            input,
            output,
        };
        graph.validate(self.layers.len())?;
        Ok(CaffeNet {
            graph,
            layers: self.layers,
            input_shape,
        })
    }
}

fn arity(expected: usize, found: usize) -> FormatError {
    FormatError::invalid(format!("needs {expected} bottom blob(s), has {found}"))
}

/// The size of a one-input layer's input.
fn single(in_dims: &[Dims]) -> Result<Dims> {
    match in_dims {
        [d] => Ok(*d),
        other => Err(arity(1, other.len())),
    }
}

/// The size shared by the inputs of a Concat or Eltwise, whose spatial
/// sizes and layouts must agree (the channels of the first input).
fn same_size(in_dims: &[Dims]) -> Result<Dims> {
    let (first, rest) = in_dims.split_first().ok_or_else(|| arity(1, 0))?;
    let spatial = |d: &Dims| (d.height, d.width, d.flat);
    if rest.iter().any(|d| spatial(d) != spatial(first)) {
        return Err(FormatError::invalid(format!(
            "inputs of different sizes {:?}",
            in_dims
                .iter()
                .map(|d| (d.channels, d.height, d.width))
                .collect::<Vec<_>>()
        )));
    }
    Ok(*first)
}

/// Output positions along one axis of `size` values of a window of
/// `kernel` moved by `stride` over `pad` values of padding on both sides:
/// rounded down, or up (`ceil`, Caffe's pooling) without starting a window
/// in the padding at the end.
fn window_count(
    size: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    ceil: bool,
) -> Result<usize> {
    let padded = size.saturating_add(pad.saturating_mul(2));
    if kernel > padded {
        return Err(FormatError::invalid(format!(
            "kernel {kernel} is larger than the padded input {padded}"
        )));
    }
    let span = padded - kernel;
    let mut count = if ceil {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    if ceil && pad > 0 && (count - 1) * stride >= size.saturating_add(pad) {
        count -= 1;
    }
    Ok(count)
}

fn pooling(p: &Message, input: Dims) -> Result<(Op, Dims)> {
    let kind = match enum_field(p, "pool", &["MAX", "AVE", "STOCHASTIC"])?.unwrap_or(0) {
        0 => PoolKind::Max,
        1 => PoolKind::Avg,
        other => return Err(FormatError::unsupported(format!("pooling method {other}"))),
    };
    if p.get_bool("global_pooling")?.unwrap_or(false) {
        if p.has("kernel_size") || p.has("kernel_h") || p.has("kernel_w") {
            return Err(FormatError::invalid("global pooling with a kernel size"));
        }
        let pooled = Dims {
            height: 1,
            width: 1,
            ..input
        };
        return match kind {
            PoolKind::Avg => Ok((Op::GlobalAvgPool, pooled)),
            PoolKind::Max => Err(FormatError::unsupported("global max pooling")),
        };
    }
    let (kernel_h, kernel_w) = spatial(p, "kernel_size", "kernel", None)?;
    let (stride_h, stride_w) = spatial(p, "stride", "stride", Some(1))?;
    let (pad_h, pad_w) = spatial(p, "pad", "pad", Some(0))?;
    if kernel_h == 0 || kernel_w == 0 || stride_h == 0 || stride_w == 0 {
        return Err(FormatError::invalid("zero kernel or stride"));
    }
    let ceil_mode = match enum_field(p, "round_mode", &["CEIL", "FLOOR"])?.unwrap_or(0) {
        0 => true,
        1 => false,
        other => return Err(FormatError::unsupported(format!("round_mode {other}"))),
    };
    let dims = Dims {
        height: window_count(input.height, kernel_h, stride_h, pad_h, ceil_mode)?,
        width: window_count(input.width, kernel_w, stride_w, pad_w, ceil_mode)?,
        ..input
    };
    // Caffe's average divides by the window clipped to the padded input.
    let pool = Pool {
        kind,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        ceil_mode,
        count_include_pad: true,
    };
    Ok((Op::Pool(pool), dims))
}

/// Local response normalisation; only across channels.
fn lrn(p: &Message) -> Result<Op> {
    if enum_field(p, "norm_region", &["ACROSS_CHANNELS", "WITHIN_CHANNEL"])?.unwrap_or(0) != 0 {
        return Err(FormatError::unsupported(
            "LRN norm_region WITHIN_CHANNEL (only ACROSS_CHANNELS)",
        ));
    }
    let float = |field: &str, default: f64| -> Result<f32> {
        Ok(p.get_f64(field)?.unwrap_or(default) as f32)
    };
    let lrn = Lrn {
        size: p.get_usize("local_size")?.unwrap_or(5),
        alpha: float("alpha", 1.0)?,
        beta: float("beta", 0.75)?,
        bias: float("k", 1.0)?,
    };
    if lrn.size == 0 || !(lrn.alpha.is_finite() && lrn.beta.is_finite() && lrn.bias.is_finite()) {
        return Err(FormatError::invalid(
            "LRN local_size 0 or non-finite alpha, beta or k",
        ));
    }
    Ok(Op::Lrn(lrn))
}

/// Caffe's `Clip` layer: `clip_param { min max }`, both required.
fn clip(p: &Message) -> Result<Op> {
    let bound = |field: &str| -> Result<f32> {
        p.get_f64(field)?
            .map(|v| v as f32)
            .ok_or_else(|| FormatError::invalid(format!("Clip without {field}")))
    };
    let clip = Clip {
        min: bound("min")?,
        max: bound("max")?,
    };
    if clip.min.is_nan() || clip.max.is_nan() || clip.min > clip.max {
        return Err(FormatError::invalid(format!(
            "clip bounds [{}, {}] are not an interval",
            clip.min, clip.max
        )));
    }
    Ok(Op::Clip(clip))
}

/// Only an unweighted sum maps to an engine op.
fn eltwise(p: &Message) -> Result<Op> {
    if enum_field(p, "operation", &["PROD", "SUM", "MAX"])?.unwrap_or(1) != 1 {
        return Err(FormatError::unsupported("Eltwise operation other than SUM"));
    }
    if p.get_all_with("coeff", Value::as_f64)?
        .iter()
        .any(|&c| c != 1.0)
    {
        return Err(FormatError::unsupported("weighted Eltwise sum"));
    }
    Ok(Op::Add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(layers: &str) -> Result<CaffeNet> {
        parse_net_text(&format!(
            "input: \"data\" input_dim: 1 input_dim: 3 input_dim: 32 input_dim: 32\n{layers}"
        ))
    }

    const CONV_RELU: &str = r#"
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
                convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } }
        layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
        layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
                pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
    "#;

    #[test]
    fn in_place_layers_are_renamed_and_consumers_follow() {
        let n = net(CONV_RELU).unwrap();
        let blobs: Vec<(&str, &str)> = n
            .graph
            .nodes
            .iter()
            .map(|n| (n.inputs[0].as_str(), n.outputs[0].as_str()))
            .collect();
        assert_eq!(
            blobs,
            [
                ("data", "conv1"),
                ("conv1", "conv1/relu1"),
                ("conv1/relu1", "pool1")
            ]
        );
        assert_eq!(n.graph.output, "pool1");
        assert_eq!(
            n.layers,
            [LayerShape {
                name: "conv1".into(),
                shape: [8, 3, 3, 3],
                bias_term: true,
                kind: LayerKind::Convolution,
            }]
        );
        assert_eq!(
            n.graph.nodes[0].op,
            Op::Conv(Conv {
                layer: 0,
                stride_h: 2,
                stride_w: 2,
                pad_h: 1,
                pad_w: 1,
                groups: 1,
                relu: false
            })
        );
        assert_eq!(
            n.graph.nodes[2].op,
            Op::Pool(Pool::square(PoolKind::Max, 3, 2, 0, true))
        );
        assert_eq!(n.input_shape, [1, 3, 32, 32]);
        assert_eq!(n.preprocess().unwrap().crop, 32);
    }

    #[test]
    fn channels_flow_through_concat_and_eltwise() {
        let n = net(&format!(
            r#"{CONV_RELU}
            layer {{ name: "a" type: "Convolution" bottom: "pool1" top: "a" convolution_param {{ num_output: 4 kernel_size: 1 }} }}
            layer {{ name: "b" type: "Convolution" bottom: "pool1" top: "b" convolution_param {{ num_output: 6 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0 }} }}
            layer {{ name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }}
            layer {{ name: "c" type: "Convolution" bottom: "cat" top: "c" convolution_param {{ num_output: 10 kernel_size: [1, 3] pad: [0, 1] bias_term: false }} }}
            layer {{ name: "d" type: "Convolution" bottom: "cat" top: "d" convolution_param {{ num_output: 10 kernel_size: 1 }} }}
            layer {{ name: "sum" type: "Eltwise" bottom: "c" bottom: "d" top: "sum" }}
            layer {{ name: "gap" type: "Pooling" bottom: "sum" top: "gap" pooling_param {{ pool: AVE global_pooling: true }} }}
            layer {{ name: "prob" type: "Softmax" bottom: "gap" top: "prob" }}
            "#
        ))
        .unwrap();
        let shapes: Vec<[usize; 4]> = n.layers.iter().map(|l| l.shape).collect();
        assert_eq!(
            shapes,
            [
                [8, 3, 3, 3],
                [4, 8, 1, 1],
                [6, 8, 3, 1],
                [10, 10, 1, 3],
                [10, 10, 1, 1]
            ]
        );
        assert!(!n.layers[3].bias_term);
        assert_eq!(n.graph.nodes[5].op, Op::Concat);
        assert_eq!(n.graph.nodes[8].op, Op::Add);
        assert_eq!(n.graph.nodes[9].op, Op::GlobalAvgPool);
        assert_eq!(
            n.graph.output, "gap",
            "logits are the input of the final Softmax"
        );
    }

    #[test]
    fn flatten_and_inner_product_follow_the_spatial_size() {
        // 32x32 -> conv 3x3 stride 2 pad 1: 16x16 -> max pool 3/2 (ceil): 8x8.
        let n = net(&format!(
            r#"{CONV_RELU}
            layer {{ name: "gap" type: "Pooling" bottom: "pool1" top: "gap" pooling_param {{ pool: AVE global_pooling: true }} }}
            layer {{ name: "flat" type: "Flatten" bottom: "gap" top: "flat" }}
            layer {{ name: "flat2" type: "Flatten" bottom: "flat" top: "flat2" flatten_param {{ axis: 1 }} }}
            layer {{ name: "fc" type: "Convolution" bottom: "flat2" top: "fc" convolution_param {{ num_output: 5 kernel_size: 1 }} }}
            layer {{ name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip" inner_product_param {{ num_output: 7 }} }}
            layer {{ name: "f" type: "Flatten" bottom: "pool1" top: "f" }}
            layer {{ name: "ip2" type: "InnerProduct" bottom: "f" top: "ip2" inner_product_param {{ num_output: 7 bias_term: false }} }}
            layer {{ name: "sum" type: "Eltwise" bottom: "ip" bottom: "ip2" top: "sum" }}
            layer {{ name: "cat" type: "Concat" bottom: "fc" bottom: "sum" top: "cat" }}
            "#
        ))
        .unwrap();
        assert_eq!(
            (n.graph.nodes[4].op.clone(), n.graph.nodes[5].op.clone()),
            (Op::Flatten, Op::Flatten)
        );
        assert_eq!(
            n.layers[1].shape,
            [5, 8, 1, 1],
            "flattening a 1x1 map keeps its channels"
        );
        // An InnerProduct on a map flattens it first, with a node of its own.
        let names: Vec<&str> = n.graph.nodes[7..].iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["ip/flatten", "ip", "f", "ip2", "sum", "cat"]);
        assert_eq!(n.graph.nodes[8].inputs, ["ip/flatten"]);
        assert_eq!(n.layers[2].shape, [7, 8 * 8 * 8, 1, 1]);
        assert_eq!(n.layers[2].kind, LayerKind::InnerProduct);
        assert!(!n.layers[3].bias_term);
    }

    #[test]
    fn grouped_convolution_lrn_batch_norm_and_scale() {
        let n = net(&format!(
            r#"{CONV_RELU}
            layer {{ name: "g" type: "Convolution" bottom: "pool1" top: "g" convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 group: 2 }} }}
            layer {{ name: "norm" type: "LRN" bottom: "g" top: "norm" lrn_param {{ local_size: 3 alpha: 0.001 }} }}
            layer {{ name: "bn" type: "BatchNorm" bottom: "norm" top: "norm" batch_norm_param {{ eps: 0.001 }} }}
            layer {{ name: "scale" type: "Scale" bottom: "norm" top: "norm" scale_param {{ bias_term: true }} }}
            layer {{ name: "six" type: "Clip" bottom: "norm" top: "norm" clip_param {{ min: 0 max: 6 }} }}
            layer {{ name: "ap" type: "Pooling" bottom: "norm" top: "ap" pooling_param {{ pool: AVE kernel_size: 3 pad: 1 }} }}
            "#
        ))
        .unwrap();
        assert_eq!(n.layers[1].shape, [4, 4, 3, 3], "8 inputs in 2 groups");
        assert!(matches!(
            n.graph.nodes[3].op,
            Op::Conv(Conv { groups: 2, .. })
        ));
        assert_eq!(
            n.graph.nodes[4].op,
            Op::Lrn(Lrn {
                size: 3,
                alpha: 0.001,
                beta: 0.75,
                bias: 1.0
            })
        );
        assert_eq!(n.layers[2].kind, LayerKind::BatchNorm { eps: 0.001 });
        assert_eq!(
            (n.layers[3].kind, n.layers[3].bias_term),
            (LayerKind::Scale, true)
        );
        assert_eq!(n.layers[3].shape, [4, 1, 1, 1]);
        assert_eq!(n.graph.nodes[7].op, Op::Clip(Clip { min: 0.0, max: 6.0 }));
        assert!(matches!(
            n.graph.nodes[8].op,
            Op::Pool(Pool {
                pad_h: 1,
                count_include_pad: true,
                ..
            })
        ));
    }

    #[test]
    fn input_forms_are_equivalent() {
        let body = r#"layer { name: "r" type: "ReLU" bottom: "x" top: "r" }"#;
        let forms = [
            format!("input: \"x\" input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9 {body}"),
            format!("input: \"x\" input_shape {{ dim: 1 dim: 3 dim: 9 dim: 9 }} {body}"),
            format!("layer {{ name: \"in\" type: \"Input\" top: \"x\" input_param {{ shape {{ dim: [1, 3, 9, 9] }} }} }} {body}"),
        ];
        for text in forms {
            let n = parse_net_text(&text).unwrap();
            assert_eq!(
                (n.graph.input.as_str(), n.input_shape),
                ("x", [1, 3, 9, 9]),
                "{text}"
            );
        }
    }

    #[test]
    fn legacy_layers_and_test_phase_rules() {
        let n = net(
            r#"
            layers { name: "train_only" type: DROPOUT bottom: "data" top: "data" include { phase: TRAIN } }
            layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 } }
            layers { name: "not_test" type: RELU bottom: "conv" top: "conv" exclude { phase: TEST } }
            layers { name: "relu" type: RELU bottom: "conv" top: "conv" include { phase: TEST } }
            "#,
        )
        .unwrap();
        let names: Vec<&str> = n.graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["conv", "relu"]);
        assert_eq!(n.graph.nodes[1].outputs, ["conv/relu"]);
    }

    #[test]
    fn unsupported_and_invalid_definitions_are_errors() {
        let conv = |params: &str| {
            net(&format!(
                r#"layer {{ name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param {{ {params} }} }}"#
            ))
        };
        for (params, expected) in [
            (
                "num_output: 4 kernel_size: 3 group: 2",
                "group 2 does not divide 3",
            ),
            ("num_output: 4 kernel_size: 3 dilation: 2", "dilation 2"),
            ("num_output: 4 kernel_size: [1, 1, 1]", "only 2-D"),
            (
                "num_output: 4 kernel_size: 3 kernel_h: 3",
                "cannot be combined",
            ),
            ("num_output: 4 kernel_h: 3", "together"),
            ("num_output: 4", "kernel size is missing"),
            ("kernel_size: 1", "num_output"),
            ("num_output: 1000000 kernel_size: 1000", "more than"),
            ("num_output: \"4\" kernel_size: 1", "num_output"),
        ] {
            let e = conv(params).unwrap_err().to_string();
            assert!(
                e.contains(expected) && e.contains("layer c"),
                "{params}: {e}"
            );
        }
        for (layers, expected) in [
            (
                r#"layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" }"#,
                "InnerProduct without num_output",
            ),
            (
                r#"layer { name: "n" type: "LRN" bottom: "data" top: "n" lrn_param { norm_region: WITHIN_CHANNEL } }"#,
                "WITHIN_CHANNEL",
            ),
            (
                r#"layer { name: "s" type: "Scale" bottom: "data" bottom: "data" top: "s" }"#,
                "2 bottoms",
            ),
            (
                r#"layer { name: "b" type: "BatchNorm" bottom: "data" top: "b" batch_norm_param { use_global_stats: false } }"#,
                "use_global_stats",
            ),
            (
                r#"layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { pool: MAX kernel_size: 40 } }"#,
                "larger than the padded input",
            ),
            (
                r#"layer { name: "t" type: "TanH" bottom: "data" top: "t" }"#,
                "Caffe layer type TanH",
            ),
            (
                r#"layer { name: "m" type: "Eltwise" bottom: "data" bottom: "data" top: "m" eltwise_param { operation: MAX } }"#,
                "SUM",
            ),
            (
                r#"layer { name: "c" type: "Concat" bottom: "data" top: "c" concat_param { axis: 2 } }"#,
                "axis 2",
            ),
            (
                r#"layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }"#,
                "bottom nope",
            ),
            (
                r#"layer { name: "r" type: "ReLU" bottom: "data" top: "a" top: "b" }"#,
                "2 top blobs",
            ),
            (
                r#"layer { name: "r" type: "ReLU" bottom: "data" top: "r" } layer { name: "r" type: "ReLU" bottom: "r" top: "s" }"#,
                "duplicate",
            ),
            (
                r#"layer { name: "r" type: "ReLU" bottom: "data" top: "a" } layer { name: "s" type: "ReLU" bottom: "data" top: "b" }"#,
                "several outputs",
            ),
        ] {
            let e = net(layers).unwrap_err().to_string();
            assert!(e.contains(expected), "{layers}: {e}");
        }
        assert!(
            parse_net_text("layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"r\" }")
                .unwrap_err()
                .to_string()
                .contains("bottom x")
        );
        assert!(parse_net_text("input: \"x\" input_dim: 1 input_dim: 3")
            .unwrap_err()
            .to_string()
            .contains("2 dimensions"));
        assert!(parse_net_text("layer {").is_err());
    }

    #[test]
    fn into_model_checks_parameter_counts() {
        let n = net(CONV_RELU).unwrap();
        assert!(n.clone().into_model(vec![]).is_err());
        assert!(n
            .clone()
            .into_model(vec![(vec![0.0; 5], vec![0.0; 8])])
            .is_err());
        let m = n
            .into_model(vec![(vec![0.5; 8 * 27], vec![0.0; 8])])
            .unwrap();
        assert_eq!(m.parameter_count(), 8 * 27 + 8);
        assert_eq!(m.preprocess.channel_order, crate::ChannelOrder::Bgr);
    }
}
