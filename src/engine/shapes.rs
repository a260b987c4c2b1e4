//! Shape inference: the shape of every blob for a given input shape, and the
//! checks that reject a model that cannot run on it, before any computation.

use formats::{Conv, Layer, Model, Node, Op, Pool};

use super::plan::{Plan, INPUT_SLOT};
use super::tensor::element_count;
use super::EngineError;

/// Most values one image may have in any blob: 1 GiB of float32, about a
/// thousand times SqueezeNet's largest. A model asking for more is taken for
/// a corrupt one rather than allowed to exhaust memory.
const MAX_IMAGE_ELEMENTS: usize = 1 << 28;

/// Shapes of the blobs a model computes for one input shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shapes {
    /// Output shape of each node, in graph order.
    pub nodes: Vec<[usize; 4]>,
    /// Shape of the graph's output blob.
    pub output: [usize; 4],
}

/// Infer the shape of every node's output when `model` runs on a batch of
/// `input_shape` (NCHW), checking on the way everything that would make the
/// computation fail: the input size (must be the model's `preprocess.crop`
/// square), dangling blobs, arities, convolution channels against the layer
/// shape, layer data lengths, windows larger than their padded input,
/// padding too large for its kernel, concatenation of different batch or
/// spatial sizes and additions of different shapes.
pub fn infer_shapes(model: &Model, input_shape: [usize; 4]) -> Result<Shapes, EngineError> {
    infer_planned(model, &Plan::new(&model.graph)?, input_shape)
}

/// [`infer_shapes`] for an already resolved plan.
pub(crate) fn infer_planned(
    model: &Model,
    plan: &Plan,
    input_shape: [usize; 4],
) -> Result<Shapes, EngineError> {
    check_input(model, input_shape)?;
    let mut slots = vec![[0usize; 4]; plan.slot_count];
    slots[INPUT_SLOT] = input_shape;
    let mut nodes = Vec::with_capacity(model.graph.nodes.len());
    for (index, node) in model.graph.nodes.iter().enumerate() {
        let inputs: Vec<[usize; 4]> = plan.inputs[index].iter().map(|&slot| slots[slot]).collect();
        let shape = node_output(model, node, &inputs)
            .map_err(|reason| EngineError::node(&node.name, reason))?;
        if element_count([1, shape[1], shape[2], shape[3]]).is_none_or(|n| n > MAX_IMAGE_ELEMENTS)
            || element_count(shape).is_none()
        {
            return Err(EngineError::node(
                &node.name,
                format!("output shape {shape:?} is implausibly large"),
            ));
        }
        slots[Plan::output_slot(index)] = shape;
        nodes.push(shape);
    }
    Ok(Shapes {
        nodes,
        output: slots[plan.result],
    })
}

/// The input must be a non-empty batch of `crop x crop` images.
fn check_input(model: &Model, shape: [usize; 4]) -> Result<(), EngineError> {
    if shape.contains(&0) || element_count(shape).is_none() {
        return Err(EngineError::Input(format!(
            "unusable input shape {shape:?}"
        )));
    }
    let crop = model.preprocess.crop as usize;
    if shape[2] != crop || shape[3] != crop {
        return Err(EngineError::Input(format!(
            "images are {}x{} but the model takes {crop}x{crop}",
            shape[2], shape[3]
        )));
    }
    Ok(())
}

/// Output shape of one node from its input shapes; the error is the reason.
fn node_output(model: &Model, node: &Node, inputs: &[[usize; 4]]) -> Result<[usize; 4], String> {
    match &node.op {
        Op::Conv(conv) => {
            let layer = model
                .layers
                .get(conv.layer)
                .ok_or_else(|| format!("refers to missing layer {}", conv.layer))?;
            conv_output(single(inputs)?, layer, conv)
        }
        Op::Relu | Op::Dropout | Op::Softmax => single(inputs),
        Op::Lrn(lrn) => {
            if lrn.size == 0
                || ![lrn.alpha, lrn.beta, lrn.bias]
                    .iter()
                    .all(|v| v.is_finite())
            {
                return Err(format!(
                    "LRN size {} with alpha {}, beta {}, bias {} is not a usable window",
                    lrn.size, lrn.alpha, lrn.beta, lrn.bias
                ));
            }
            single(inputs)
        }
        Op::Clip(clip) => {
            if clip.min.is_nan() || clip.max.is_nan() || clip.min > clip.max {
                return Err(format!(
                    "clip bounds [{}, {}] are not an interval",
                    clip.min, clip.max
                ));
            }
            single(inputs)
        }
        Op::Pool(pool) => pool_output(single(inputs)?, pool),
        Op::GlobalAvgPool => {
            let [n, c, _, _] = single(inputs)?;
            Ok([n, c, 1, 1])
        }
        Op::Flatten => {
            let [n, c, h, w] = single(inputs)?;
            let features = c
                .checked_mul(h)
                .and_then(|x| x.checked_mul(w))
                .ok_or("too many features to flatten")?;
            Ok([n, features, 1, 1])
        }
        Op::Concat => concat_output(inputs),
        Op::Add => add_output(inputs),
    }
}

/// The shape of the only input of a one-input operation.
fn single(inputs: &[[usize; 4]]) -> Result<[usize; 4], String> {
    match inputs {
        [shape] => Ok(*shape),
        _ => Err(format!("takes one input, got {}", inputs.len())),
    }
}

/// Check that `layer`'s data fits its shape; used for the model's layers and
/// for the replacements a forward hook returns.
pub(crate) fn check_layer(layer: &Layer) -> Result<(), String> {
    if layer.shape.contains(&0) {
        return Err(format!(
            "layer {} has a zero-sized shape {:?}",
            layer.name, layer.shape
        ));
    }
    if element_count(layer.shape) != Some(layer.weights.len()) {
        return Err(format!(
            "layer {} has {} weights for shape {:?}",
            layer.name,
            layer.weights.len(),
            layer.shape
        ));
    }
    if layer.bias.len() != layer.shape[0] {
        return Err(format!(
            "layer {} has {} biases for {} outputs",
            layer.name,
            layer.bias.len(),
            layer.shape[0]
        ));
    }
    Ok(())
}

fn conv_output(input: [usize; 4], layer: &Layer, conv: &Conv) -> Result<[usize; 4], String> {
    check_layer(layer)?;
    let [n, c, h, w] = input;
    let [out_c, group_in_c, kh, kw] = layer.shape;
    if conv.groups == 0 || out_c % conv.groups != 0 {
        return Err(format!(
            "{} groups do not divide the {out_c} output channels of layer {}",
            conv.groups, layer.name
        ));
    }
    if group_in_c.checked_mul(conv.groups) != Some(c) {
        let expected = match conv.groups {
            1 => format!("{group_in_c}"),
            groups => format!("{group_in_c} per group in {groups} groups"),
        };
        return Err(format!(
            "input has {c} channels but layer {} expects {expected}",
            layer.name
        ));
    }
    if conv.stride_h == 0 || conv.stride_w == 0 {
        return Err("zero stride".into());
    }
    if conv.pad_h > kh || conv.pad_w > kw {
        return Err(format!(
            "padding {}x{} exceeds the {kh}x{kw} kernel",
            conv.pad_h, conv.pad_w
        ));
    }
    let out_h = conv_len(h, kh, conv.stride_h, conv.pad_h)
        .ok_or_else(|| too_small("kernel", h, w, kh, kw))?;
    let out_w = conv_len(w, kw, conv.stride_w, conv.pad_w)
        .ok_or_else(|| too_small("kernel", h, w, kh, kw))?;
    Ok([n, out_c, out_h, out_w])
}

fn pool_output(input: [usize; 4], pool: &Pool) -> Result<[usize; 4], String> {
    let [n, c, h, w] = input;
    let (kh, kw) = (pool.kernel_h, pool.kernel_w);
    if pool.stride_h == 0 || pool.stride_w == 0 {
        return Err("zero stride".into());
    }
    // Caffe's rule: a window must hold at least one real value.
    if pool.pad_h >= kh || pool.pad_w >= kw {
        return Err(format!(
            "padding {}x{} is not smaller than the {kh}x{kw} window",
            pool.pad_h, pool.pad_w
        ));
    }
    let out_h = pool_len(h, kh, pool.stride_h, pool.pad_h, pool.ceil_mode)
        .ok_or_else(|| too_small("window", h, w, kh, kw))?;
    let out_w = pool_len(w, kw, pool.stride_w, pool.pad_w, pool.ceil_mode)
        .ok_or_else(|| too_small("window", h, w, kh, kw))?;
    Ok([n, c, out_h, out_w])
}

fn too_small(what: &str, h: usize, w: usize, kh: usize, kw: usize) -> String {
    format!("{kh}x{kw} {what} is larger than the padded {h}x{w} input")
}

/// Convolution output length: `floor((len + 2 pad - kernel) / stride) + 1`,
/// or `None` if the kernel does not fit the padded input. `stride` is > 0.
pub(crate) fn conv_len(len: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    Some(window_span(len, kernel, pad)? / stride + 1)
}

/// Pooling output length as Caffe and PyTorch compute it: like
/// [`conv_len`] but rounding up in `ceil_mode`, then dropping a last window
/// that would start in the right padding or past the input.
pub(crate) fn pool_len(
    len: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let span = window_span(len, kernel, pad)?;
    if !ceil_mode {
        return Some(span / stride + 1);
    }
    let out = span.div_ceil(stride) + 1;
    // The last window starts at (out - 1) * stride - pad.
    let last_start = (out - 1).checked_mul(stride)?;
    Some(if last_start >= len + pad {
        out - 1
    } else {
        out
    })
}

/// `len + 2 pad - kernel`: the room a window has to slide, or `None` if it
/// does not fit.
fn window_span(len: usize, kernel: usize, pad: usize) -> Option<usize> {
    len.checked_add(pad.checked_mul(2)?)?.checked_sub(kernel)
}

fn concat_output(inputs: &[[usize; 4]]) -> Result<[usize; 4], String> {
    let [first, rest @ ..] = inputs else {
        return Err("concatenates no inputs".into());
    };
    let mut channels = first[1];
    for shape in rest {
        if [shape[0], shape[2], shape[3]] != [first[0], first[2], first[3]] {
            return Err(format!(
                "cannot concatenate {shape:?} with {first:?}: batch or spatial sizes differ"
            ));
        }
        channels = channels.checked_add(shape[1]).ok_or("too many channels")?;
    }
    Ok([first[0], channels, first[2], first[3]])
}

fn add_output(inputs: &[[usize; 4]]) -> Result<[usize; 4], String> {
    let [first, rest @ ..] = inputs else {
        return Err("adds no inputs".into());
    };
    match rest.iter().find(|shape| *shape != first) {
        Some(other) => Err(format!("cannot add shapes {first:?} and {other:?}")),
        None => Ok(*first),
    }
}
