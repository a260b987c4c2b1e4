//! Batch normalization as the model type holds it, and its folding into
//! the convolution before it.
//!
//! At inference a batch normalization (ONNX `BatchNormalization`, Caffe
//! `BatchNorm` followed by `Scale`) is a per-channel affine map
//! `y[c] = x[c] * scale[c] + shift[c]`. The model type has no operation of
//! its own for it: it is a depthwise 1x1 [`Op::Conv`] (groups = channels,
//! layer shape `[C, 1, 1, 1]`, weight = scale, bias = shift), which the
//! engine, the `.sqz` container and the writers already handle.
//! [`fold_batch_norms`] then removes every such layer that directly follows
//! a convolution, multiplying that convolution's weights and bias instead,
//! so the usual Conv + BN pair loads as one convolution named like the
//! convolution. The ONNX and Caffe readers both use it.

use crate::blob_use::BlobUse;
use crate::{Conv, FormatError, Layer, Node, Op, Result};
use std::collections::{HashMap, HashSet};

/// The per-channel affine map of a batch normalization with learned
/// `gamma` (scale) and `beta` (shift) over running statistics `mean` and
/// `variance`: `scale = gamma / sqrt(variance + eps)`,
/// `shift = beta - mean * scale`, computed in double precision. All four
/// slices must have one value per channel and every `variance + eps` must
/// be positive.
pub(crate) fn batch_norm_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    variance: &[f32],
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let channels = gamma.len();
    if [beta, mean, variance].iter().any(|v| v.len() != channels) {
        return Err(FormatError::invalid(format!(
            "batch normalization with other than {channels} values in each of scale, shift, mean and variance"
        )));
    }
    if variance.iter().any(|&v| v + eps <= 0.0 || v.is_nan()) {
        return Err(FormatError::invalid(
            "batch normalization with a variance + epsilon that is not positive",
        ));
    }
    let scale: Vec<f64> = gamma
        .iter()
        .zip(variance)
        .map(|(&g, &v)| f64::from(g) / (f64::from(v) + f64::from(eps)).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| (f64::from(b) - f64::from(m) * s) as f32)
        .collect();
    Ok((scale.into_iter().map(|s| s as f32).collect(), shift))
}

/// The depthwise 1x1 layer computing `x * scale + shift` per channel.
pub(crate) fn affine_layer(name: &str, scale: Vec<f32>, shift: Vec<f32>) -> Layer {
    Layer {
        name: name.to_string(),
        shape: [scale.len(), 1, 1, 1],
        weights: scale,
        bias: shift,
    }
}

/// The convolution node applying [`affine_layer`] `layer` to `channels`
/// channels.
pub(crate) fn affine_op(layer: usize, channels: usize) -> Op {
    Op::Conv(Conv::unit(layer, channels))
}

/// Fold the batch normalizations among `nodes` (the conv nodes whose layer
/// index is in `batch_norms`, built by [`affine_op`]) into the convolution
/// before them wherever that is exact: the convolution has no fused ReLU,
/// its output is read by the batch normalization only and is not
/// `output`, and its layer is used by no other node. The convolution then
/// writes the batch normalization's output, its weights of output channel
/// `c` are multiplied by `scale[c]` and its bias becomes
/// `bias * scale + shift`. The convolution may itself be a batch
/// normalization (Caffe's `BatchNorm` then `Scale`), so folding repeats
/// until nothing changes. Folded layers are removed from `layers` and the
/// remaining conv nodes renumbered; the others stay depthwise convolutions.
pub(crate) fn fold_batch_norms(
    mut nodes: Vec<Node>,
    mut layers: Vec<Layer>,
    batch_norms: &HashSet<usize>,
    output: &str,
) -> (Vec<Node>, Vec<Layer>) {
    let mut is_batch_norm: Vec<bool> = (0..layers.len())
        .map(|l| batch_norms.contains(&l))
        .collect();
    loop {
        let before = nodes.len();
        let removed;
        (nodes, layers, removed) = fold_once(nodes, layers, &is_batch_norm, output);
        is_batch_norm = is_batch_norm
            .into_iter()
            .zip(removed)
            .filter_map(|(bn, gone)| (!gone).then_some(bn))
            .collect();
        if nodes.len() == before {
            return (nodes, layers);
        }
    }
}

/// One pass of [`fold_batch_norms`]: the folded graph and layers, and which
/// of the old layers were removed.
fn fold_once(
    nodes: Vec<Node>,
    mut layers: Vec<Layer>,
    is_batch_norm: &[bool],
    output: &str,
) -> (Vec<Node>, Vec<Layer>, Vec<bool>) {
    let mut layer_uses = vec![0usize; layers.len()];
    for node in &nodes {
        if let Op::Conv(c) = &node.op {
            layer_uses[c.layer] += 1;
        }
    }
    let blobs = BlobUse::of(&nodes);
    // batch-norm node index -> conv node index
    let mut folds: HashMap<usize, usize> = HashMap::new();
    for (b, node) in nodes.iter().enumerate() {
        let (Op::Conv(bn), [input]) = (&node.op, node.inputs.as_slice()) else {
            continue;
        };
        if !is_batch_norm[bn.layer] || layer_uses[bn.layer] != 1 {
            continue;
        }
        let Some(c) = blobs.private_producer(input, output) else {
            continue;
        };
        let Op::Conv(conv) = &nodes[c].op else {
            continue;
        };
        // A batch normalization folded in this pass cannot take another.
        let foldable = !conv.relu
            && !folds.contains_key(&c)
            && layer_uses[conv.layer] == 1
            && layers[conv.layer].shape[0] == layers[bn.layer].shape[0]
            && layers[conv.layer].weights.len() == layers[conv.layer].weight_count()
            && layers[bn.layer].weights.len() == layers[bn.layer].shape[0]
            && layers[bn.layer].shape[0] > 0;
        if foldable {
            folds.insert(b, c);
        }
    }
    let mut removed = vec![false; layers.len()];
    let mut new_outputs: HashMap<usize, Vec<String>> = HashMap::new();
    for (&b, &c) in &folds {
        let (Op::Conv(bn), Op::Conv(conv)) = (&nodes[b].op, &nodes[c].op) else {
            unreachable!("folds pair conv nodes");
        };
        let affine = std::mem::replace(
            &mut layers[bn.layer],
            affine_layer("", Vec::new(), Vec::new()),
        );
        scale_output_channels(&mut layers[conv.layer], &affine.weights, &affine.bias);
        removed[bn.layer] = true;
        new_outputs.insert(c, nodes[b].outputs.clone());
    }
    let renumber: Vec<usize> = removed
        .iter()
        .scan(0, |next, &gone| {
            let index = *next;
            *next += usize::from(!gone);
            Some(index)
        })
        .collect();
    let mut out = Vec::with_capacity(nodes.len() - folds.len());
    for (i, mut node) in nodes.into_iter().enumerate() {
        if folds.contains_key(&i) {
            continue;
        }
        if let Some(outputs) = new_outputs.remove(&i) {
            node.outputs = outputs;
        }
        if let Op::Conv(c) = &mut node.op {
            c.layer = renumber[c.layer];
        }
        out.push(node);
    }
    let layers = layers
        .into_iter()
        .zip(&removed)
        .filter_map(|(l, gone)| (!gone).then_some(l))
        .collect();
    (out, layers, removed)
}

/// Multiply output channel `c` of `layer` by `scale[c]` and set its bias to
/// `bias * scale[c] + shift[c]`.
fn scale_output_channels(layer: &mut Layer, scale: &[f32], shift: &[f32]) {
    let per_output = layer.weights.len() / layer.shape[0];
    for (c, weights) in layer.weights.chunks_mut(per_output).enumerate() {
        weights.iter_mut().for_each(|w| *w *= scale[c]);
        layer.bias[c] = layer.bias[c] * scale[c] + shift[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: Op, input: &str, output: &str) -> Node {
        Node {
            name: name.into(),
            op,
            inputs: vec![input.into()],
            outputs: vec![output.into()],
        }
    }

    fn conv(layer: usize, relu: bool) -> Op {
        Op::Conv(Conv {
            relu,
            ..Conv::unit(layer, 1)
        })
    }

    fn layer(name: &str, out: usize) -> Layer {
        Layer {
            name: name.into(),
            shape: [out, 1, 1, 2],
            weights: (0..2 * out).map(|i| i as f32 + 1.0).collect(),
            bias: vec![0.5; out],
        }
    }

    #[test]
    fn affine_of_batch_norm_statistics() {
        let (scale, shift) = batch_norm_affine(&[2.0], &[1.0], &[3.0], &[3.0], 1.0).unwrap();
        assert_eq!((scale, shift), (vec![1.0], vec![-2.0]));
        assert!(batch_norm_affine(&[2.0], &[1.0], &[3.0], &[-1.0], 1.0).is_err());
        assert!(batch_norm_affine(&[2.0], &[1.0], &[3.0, 1.0], &[1.0], 1.0).is_err());
    }

    #[test]
    fn a_batch_norm_after_a_private_conv_is_folded_and_layers_renumbered() {
        let nodes = vec![
            node("c", conv(0, false), "x", "a"),
            node("bn", affine_op(1, 2), "a", "b"),
            node("d", conv(2, true), "b", "y"),
        ];
        let layers = vec![
            layer("c", 2),
            affine_layer("bn", vec![2.0, -1.0], vec![1.0, 0.0]),
            layer("d", 2),
        ];
        let (nodes, layers) = fold_batch_norms(nodes, layers, &HashSet::from([1]), "y");
        assert_eq!(
            nodes,
            [
                node("c", conv(0, false), "x", "b"),
                node("d", conv(1, true), "b", "y")
            ]
        );
        assert_eq!(layers[0].weights, [2.0, 4.0, -3.0, -4.0]);
        assert_eq!(layers[0].bias, [2.0, -0.5]);
        assert_eq!(layers[1].name, "d");
    }

    #[test]
    fn a_chain_of_affine_maps_folds_into_one_convolution() {
        let nodes = vec![
            node("c", conv(0, false), "x", "a"),
            node("bn", affine_op(1, 2), "a", "b"),
            node("scale", affine_op(2, 2), "b", "y"),
        ];
        let layers = vec![
            layer("c", 2),
            affine_layer("bn", vec![2.0, -1.0], vec![1.0, 0.0]),
            affine_layer("scale", vec![0.5, 3.0], vec![0.0, 1.0]),
        ];
        let (nodes, layers) = fold_batch_norms(nodes, layers, &HashSet::from([1, 2]), "y");
        assert_eq!(nodes, [node("c", conv(0, false), "x", "y")]);
        assert_eq!(layers[0].weights, [1.0, 2.0, -9.0, -12.0]);
        assert_eq!(layers[0].bias, [1.0, -0.5]);
    }

    #[test]
    fn a_batch_norm_stays_where_folding_would_change_the_result() {
        let bn = affine_layer("bn", vec![2.0, -1.0], vec![1.0, 0.0]);
        let cases = [
            // The conv applies ReLU before the batch norm.
            (vec![node("c", conv(0, true), "x", "a")], "b"),
            // The conv's output is read elsewhere too.
            (
                vec![
                    node("c", conv(0, false), "x", "a"),
                    node("r", Op::Relu, "a", "r"),
                ],
                "b",
            ),
            // The conv's output is the graph output.
            (vec![node("c", conv(0, false), "x", "a")], "a"),
        ];
        for (mut nodes, output) in cases {
            nodes.push(node("bn", affine_op(1, 2), "a", "b"));
            let layers = vec![layer("c", 2), bn.clone()];
            let (folded, kept) =
                fold_batch_norms(nodes.clone(), layers.clone(), &HashSet::from([1]), output);
            assert_eq!((folded, kept), (nodes, layers));
        }
        // Not after a conv: the batch norm reads the input.
        let nodes = vec![node("bn", affine_op(0, 2), "x", "b")];
        let (folded, _) = fold_batch_norms(nodes.clone(), vec![bn], &HashSet::from([0]), "b");
        assert_eq!(folded, nodes);
    }
}
