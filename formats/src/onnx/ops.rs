//! Conversion of each supported ONNX operator into an engine [`Op`], with
//! the checks that make the two compute the same thing.

use super::attributes::Attributes;
use super::proto::NodeProto;
use super::read::{Blob, Importer};
use super::tensor;
use crate::{Conv, FormatError, Layer, Op, Pool, PoolKind, Result};

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
        self.image(node)?;
        if let Some(group) = attrs.int("group")?.filter(|&g| g != 1) {
            return Err(FormatError::unsupported(format!("group {group} (only 1)")));
        }
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
        if let Some(c) = self.blob(x)?.channels.filter(|&c| c != in_channels) {
            return Err(FormatError::invalid(format!(
                "weights {w} expect {in_channels} input channels but {x} has {c}"
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
        let [pad_h, pad_w] = padding(&attrs, [kh, kw], [stride_h, stride_w])?;
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
            groups: 1,
            relu: false,
        };
        Ok((
            Op::Conv(conv),
            vec![x.to_string()],
            Blob {
                rank: 4,
                channels: Some(out),
                unit_spatial: false,
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
        for (name, value) in [
            ("alpha", attrs.float("alpha")?),
            ("beta", attrs.float("beta")?.filter(|_| c.is_some())),
        ] {
            if let Some(v) = value.filter(|&v| v != 1.0) {
                return Err(FormatError::unsupported(format!("{name} {v} (only 1)")));
            }
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
            .transpose()?;
        let op_type = if transposed { "Gemm" } else { "Gemm(transB=0)" };
        let layer = self.layer(op_type, b, c, |t| {
            let stored = tensor::floats(t)?;
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
        let conv = Conv {
            layer,
            stride_h: 1,
            stride_w: 1,
            pad_h: 0,
            pad_w: 0,
            groups: 1,
            relu: false,
        };
        Ok((
            Op::Conv(conv),
            vec![a.to_string()],
            Blob {
                rank: 2,
                channels: Some(out),
                unit_spatial: true,
            },
        ))
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
        let [pad_h, pad_w] = padding(&attrs, [kernel_h, kernel_w], [stride_h, stride_w])?;
        let ceil_mode = match attrs.int("ceil_mode")?.unwrap_or(0) {
            0 => false,
            1 => true,
            other => return Err(FormatError::invalid(format!("ceil_mode {other}"))),
        };
        // The engine divides by the window clipped to the padded input, which
        // is ONNX's count_include_pad=1; with count_include_pad=0 (the
        // default) the two agree only without padding.
        if kind == PoolKind::Avg
            && (pad_h, pad_w) != (0, 0)
            && attrs.int("count_include_pad")?.unwrap_or(0) != 1
        {
            return Err(FormatError::unsupported(
                "AveragePool over padding with count_include_pad=0 (the engine counts padding, like Caffe)",
            ));
        }
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
        let unit_spatial =
            blob.unit_spatial && kernel_h == 1 && kernel_w == 1 && (pad_h, pad_w) == (0, 0);
        Ok((
            Op::Pool(pool),
            vec![x.to_string()],
            Blob {
                unit_spatial,
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

/// Symmetric `[pad_h, pad_w]` from `pads` or `auto_pad`. `SAME_*` is
/// accepted where it does not depend on the input size: stride 1 and an odd
/// kernel, which pad `(k - 1) / 2` on both sides.
fn padding(attrs: &Attributes, kernel: [usize; 2], strides: [usize; 2]) -> Result<[usize; 2]> {
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
        same @ ("SAME_UPPER" | "SAME_LOWER") => Err(FormatError::unsupported(format!(
            "auto_pad {same} with a stride or even kernel (padding would depend on the input size)"
        ))),
        other => Err(FormatError::unsupported(format!("auto_pad {other}"))),
    }
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
