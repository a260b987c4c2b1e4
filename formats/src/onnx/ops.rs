//! Conversion of each supported ONNX operator into an engine [`Op`], with
//! the checks that make the two compute the same thing.

use super::attributes::Attributes;
use super::proto::NodeProto;
use super::read::{Blob, Importer};
use super::tensor;
use crate::fold;
use crate::{Clip, Conv, FormatError, Layer, Lrn, Op, Pool, PoolKind, Result};

/// What a converted node computes, the blobs it reads, and what is known of
/// its output.
type Converted = (Op, Vec<String>, Blob);

impl Importer<'_> {
    /// Convert `node` (standard domain, not `Constant`).
    pub(super) fn convert(&mut self, node: &NodeProto) -> Result<Converted> {
        match node.op_type.as_str() {
            "Conv" => self.conv(node),
            "Gemm" => self.gemm(node),
            "Relu" => self.same_shape(node, Op::Relu),
            "MaxPool" => self.pool(node, PoolKind::Max),
            "AveragePool" => self.pool(node, PoolKind::Avg),
            "GlobalAveragePool" => {
                let (op, inputs, blob) = self.same_shape(node, Op::GlobalAvgPool)?;
                self.image(node)?;
                Ok((
                    op,
                    inputs,
                    Blob {
                        unit_spatial: true,
                        size: Some([1, 1]),
                        ..blob
                    },
                ))
            }
            "Concat" => self.concat(node),
            "Dropout" => self.dropout(node),
            "Flatten" => self.flatten(node),
            "Reshape" => self.reshape(node),
            "Softmax" => self.softmax(node),
            "Add" | "Sum" => self.add(node),
            "BatchNormalization" => self.batch_norm(node),
            "LRN" => self.lrn(node),
            "Clip" => self.clip(node),
            "MatMul" => self.matmul(node),
            // The identity; the model type's identity is Dropout's.
            "Identity" => self.same_shape(node, Op::Dropout),
            other => Err(FormatError::unsupported(format!("operator {other}"))),
        }
    }

    /// The node's inputs, requiring between `min` and `max` of them (empty
    /// names count as absent optional inputs at the end).
    fn inputs(node: &NodeProto, min: usize, max: usize) -> Result<Vec<Option<&str>>> {
        let given = node
            .input
            .iter()
            .rposition(|i| !i.is_empty())
            .map_or(0, |last| last + 1);
        if given < min || given > max {
            let range = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            return Err(FormatError::invalid(format!(
                "{given} inputs (needs {range})"
            )));
        }
        Ok(node.input[..given]
            .iter()
            .map(|i| Some(i.as_str()).filter(|i| !i.is_empty()))
            .collect())
    }

    /// The first input, which must be a computed NCHW tensor.
    fn image(&self, node: &NodeProto) -> Result<Blob> {
        let name = node
            .input
            .first()
            .ok_or_else(|| FormatError::invalid("no input"))?;
        let blob = self.blob(name)?;
        if blob.rank != 4 {
            return Err(FormatError::unsupported(format!(
                "input {name} has rank {} (needs N,C,H,W)",
                blob.rank
            )));
        }
        Ok(blob)
    }

    /// An element-wise single-input op: output like input.
    fn same_shape(&self, node: &NodeProto, op: Op) -> Result<Converted> {
        Attributes::new(&node.attribute, &[])?;
        let [Some(x)] = Self::inputs(node, 1, 1)?[..] else {
            return Err(FormatError::invalid("missing input"));
        };
        Ok((op, vec![x.to_string()], self.blob(x)?))
    }

    fn conv(&mut self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(
            &node.attribute,
            &[
                "kernel_shape",
                "strides",
                "pads",
                "dilations",
                "group",
                "auto_pad",
            ],
        )?;
        let inputs = Self::inputs(node, 2, 3)?;
        let (Some(x), Some(w)) = (inputs[0], inputs[1]) else {
            return Err(FormatError::invalid("missing data or weight input"));
        };
        let bias = inputs.get(2).copied().flatten();
        let input = self.image(node)?;
        let groups = match attrs.int("group")?.unwrap_or(1) {
            g if g >= 1 => usize::try_from(g).unwrap_or(usize::MAX),
            g => return Err(FormatError::invalid(format!("group {g}"))),
        };
        require_unit_dilations(&attrs)?;
        let [stride_h, stride_w] = strides(&attrs)?;
        let weights = self.constant(w)?;
        let [out, in_channels, kh, kw] = match weights.dims[..] {
            [o, i, h, w] => [o, i, h, w].map(|d| usize::try_from(d).unwrap_or(0)),
            _ => {
                return Err(FormatError::invalid(format!(
                    "weights {w} have {} dimensions (needs 4)",
                    weights.dims.len()
                )))
            }
        };
        if !out.is_multiple_of(groups) {
            return Err(FormatError::invalid(format!(
                "{out} output channels do not split into {groups} groups"
            )));
        }
        let expected = in_channels.saturating_mul(groups);
        if let Some(c) = self.blob(x)?.channels.filter(|&c| c != expected) {
            return Err(FormatError::invalid(format!(
                "weights {w} expect {expected} input channels ({groups} groups of {in_channels}) but {x} has {c}"
            )));
        }
        if attrs
            .ints("kernel_shape")?
            .is_some_and(|k| k != [kh as i64, kw as i64])
        {
            return Err(FormatError::invalid(format!(
                "kernel_shape disagrees with weights {w} of shape {:?}",
                weights.dims
            )));
        }
        let [pad_h, pad_w] = padding(&attrs, [kh, kw], [stride_h, stride_w], input.size)?;
        let bias_values = bias
            .map(|b| self.constant(b).and_then(tensor::floats))
            .transpose()?;
        let shape = [out, in_channels, kh, kw];
        let layer = self.layer("Conv", w, bias, |t| {
            Ok(Layer {
                name: String::new(),
                shape,
                weights: tensor::floats(t)?,
                bias: bias_or_zeros(bias_values, out)?,
            })
        })?;
        let conv = Conv {
            layer,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            groups,
            relu: false,
        };
        Ok((
            Op::Conv(conv),
            vec![x.to_string()],
            Blob {
                rank: 4,
                channels: Some(out),
                unit_spatial: false,
                size: output_size(
                    input.size,
                    [kh, kw],
                    [stride_h, stride_w],
                    [pad_h, pad_w],
                    false,
                ),
            },
        ))
    }

    /// `Y = A * B' + C` on a rank-2 A, imported as a 1x1 convolution on the
    /// engine's N x K x 1 x 1 tensor.
    fn gemm(&mut self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(&node.attribute, &["alpha", "beta", "transA", "transB"])?;
        let inputs = Self::inputs(node, 2, 3)?;
        let (Some(a), Some(b)) = (inputs[0], inputs[1]) else {
            return Err(FormatError::invalid("missing A or B input"));
        };
        let c = inputs.get(2).copied().flatten();
        let input = self.blob(a)?;
        if input.rank != 2 {
            return Err(FormatError::unsupported(format!(
                "input {a} has rank {} (Gemm needs the rank-2 output of Flatten)",
                input.rank
            )));
        }
        let alpha = attrs.float("alpha")?.unwrap_or(1.0);
        let beta = attrs.float("beta")?.unwrap_or(1.0);
        if !(alpha.is_finite() && beta.is_finite()) {
            return Err(FormatError::invalid(format!("alpha {alpha}, beta {beta}")));
        }
        if attrs.int("transA")?.is_some_and(|t| t != 0) {
            return Err(FormatError::unsupported("transA (only A untransposed)"));
        }
        let transposed = match attrs.int("transB")?.unwrap_or(0) {
            0 => false,
            1 => true,
            other => return Err(FormatError::invalid(format!("transB {other}"))),
        };
        let weights = self.constant(b)?;
        let [out, features] = match weights.dims[..] {
            [rows, cols] => {
                let (rows, cols) = (
                    usize::try_from(rows).unwrap_or(0),
                    usize::try_from(cols).unwrap_or(0),
                );
                if transposed {
                    [rows, cols]
                } else {
                    [cols, rows]
                }
            }
            _ => {
                return Err(FormatError::invalid(format!(
                    "B {b} has {} dimensions (needs 2)",
                    weights.dims.len()
                )))
            }
        };
        if input.channels.is_some_and(|c| c != features) {
            return Err(FormatError::invalid(format!(
                "B {b} expects {features} features but {a} has {}",
                input.channels.unwrap_or(0)
            )));
        }
        let bias_values = c
            .map(|name| self.constant(name).and_then(tensor::floats))
            .transpose()?
            .map(|values| scaled(values, beta));
        let op_type = if transposed { "Gemm" } else { "Gemm(transB=0)" };
        let layer = self.layer(op_type, b, c, |t| {
            let stored = scaled(tensor::floats(t)?, alpha);
            let weights = if transposed {
                stored
            } else {
                transpose(&stored, features, out)
            };
            Ok(Layer {
                name: String::new(),
                shape: [out, features, 1, 1],
                weights,
                bias: bias_or_zeros(bias_values, out)?,
            })
        })?;
        Ok(fully_connected(layer, a, out))
    }

    /// `Y = A * B` on a rank-2 A and a constant `K x out` B: a fully
    /// connected layer without bias, which a following `Add` of a constant
    /// gives one (see [`Importer::fold_matmul_bias`]).
    fn matmul(&mut self, node: &NodeProto) -> Result<Converted> {
        Attributes::new(&node.attribute, &[])?;
        let [Some(a), Some(b)] = Self::inputs(node, 2, 2)?[..] else {
            return Err(FormatError::invalid("missing A or B input"));
        };
        let input = self.blob(a)?;
        if input.rank != 2 {
            return Err(FormatError::unsupported(format!(
                "input {a} has rank {} (MatMul needs the rank-2 output of Flatten)",
                input.rank
            )));
        }
        let weights = self.constant(b)?;
        let [features, out] = match weights.dims[..] {
            [rows, cols] => [rows, cols].map(|d| usize::try_from(d).unwrap_or(0)),
            _ => {
                return Err(FormatError::unsupported(format!(
                    "B {b} has {} dimensions (only a 2-D constant)",
                    weights.dims.len()
                )))
            }
        };
        if input.channels.is_some_and(|c| c != features) {
            return Err(FormatError::invalid(format!(
                "B {b} expects {features} features but {a} has {}",
                input.channels.unwrap_or(0)
            )));
        }
        let layer = self.layer("MatMul", b, None, |t| {
            Ok(Layer {
                name: String::new(),
                shape: [out, features, 1, 1],
                weights: transpose(&tensor::floats(t)?, features, out),
                bias: vec![0.0; out],
            })
        })?;
        Ok(fully_connected(layer, a, out))
    }

    /// `Add(product, bias)` where `product` is the output of a MatMul read
    /// by nothing else and `bias` a constant of one value per output: the
    /// bias becomes the MatMul layer's, and the layer's node writes the
    /// Add's output. Returns whether the node was folded so.
    pub(super) fn fold_matmul_bias(&mut self, node: &NodeProto) -> Result<bool> {
        let (product, bias) = match node.input.as_slice() {
            [x, y] if self.is_constant(y) => (x, y),
            [x, y] if self.is_constant(x) => (y, x),
            _ => return Ok(false),
        };
        let Some(Op::Conv(conv)) = self.producer(product) else {
            return Ok(false);
        };
        let slot = conv.layer;
        let from_matmul = self.layers[slot]
            .as_ref()
            .is_some_and(|s| s.op_type == "MatMul" && s.bias.is_none());
        let private = self.readers.get(product.as_str()) == Some(&1)
            && self.readers.get(self.slot_name(slot)) == Some(&1);
        if !(from_matmul && private) {
            return Ok(false);
        }
        Attributes::new(&node.attribute, &[])?;
        let values = tensor::floats(self.constant(bias)?)?;
        let Some(output) = node.output.first().filter(|o| !o.is_empty()) else {
            return Err(FormatError::invalid("node without an output"));
        };
        let Some(slot_entry) = self.layers[slot].as_mut() else {
            unreachable!("a MatMul's layer is built");
        };
        let out = slot_entry.layer.shape[0];
        slot_entry.layer.bias = bias_or_zeros(Some(values), out)?;
        slot_entry.bias = Some(bias.clone());
        self.rename_output(product, output);
        Ok(true)
    }

    /// Inference-mode batch normalization: a per-channel affine map, held
    /// as a depthwise 1x1 convolution and folded into the convolution
    /// before it when possible (see `crate::fold`).
    fn batch_norm(&mut self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(
            &node.attribute,
            &["epsilon", "momentum", "spatial", "training_mode"],
        )?;
        if attrs.int("spatial")?.is_some_and(|s| s != 1) {
            return Err(FormatError::unsupported(
                "spatial 0 (per-position statistics)",
            ));
        }
        if attrs.int("training_mode")?.is_some_and(|t| t != 0) {
            return Err(FormatError::unsupported("training_mode 1"));
        }
        let eps = attrs.float("epsilon")?.unwrap_or(1e-5);
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(FormatError::invalid(format!("epsilon {eps}")));
        }
        let [Some(x), Some(scale), Some(bias), Some(mean), Some(variance)] =
            Self::inputs(node, 5, 5)?[..]
        else {
            return Err(FormatError::invalid("missing input"));
        };
        let blob = self.blob(x)?;
        let [beta, mean, variance] =
            [bias, mean, variance].map(|name| self.constant(name).and_then(tensor::floats));
        let (beta, mean, variance) = (beta?, mean?, variance?);
        let layer = self.layer("BatchNormalization", scale, Some(bias), |t| {
            let gamma = tensor::floats(t)?;
            let (scale, shift) = fold::batch_norm_affine(&gamma, &beta, &mean, &variance, eps)?;
            Ok(fold::affine_layer("", scale, shift))
        })?;
        self.batch_norms.insert(layer);
        let channels = self.built_layer(layer).shape[0];
        if blob.channels.is_some_and(|c| c != channels) {
            return Err(FormatError::invalid(format!(
                "{channels} channels of statistics for an input of {}",
                blob.channels.unwrap_or(0)
            )));
        }
        Ok((
            fold::affine_op(layer, channels),
            vec![x.to_string()],
            Blob {
                channels: Some(channels),
                ..blob
            },
        ))
    }

    /// Local response normalisation across channels.
    fn lrn(&self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(&node.attribute, &["size", "alpha", "beta", "bias"])?;
        let [Some(x)] = Self::inputs(node, 1, 1)?[..] else {
            return Err(FormatError::invalid("missing input"));
        };
        let blob = self.image(node)?;
        let size = match attrs.int("size")? {
            Some(s) if s >= 1 => usize::try_from(s).unwrap_or(usize::MAX),
            other => return Err(FormatError::invalid(format!("size {other:?}"))),
        };
        let lrn = Lrn {
            size,
            alpha: attrs.float("alpha")?.unwrap_or(1e-4),
            beta: attrs.float("beta")?.unwrap_or(0.75),
            bias: attrs.float("bias")?.unwrap_or(1.0),
        };
        Ok((Op::Lrn(lrn), vec![x.to_string()], blob))
    }

    /// Element-wise clamp: bounds as attributes before opset 11, as
    /// optional constant scalar inputs from opset 11 on.
    fn clip(&self, node: &NodeProto) -> Result<Converted> {
        let (x, min, max) = if self.opset < 11 {
            let attrs = Attributes::new(&node.attribute, &["min", "max"])?;
            let [Some(x)] = Self::inputs(node, 1, 1)?[..] else {
                return Err(FormatError::invalid("missing input"));
            };
            (x, attrs.float("min")?, attrs.float("max")?)
        } else {
            Attributes::new(&node.attribute, &[])?;
            let inputs = Self::inputs(node, 1, 3)?;
            let x = inputs[0].ok_or_else(|| FormatError::invalid("missing input"))?;
            let bound = |i: usize| -> Result<Option<f32>> {
                let Some(Some(name)) = inputs.get(i) else {
                    return Ok(None);
                };
                match tensor::floats(self.constant(name)?)?[..] {
                    [v] => Ok(Some(v)),
                    _ => Err(FormatError::unsupported(format!(
                        "bound {name} is not a scalar"
                    ))),
                }
            };
            (x, bound(1)?, bound(2)?)
        };
        let clip = Clip {
            min: min.unwrap_or(f32::NEG_INFINITY),
            max: max.unwrap_or(f32::INFINITY),
        };
        if clip.min.is_nan() || clip.max.is_nan() || clip.min > clip.max {
            return Err(FormatError::invalid(format!(
                "bounds [{}, {}] are not an interval",
                clip.min, clip.max
            )));
        }
        Ok((Op::Clip(clip), vec![x.to_string()], self.blob(x)?))
    }

    fn pool(&self, node: &NodeProto, kind: PoolKind) -> Result<Converted> {
        let known: &[&str] = match kind {
            PoolKind::Max => &[
                "kernel_shape",
                "strides",
                "pads",
                "ceil_mode",
                "auto_pad",
                "dilations",
                "storage_order",
            ],
            PoolKind::Avg => &[
                "kernel_shape",
                "strides",
                "pads",
                "ceil_mode",
                "auto_pad",
                "dilations",
                "count_include_pad",
            ],
        };
        let attrs = Attributes::new(&node.attribute, known)?;
        let [Some(x)] = Self::inputs(node, 1, 1)?[..] else {
            return Err(FormatError::invalid("missing input"));
        };
        let blob = self.image(node)?;
        require_unit_dilations(&attrs)?;
        let [kernel_h, kernel_w] = match attrs.pair("kernel_shape", [0, 0])? {
            [0, _] | [_, 0] => return Err(FormatError::invalid("kernel_shape missing or zero")),
            k => k,
        };
        let [stride_h, stride_w] = strides(&attrs)?;
        let [pad_h, pad_w] = padding(
            &attrs,
            [kernel_h, kernel_w],
            [stride_h, stride_w],
            blob.size,
        )?;
        let ceil_mode = match attrs.int("ceil_mode")?.unwrap_or(0) {
            0 => false,
            1 => true,
            other => return Err(FormatError::invalid(format!("ceil_mode {other}"))),
        };
        // Without padding both divisors are the same; the model then says
        // "include", which every file version can store.
        let count_include_pad = match attrs.int("count_include_pad")?.unwrap_or(0) {
            0 => (pad_h, pad_w) == (0, 0),
            1 => true,
            other => return Err(FormatError::invalid(format!("count_include_pad {other}"))),
        };
        let pool = Pool {
            kind,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            ceil_mode,
            count_include_pad,
        };
        let unit_spatial =
            blob.unit_spatial && kernel_h == 1 && kernel_w == 1 && (pad_h, pad_w) == (0, 0);
        Ok((
            Op::Pool(pool),
            vec![x.to_string()],
            Blob {
                unit_spatial,
                size: output_size(
                    blob.size,
                    [kernel_h, kernel_w],
                    [stride_h, stride_w],
                    [pad_h, pad_w],
                    ceil_mode,
                ),
                ..blob
            },
        ))
    }

    fn concat(&self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(&node.attribute, &["axis"])?;
        let names: Vec<&String> = node.input.iter().filter(|i| !i.is_empty()).collect();
        let blobs = names
            .iter()
            .map(|n| self.blob(n))
            .collect::<Result<Vec<_>>>()?;
        let first = *blobs
            .first()
            .ok_or_else(|| FormatError::invalid("no inputs"))?;
        if blobs.iter().any(|b| b.rank != first.rank) {
            return Err(FormatError::invalid("inputs of different ranks"));
        }
        let axis = attrs
            .int("axis")?
            .ok_or_else(|| FormatError::invalid("no axis"))?;
        require_channel_axis(axis, first.rank, "concat")?;
        let channels = blobs.iter().map(|b| b.channels).sum::<Option<usize>>();
        let blob = Blob {
            rank: first.rank,
            channels,
            unit_spatial: blobs.iter().all(|b| b.unit_spatial),
            size: first.size,
        };
        Ok((Op::Concat, names.into_iter().cloned().collect(), blob))
    }

    /// Dropout is the identity at inference, unless the file asks for
    /// training mode.
    fn dropout(&self, node: &NodeProto) -> Result<Converted> {
        Attributes::new(&node.attribute, &["ratio", "seed"])?;
        let inputs = Self::inputs(node, 1, 3)?;
        let x = inputs[0].ok_or_else(|| FormatError::invalid("missing input"))?;
        if let Some(Some(mode)) = inputs.get(2) {
            if tensor::bool_scalar(self.constant(mode)?)? {
                return Err(FormatError::unsupported("Dropout in training mode"));
            }
        }
        Ok((Op::Dropout, vec![x.to_string()], self.blob(x)?))
    }

    fn flatten(&self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(&node.attribute, &["axis"])?;
        let [Some(x)] = Self::inputs(node, 1, 1)?[..] else {
            return Err(FormatError::invalid("missing input"));
        };
        let blob = self.blob(x)?;
        require_channel_axis(attrs.int("axis")?.unwrap_or(1), blob.rank, "flatten")?;
        let channels = blob.channels.filter(|_| blob.unit_spatial);
        Ok((
            Op::Flatten,
            vec![x.to_string()],
            Blob {
                rank: 2,
                channels,
                unit_spatial: true,
                size: Some([1, 1]),
            },
        ))
    }

    /// A Reshape that flattens each image: to `[N, C*H*W]` or
    /// `[N, C*H*W, 1, 1]`.
    fn reshape(&self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(&node.attribute, &["allowzero"])?;
        let [Some(x), Some(shape)] = Self::inputs(node, 2, 2)?[..] else {
            return Err(FormatError::invalid("missing data or shape input"));
        };
        let blob = self.blob(x)?;
        let target = tensor::int64s(self.constant(shape)?)?;
        let allow_zero = attrs.int("allowzero")?.unwrap_or(0) != 0;
        // Features per image, when the importer knows them.
        let features = blob
            .channels
            .filter(|_| blob.unit_spatial)
            .map(|c| c as i64);
        let flattening = match target[..] {
            [batch, f] | [batch, f, 1, 1] => {
                let batch_ok = (batch == 0 && !allow_zero)
                    || batch > 0
                    || (batch == -1 && f > 0 && Some(f) == features);
                let features_ok = f == -1
                    || (f > 0 && features.is_none_or(|known| known == f))
                    || (f == 0 && !allow_zero && blob.unit_spatial);
                batch_ok && features_ok && !(batch == -1 && f == -1)
            }
            _ => false,
        };
        if !flattening {
            return Err(FormatError::unsupported(format!(
                "Reshape to {target:?} (only flattening to N x C or N x C x 1 x 1)"
            )));
        }
        let channels = match target[1] {
            f if f > 0 => Some(f as usize),
            _ => features.map(|f| f as usize),
        };
        Ok((
            Op::Flatten,
            vec![x.to_string()],
            Blob {
                rank: target.len(),
                channels,
                unit_spatial: true,
                size: Some([1, 1]),
            },
        ))
    }

    /// Softmax over channels. Before opset 13 ONNX's Softmax flattens
    /// everything from `axis` on, which is per-channel only on 1x1 maps.
    fn softmax(&self, node: &NodeProto) -> Result<Converted> {
        let attrs = Attributes::new(&node.attribute, &["axis"])?;
        let [Some(x)] = Self::inputs(node, 1, 1)?[..] else {
            return Err(FormatError::invalid("missing input"));
        };
        let blob = self.blob(x)?;
        let modern = self.opset >= 13;
        let axis = attrs.int("axis")?.unwrap_or(if modern { -1 } else { 1 });
        require_channel_axis(axis, blob.rank, "softmax")?;
        if !modern && !blob.unit_spatial {
            return Err(FormatError::unsupported(
                "Softmax before opset 13 over a map not known to be 1x1",
            ));
        }
        Ok((Op::Softmax, vec![x.to_string()], blob))
    }

    /// `Add` (two inputs) or `Sum` (any number), without broadcasting.
    fn add(&self, node: &NodeProto) -> Result<Converted> {
        Attributes::new(&node.attribute, &[])?;
        let names: Vec<&String> = node.input.iter().filter(|i| !i.is_empty()).collect();
        if node.op_type == "Add" && names.len() != 2 {
            return Err(FormatError::invalid(format!(
                "{} inputs (needs 2)",
                names.len()
            )));
        }
        let blobs = names
            .iter()
            .map(|n| self.blob(n))
            .collect::<Result<Vec<_>>>()?;
        let first = *blobs
            .first()
            .ok_or_else(|| FormatError::invalid("no inputs"))?;
        let same_channels = blobs.iter().all(|b| {
            b.channels.is_none() || first.channels.is_none() || b.channels == first.channels
        });
        if blobs.iter().any(|b| b.rank != first.rank) || !same_channels {
            return Err(FormatError::unsupported(
                "broadcasting (inputs must have the same shape)",
            ));
        }
        Ok((Op::Add, names.into_iter().cloned().collect(), first))
    }
}

/// Reject dilations other than 1.
fn require_unit_dilations(attrs: &Attributes) -> Result<()> {
    if let Some(d) = attrs
        .ints("dilations")?
        .filter(|d| d.iter().any(|&v| v != 1))
    {
        return Err(FormatError::unsupported(format!(
            "dilations {d:?} (only 1)"
        )));
    }
    Ok(())
}

/// `strides`, default 1, never 0.
fn strides(attrs: &Attributes) -> Result<[usize; 2]> {
    let s = attrs.pair("strides", [1, 1])?;
    if s.contains(&0) {
        return Err(FormatError::invalid("zero stride"));
    }
    Ok(s)
}

/// Symmetric `[pad_h, pad_w]` from `pads` or `auto_pad`. `SAME_*` pads
/// so that the output is `ceil(input / stride)`, as ONNX specifies: a total
/// of `max((output - 1) * stride + kernel - input, 0)` per axis, which
/// depends on the input's size `input` unless the stride is 1 and the
/// kernel odd. An odd total is split unevenly (the extra row after the
/// input for `SAME_UPPER`, before it for `SAME_LOWER`), which the model's
/// symmetric padding cannot express; so is an unknown input size.
fn padding(
    attrs: &Attributes,
    kernel: [usize; 2],
    strides: [usize; 2],
    input: Option<[usize; 2]>,
) -> Result<[usize; 2]> {
    let pads = attrs.ints("pads")?;
    match attrs.string("auto_pad")?.unwrap_or("NOTSET") {
        "NOTSET" => match pads {
            None => Ok([0, 0]),
            Some(&[top, left, bottom, right]) if top == bottom && left == right => {
                match (usize::try_from(top), usize::try_from(left)) {
                    (Ok(h), Ok(w)) => Ok([h, w]),
                    _ => Err(FormatError::invalid(format!(
                        "negative pads {:?}",
                        [top, left, bottom, right]
                    ))),
                }
            }
            Some(p @ &[_, _, _, _]) => {
                Err(FormatError::unsupported(format!("asymmetric pads {p:?}")))
            }
            Some(p) => Err(FormatError::unsupported(format!(
                "{} pads (only 2-D)",
                p.len()
            ))),
        },
        _ if pads.is_some() => Err(FormatError::invalid("both pads and auto_pad")),
        "VALID" => Ok([0, 0]),
        "SAME_UPPER" | "SAME_LOWER" if strides == [1, 1] && kernel.iter().all(|k| k % 2 == 1) => {
            Ok(kernel.map(|k| (k - 1) / 2))
        }
        same @ ("SAME_UPPER" | "SAME_LOWER") => {
            let Some(size) = input else {
                return Err(FormatError::unsupported(format!(
                    "auto_pad {same} with a stride or even kernel on an input of unknown size (its padding depends on the size; give the model a fixed input size)"
                )));
            };
            let total = |axis: usize| {
                let out = size[axis].div_ceil(strides[axis]);
                ((out.max(1) - 1) * strides[axis] + kernel[axis]).saturating_sub(size[axis])
            };
            let totals = [total(0), total(1)];
            if totals.iter().any(|t| t % 2 == 1) {
                return Err(FormatError::unsupported(format!(
                    "auto_pad {same} on a {}x{} input needs padding {totals:?} in total (height, width), split unevenly; sqz pads symmetrically",
                    size[0], size[1]
                )));
            }
            Ok(totals.map(|t| t / 2))
        }
        other => Err(FormatError::unsupported(format!("auto_pad {other}"))),
    }
}

/// Output height and width of a window op (convolution, pool) on an input
/// of `input` size, when known; `None` if the window does not fit. Pools
/// with `ceil_mode` round up but drop a last window that would start in the
/// padding, as the engine does.
fn output_size(
    input: Option<[usize; 2]>,
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 2],
    ceil_mode: bool,
) -> Option<[usize; 2]> {
    let input = input?;
    let axis = |i: usize| {
        let span = (input[i] + 2 * pads[i]).checked_sub(kernel[i])?;
        if !ceil_mode {
            return Some(span / strides[i] + 1);
        }
        let out = span.div_ceil(strides[i]) + 1;
        let last_start = (out - 1) * strides[i];
        Some(if last_start >= input[i] + pads[i] {
            out - 1
        } else {
            out
        })
    };
    Some([axis(0)?, axis(1)?])
}

/// Require `axis` (possibly negative, counted from the end) to be the
/// channel axis 1 of a tensor of `rank`.
fn require_channel_axis(axis: i64, rank: usize, what: &str) -> Result<()> {
    let normalized = if axis < 0 { axis + rank as i64 } else { axis };
    if normalized != 1 {
        return Err(FormatError::unsupported(format!(
            "{what} axis {axis} on a rank-{rank} tensor (only the channel axis)"
        )));
    }
    Ok(())
}

/// The node of a fully connected layer `layer` with `out` outputs on the
/// rank-2 blob `input`: a 1x1 convolution on the engine's N x K x 1 x 1
/// tensor.
fn fully_connected(layer: usize, input: &str, out: usize) -> Converted {
    (
        Op::Conv(Conv::unit(layer, 1)),
        vec![input.to_string()],
        Blob {
            rank: 2,
            channels: Some(out),
            unit_spatial: true,
            size: Some([1, 1]),
        },
    )
}

/// `values` times `factor` (unchanged, bit for bit, when it is 1).
fn scaled(mut values: Vec<f32>, factor: f32) -> Vec<f32> {
    if factor != 1.0 {
        values.iter_mut().for_each(|v| *v *= factor);
    }
    values
}

/// `out` biases from an optional constant, zeros without one.
fn bias_or_zeros(values: Option<Vec<f32>>, out: usize) -> Result<Vec<f32>> {
    match values {
        None => Ok(vec![0.0; out]),
        Some(v) if v.len() == out => Ok(v),
        Some(v) => Err(FormatError::invalid(format!(
            "{} biases for {out} outputs",
            v.len()
        ))),
    }
}

/// `rows x cols` row-major -> `cols x rows` row-major.
fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| values[r * cols + c]))
        .collect()
}
