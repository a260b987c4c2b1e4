//! Reader for ncnn models: a text `.param` graph plus a binary `.bin`.
//!
//! `.param`: line 1 is the magic `7767517`, line 2 `layer_count blob_count`,
//! then one line per layer, `type name n_in n_out inputs… outputs… key=value…`
//! (keys `-23300 - id` carry arrays written `count,v1,v2,…`). `.bin` holds,
//! for every Convolution in order, a 4-byte tag (`0x01306B47` float16,
//! `0x00000000` float32), the weights (padded to 4 bytes), then float32
//! biases when `bias_term` is set.
//!
//! `Split` layers are resolved into blob aliases rather than nodes. Fused
//! activations other than ReLU, dilation, asymmetric padding, grouped
//! convolution and quantized weights are rejected as unsupported rather
//! than approximated. The graph's output is the network's final blob, or the
//! input of a final Softmax (see [`Graph::logits_blob`]).

use crate::byte_cursor::ByteCursor;
use crate::{Conv, FormatError, Graph, Layer, Model, Node, Op, Pool, PoolKind, Preprocess, Result};
use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;

/// First line of every ncnn `.param` text file.
pub const PARAM_MAGIC: &str = "7767517";
/// `.bin` tag announcing float16 weights.
const TAG_FP16: u32 = 0x0130_6B47;
/// `.bin` tag announcing float32 weights.
const TAG_FP32: u32 = 0;
/// ncnn's marker for "parameter not given" in Reshape dimensions.
const UNSET: i64 = -233;

/// Read `X.param` and the `X.bin` beside it (`foo.ncnn.param` pairs with
/// `foo.ncnn.bin`: the last extension is replaced).
pub fn read_ncnn(param_path: &Path) -> Result<Model> {
    if param_path.extension().is_some_and(|e| e == "bin") {
        return Err(FormatError::invalid(format!(
            "{}: open an ncnn model through its .param file, not the .bin",
            param_path.display()
        )));
    }
    let bin_path = param_path.with_extension("bin");
    let text = std::fs::read_to_string(param_path).map_err(|e| FormatError::io(param_path, e))?;
    let bin = std::fs::read(&bin_path).map_err(|e| FormatError::io(&bin_path, e))?;
    parse_ncnn(&text, &bin)
}

/// Build a [`Model`] from the `.param` text and the `.bin` bytes. The bytes
/// must be used up exactly: leftovers mean the two files do not belong
/// together.
pub fn parse_ncnn(param_text: &str, bin: &[u8]) -> Result<Model> {
    let mut lines = param_text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    match lines.next() {
        Some((_, l)) if l.trim() == PARAM_MAGIC => {}
        Some((_, l)) => {
            return Err(FormatError::invalid(format!(
                "not an ncnn .param file: first line is {:?}, expected {PARAM_MAGIC}",
                l.trim()
            )))
        }
        None => return Err(FormatError::truncated("empty ncnn .param file")),
    }
    let (layer_count, blob_count) = match lines.next() {
        Some((n, l)) => parse_counts(n, l)?,
        None => {
            return Err(FormatError::truncated(
                "ncnn .param ends before its layer and blob counts",
            ))
        }
    };
    let mut builder = Builder::new(bin);
    let mut seen_layers = 0usize;
    for (number, line) in lines {
        seen_layers += 1;
        let layer = LayerLine::parse(line).map_err(|e| at_line(number, None, e))?;
        builder
            .add(&layer)
            .map_err(|e| at_line(number, Some(layer.name), e))?;
    }
    if seen_layers != layer_count {
        return Err(FormatError::invalid(format!(
            "ncnn .param announces {layer_count} layers but has {seen_layers}"
        )));
    }
    builder.finish(blob_count)
}

fn parse_counts(number: usize, line: &str) -> Result<(usize, usize)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    match fields.as_slice() {
        [layers, blobs] => match (layers.parse(), blobs.parse()) {
            (Ok(l), Ok(b)) => Ok((l, b)),
            _ => Err(FormatError::invalid(format!(
                "ncnn .param line {number}: layer and blob counts must be numbers: {line:?}"
            ))),
        },
        _ => Err(FormatError::invalid(format!(
            "ncnn .param line {number}: expected `layer_count blob_count`, found {line:?}"
        ))),
    }
}

/// Prefix an error with the `.param` line (and layer) it comes from.
fn at_line(number: usize, layer: Option<&str>, e: FormatError) -> FormatError {
    let place = match layer {
        Some(name) => format!("ncnn .param line {number} (layer {name})"),
        None => format!("ncnn .param line {number}"),
    };
    match e {
        FormatError::Invalid(m) => FormatError::invalid(format!("{place}: {m}")),
        FormatError::Unsupported(m) => FormatError::unsupported(format!("{place}: {m}")),
        FormatError::Truncated(m) => FormatError::truncated(format!("{place}: {m}")),
        other => other,
    }
}

/// One `.param` layer line, split into its parts.
struct LayerLine<'a> {
    kind: &'a str,
    name: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    params: ParamDict,
}

impl<'a> LayerLine<'a> {
    fn parse(line: &'a str) -> Result<Self> {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let [kind, name, n_in, n_out, rest @ ..] = tokens.as_slice() else {
            return Err(FormatError::invalid(format!(
                "expected `type name n_in n_out ...`, found {line:?}"
            )));
        };
        let count = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| FormatError::invalid(format!("blob count {s:?} is not a number")))
        };
        let (n_in, n_out) = (count(n_in)?, count(n_out)?);
        let blobs = n_in
            .checked_add(n_out)
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| {
                FormatError::invalid(format!(
                    "announces {n_in} inputs and {n_out} outputs but lists only {} more fields",
                    rest.len()
                ))
            })?;
        Ok(LayerLine {
            kind,
            name,
            inputs: rest[..n_in].to_vec(),
            outputs: rest[n_in..blobs].to_vec(),
            params: ParamDict::parse(&rest[blobs..])?,
        })
    }

    fn expect_arity(&self, inputs: usize, outputs: usize) -> Result<()> {
        if self.inputs.len() != inputs || self.outputs.len() != outputs {
            return Err(FormatError::invalid(format!(
                "{} takes {inputs} input(s) and {outputs} output(s), found {} and {}",
                self.kind,
                self.inputs.len(),
                self.outputs.len()
            )));
        }
        Ok(())
    }
}

/// A parameter value as written: one scalar or an array.
#[derive(Debug)]
enum Param {
    Scalar(String),
    Array(Vec<String>),
}

/// The `key=value` parameters of one layer.
#[derive(Debug, Default)]
struct ParamDict {
    values: HashMap<i64, Param>,
}

impl ParamDict {
    fn parse(tokens: &[&str]) -> Result<Self> {
        let mut dict = ParamDict::default();
        for token in tokens {
            let (key, value) = token.split_once('=').ok_or_else(|| {
                FormatError::invalid(format!("parameter {token:?} is not key=value"))
            })?;
            let key: i64 = key.parse().map_err(|_| {
                FormatError::invalid(format!("parameter key {key:?} is not a number"))
            })?;
            let (id, param) = if key <= -23300 {
                let mut items = value.split(',');
                let announced = items.next().and_then(|n| n.parse::<usize>().ok());
                let items: Vec<String> = items.map(str::to_string).collect();
                if announced != Some(items.len()) {
                    return Err(FormatError::invalid(format!(
                        "array parameter {token:?} announces a length it does not have"
                    )));
                }
                (-23300 - key, Param::Array(items))
            } else {
                (key, Param::Scalar(value.to_string()))
            };
            if dict.values.insert(id, param).is_some() {
                return Err(FormatError::invalid(format!(
                    "parameter {id} is given twice"
                )));
            }
        }
        Ok(dict)
    }

    /// Reject parameters this reader does not interpret, so a feature it
    /// does not know is never silently ignored.
    fn only(&self, kind: &str, known: &[i64]) -> Result<()> {
        let mut unknown: Vec<i64> = self
            .values
            .keys()
            .copied()
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        match unknown.first() {
            Some(k) => Err(FormatError::unsupported(format!(
                "{kind} parameter {k} is not supported"
            ))),
            None => Ok(()),
        }
    }

    fn scalar(&self, id: i64) -> Result<Option<&str>> {
        match self.values.get(&id) {
            None => Ok(None),
            Some(Param::Scalar(s)) => Ok(Some(s)),
            Some(Param::Array(_)) => Err(FormatError::invalid(format!(
                "parameter {id} must be a single value, found an array"
            ))),
        }
    }

    fn int(&self, id: i64, default: i64) -> Result<i64> {
        match self.scalar(id)? {
            None => Ok(default),
            Some(s) => s.parse().map_err(|_| {
                FormatError::invalid(format!("parameter {id}={s} must be an integer"))
            }),
        }
    }

    /// A size-like parameter: a non-negative integer.
    fn size(&self, id: i64, default: usize) -> Result<usize> {
        let value = self.int(id, default as i64)?;
        usize::try_from(value).map_err(|_| {
            FormatError::unsupported(format!(
                "parameter {id}={value} (negative values are not supported)"
            ))
        })
    }

    fn float(&self, id: i64, default: f32) -> Result<f32> {
        match self.scalar(id)? {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|_| FormatError::invalid(format!("parameter {id}={s} must be a number"))),
        }
    }

    fn array(&self, id: i64) -> Option<&[String]> {
        match self.values.get(&id) {
            Some(Param::Array(items)) => Some(items),
            _ => None,
        }
    }
}

/// Require `value == expected` for a parameter sqz only supports at one value.
fn require<T: PartialEq + Display>(value: T, expected: T, what: &str) -> Result<()> {
    if value != expected {
        return Err(FormatError::unsupported(format!(
            "{what} {value} (only {expected} is supported)"
        )));
    }
    Ok(())
}

/// Equal leading and trailing padding, the only kind the engine implements.
fn symmetric(before: usize, after: usize, what: &str) -> Result<usize> {
    if before != after {
        return Err(FormatError::unsupported(format!(
            "asymmetric {what} padding {before}/{after}"
        )));
    }
    Ok(before)
}

/// Accumulates the graph and weights layer by layer.
struct Builder<'b> {
    bin: ByteCursor<'b>,
    nodes: Vec<Node>,
    layers: Vec<Layer>,
    input: Option<String>,
    crop: Option<u32>,
    /// Output blob of each `Split` → the blob it copies.
    aliases: HashMap<String, String>,
    /// Every blob name produced so far (including aliases).
    produced: std::collections::HashSet<String>,
}

impl<'b> Builder<'b> {
    fn new(bin: &'b [u8]) -> Self {
        Builder {
            bin: ByteCursor::new(bin, "ncnn .bin"),
            nodes: Vec::new(),
            layers: Vec::new(),
            input: None,
            crop: None,
            aliases: HashMap::new(),
            produced: Default::default(),
        }
    }

    fn add(&mut self, layer: &LayerLine) -> Result<()> {
        let op = match layer.kind {
            "Input" => return self.input(layer),
            "Split" => return self.split(layer),
            "Convolution" => self.convolution(layer)?,
            "Pooling" => pooling(&layer.params)?,
            "ReLU" => {
                layer.params.only("ReLU", &[0])?;
                require(layer.params.float(0, 0.0)?, 0.0, "ReLU negative slope")?;
                Op::Relu
            }
            "Concat" => {
                layer.params.only("Concat", &[0])?;
                require(layer.params.int(0, 0)?, 0, "Concat axis")?;
                Op::Concat
            }
            "Eltwise" => eltwise(&layer.params)?,
            "Dropout" => {
                layer.params.only("Dropout", &[0])?;
                require(layer.params.float(0, 1.0)?, 1.0, "Dropout scale")?;
                Op::Dropout
            }
            "Softmax" => {
                // 1 = fixbug0, a flag for an old ncnn bug that does not change results.
                layer.params.only("Softmax", &[0, 1])?;
                require(layer.params.int(0, 0)?, 0, "Softmax axis")?;
                Op::Softmax
            }
            "Flatten" => {
                layer.params.only("Flatten", &[])?;
                Op::Flatten
            }
            "Reshape" => reshape(&layer.params)?,
            other => return Err(FormatError::unsupported(format!("ncnn layer type {other}"))),
        };
        let multi_input = matches!(op, Op::Concat | Op::Add);
        if !multi_input {
            layer.expect_arity(1, 1)?;
        } else if layer.outputs.len() != 1 || layer.inputs.is_empty() {
            return Err(FormatError::invalid(format!(
                "{} needs inputs and exactly one output",
                layer.kind
            )));
        }
        let inputs = layer
            .inputs
            .iter()
            .map(|b| self.resolve(b))
            .collect::<Result<Vec<_>>>()?;
        let output = self.produce(layer.outputs[0])?;
        self.nodes.push(Node {
            name: layer.name.to_string(),
            op,
            inputs,
            outputs: vec![output],
        });
        Ok(())
    }

    fn input(&mut self, layer: &LayerLine) -> Result<()> {
        layer.expect_arity(0, 1)?;
        layer.params.only("Input", &[0, 1, 2])?;
        if self.input.is_some() {
            return Err(FormatError::unsupported(
                "a second Input layer (sqz models have one input)",
            ));
        }
        let (w, h, c) = (
            layer.params.int(0, 0)?,
            layer.params.int(1, 0)?,
            layer.params.int(2, 3)?,
        );
        require(c, 3, "input channel count")?;
        if w != h {
            return Err(FormatError::unsupported(format!(
                "non-square input {w}x{h}"
            )));
        }
        if w > 0 {
            self.crop = Some(
                u32::try_from(w).map_err(|_| FormatError::invalid(format!("input size {w}")))?,
            );
        }
        self.input = Some(self.produce(layer.outputs[0])?);
        Ok(())
    }

    fn split(&mut self, layer: &LayerLine) -> Result<()> {
        layer.params.only("Split", &[])?;
        let [source] = layer.inputs.as_slice() else {
            return Err(FormatError::invalid("Split takes exactly one input"));
        };
        let source = self.resolve(source)?;
        for out in &layer.outputs {
            self.produce(out)?;
            self.aliases.insert(out.to_string(), source.clone());
        }
        Ok(())
    }

    fn convolution(&mut self, layer: &LayerLine) -> Result<Op> {
        let p = &layer.params;
        p.only(
            "Convolution",
            &[
                0, 1, 11, 2, 12, 3, 13, 4, 14, 15, 16, 18, 5, 6, 8, 9, 10, 19,
            ],
        )?;
        let out = p.size(0, 0)?;
        let kernel_w = p.size(1, 0)?;
        let kernel_h = p.size(11, kernel_w)?;
        require(p.int(2, 1)?, 1, "dilation")?;
        require(p.int(12, 1)?, 1, "dilation")?;
        let stride_w = p.size(3, 1)?;
        let stride_h = p.size(13, stride_w)?;
        let pad_left = p.size(4, 0)?;
        let pad_w = symmetric(pad_left, p.size(15, pad_left)?, "horizontal")?;
        let pad_top = p.size(14, pad_left)?;
        let pad_h = symmetric(pad_top, p.size(16, pad_top)?, "vertical")?;
        require(p.float(18, 0.0)?, 0.0, "padding value")?;
        let bias_term = p.int(5, 0)? != 0;
        let weight_count = p.size(6, 0)?;
        require(p.int(8, 0)?, 0, "int8 scale term")?;
        require(p.int(19, 0)?, 0, "dynamic weight")?;
        let relu = match p.int(9, 0)? {
            0 => false,
            1 => true,
            other => {
                return Err(FormatError::unsupported(format!(
                    "fused activation type {other} (only 1 = ReLU)"
                )))
            }
        };
        if out == 0 || kernel_w == 0 || kernel_h == 0 || stride_w == 0 || stride_h == 0 {
            return Err(FormatError::invalid("zero num_output, kernel or stride"));
        }
        let per_input = out
            .checked_mul(kernel_h)
            .and_then(|n| n.checked_mul(kernel_w));
        let in_channels = match per_input {
            Some(per) if weight_count > 0 && weight_count % per == 0 => weight_count / per,
            _ => {
                return Err(FormatError::invalid(format!(
                    "weight_data_size {weight_count} is not a multiple of num_output*kernel ({out}x{kernel_h}x{kernel_w})"
                )))
            }
        };
        let what = format!("weights of {}", layer.name);
        let weights = read_weights(&mut self.bin, weight_count, &what)?;
        let bias = if bias_term {
            self.bin.f32s(out, &format!("biases of {}", layer.name))?
        } else {
            vec![0.0; out]
        };
        self.layers.push(Layer {
            name: layer.name.to_string(),
            shape: [out, in_channels, kernel_h, kernel_w],
            weights,
            bias,
        });
        Ok(Op::Conv(Conv {
            layer: self.layers.len() - 1,
            stride_h,
            stride_w,
            pad_h,
            pad_w,
            groups: 1,
            relu,
        }))
    }

    /// The real blob behind `name`, looking through `Split` aliases.
    fn resolve(&self, name: &str) -> Result<String> {
        if let Some(source) = self.aliases.get(name) {
            return Ok(source.clone());
        }
        if !self.produced.contains(name) {
            return Err(FormatError::invalid(format!(
                "reads blob {name} that no earlier layer produces"
            )));
        }
        Ok(name.to_string())
    }

    /// Record that a layer writes `name`; ncnn blobs are written once.
    fn produce(&mut self, name: &str) -> Result<String> {
        if !self.produced.insert(name.to_string()) {
            return Err(FormatError::invalid(format!(
                "blob {name} is produced twice"
            )));
        }
        Ok(name.to_string())
    }

    fn finish(self, blob_count: usize) -> Result<Model> {
        if self.produced.len() != blob_count {
            return Err(FormatError::invalid(format!(
                "ncnn .param announces {blob_count} blobs but its layers produce {}",
                self.produced.len()
            )));
        }
        self.bin.finish()?;
        let input = self
            .input
            .ok_or_else(|| FormatError::invalid("ncnn .param has no Input layer"))?;
        let output = Graph::logits_blob(&self.nodes)?;
        let preprocess = match self.crop {
            Some(crop) => Preprocess {
                crop,
                ..Preprocess::torchvision()
            },
            None => Preprocess::torchvision(),
        };
        let model = Model {
            graph: Graph {
                nodes: self.nodes,
                input,
                output,
            },
            layers: self.layers,
            preprocess,
        };
        model.validate()?;
        Ok(model)
    }
}

/// `count` weights after their storage tag: float16 (then padding to a
/// 4-byte boundary) or float32.
fn read_weights(bin: &mut ByteCursor, count: usize, what: &str) -> Result<Vec<f32>> {
    match bin.u32(what)? {
        TAG_FP16 => {
            let bytes = count.checked_mul(2).ok_or_else(|| FormatError::invalid(format!("{what}: absurd weight count {count}")))?;
            let data = bin.take(bytes, what)?;
            bin.take(bytes.next_multiple_of(4) - bytes, what)?;
            Ok(data.chunks_exact(2).map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f32()).collect())
        }
        TAG_FP32 => bin.f32s(count, what),
        tag => Err(FormatError::unsupported(format!(
            "{what}: weight storage tag {tag:#010x} (only float32 0x00000000 and float16 0x01306b47 are supported, not int8 or quantized tables)"
        ))),
    }
}

fn pooling(p: &ParamDict) -> Result<Op> {
    p.only("Pooling", &[0, 1, 11, 2, 12, 3, 13, 14, 15, 4, 5, 6, 7])?;
    let kind = match p.int(0, 0)? {
        0 => PoolKind::Max,
        1 => PoolKind::Avg,
        other => return Err(FormatError::unsupported(format!("pooling type {other}"))),
    };
    require(p.int(7, 0)?, 0, "adaptive pooling")?;
    if p.int(4, 0)? != 0 {
        return match kind {
            PoolKind::Avg => Ok(Op::GlobalAvgPool),
            PoolKind::Max => Err(FormatError::unsupported("global max pooling")),
        };
    }
    let kernel_w = p.size(1, 0)?;
    let kernel_h = p.size(11, kernel_w)?;
    let stride_w = p.size(2, 1)?;
    let stride_h = p.size(12, stride_w)?;
    let pad_left = p.size(3, 0)?;
    let pad_w = symmetric(pad_left, p.size(14, pad_left)?, "horizontal")?;
    let pad_top = p.size(13, pad_left)?;
    let pad_h = symmetric(pad_top, p.size(15, pad_top)?, "vertical")?;
    let ceil_mode = match p.int(5, 0)? {
        0 => true,
        1 => false,
        other => {
            return Err(FormatError::unsupported(format!(
                "pooling pad_mode {other} (only 0 full and 1 valid)"
            )))
        }
    };
    if kind == PoolKind::Avg && (pad_w > 0 || pad_h > 0 || p.int(6, 0)? != 0) {
        // Frameworks disagree on the divisor of windows that overlap padding.
        return Err(FormatError::unsupported("average pooling over padding"));
    }
    Ok(Op::Pool(Pool {
        kind,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        ceil_mode,
        count_include_pad: true,
    }))
}

/// Eltwise: only a plain sum (operation 1 without coefficients other than 1).
fn eltwise(p: &ParamDict) -> Result<Op> {
    p.only("Eltwise", &[0, 1])?;
    require(p.int(0, 0)?, 1, "Eltwise operation")?;
    if let Some(coeffs) = p.array(1) {
        if coeffs.iter().any(|c| c.parse::<f32>() != Ok(1.0)) {
            return Err(FormatError::unsupported(format!(
                "Eltwise coefficients {coeffs:?}"
            )));
        }
    }
    Ok(Op::Add)
}

/// Reshape is supported when it is a flatten: the outermost given dimension
/// is -1 (everything) and every other given dimension is 1.
fn reshape(p: &ParamDict) -> Result<Op> {
    p.only("Reshape", &[0, 1, 11, 2, 3])?;
    require(p.int(3, 0)?, 0, "Reshape permute")?;
    let dims: Vec<i64> = [
        p.int(0, UNSET)?,
        p.int(1, UNSET)?,
        p.int(11, UNSET)?,
        p.int(2, UNSET)?,
    ]
    .into_iter()
    .filter(|&d| d != UNSET)
    .collect();
    match dims.split_last() {
        Some((-1, inner)) if inner.iter().all(|&d| d == 1) => Ok(Op::Flatten),
        _ => Err(FormatError::unsupported(format!(
            "Reshape to {dims:?} (only flattening reshapes)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A conv (2 outputs, 1 input, 1x1, fp32) whose output is split into a
    /// ReLU and a Concat with it, then softmax.
    fn small_net() -> (String, Vec<u8>) {
        let param = "7767517\n7 8\n\
            Input in 0 1 data 0=5 1=5 2=3\n\
            Convolution c1 1 1 data c1 0=2 1=1 5=1 6=6 4=1 3=2\n\
            Split sp 1 2 c1 c1_a c1_b\n\
            ReLU r1 1 1 c1_a r1\n\
            Concat cat 2 1 r1 c1_b cat\n\
            Pooling gap 1 1 cat gap 0=1 4=1\n\
            Softmax prob 1 1 gap prob 0=0 1=1\n";
        let mut bin = 0u32.to_le_bytes().to_vec();
        bin.extend(f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        bin.extend(f32_bytes(&[0.5, -0.5]));
        (param.to_string(), bin)
    }

    #[test]
    fn small_network_with_split_concat_and_softmax() {
        let (param, bin) = small_net();
        let m = parse_ncnn(&param, &bin).unwrap();
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].shape, [2, 3, 1, 1]);
        assert_eq!(m.layers[0].weights, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(m.layers[0].bias, vec![0.5, -0.5]);
        let names: Vec<&str> = m.graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["c1", "r1", "cat", "gap", "prob"],
            "Split and Input become no nodes"
        );
        assert_eq!(
            m.graph.nodes[1].inputs,
            ["c1"],
            "split outputs resolve to the split input"
        );
        assert_eq!(m.graph.nodes[2].inputs, ["r1", "c1"]);
        assert_eq!(m.graph.input, "data");
        assert_eq!(
            m.graph.output, "gap",
            "the output is the blob before the final Softmax"
        );
        assert_eq!(
            m.graph.nodes[0].op,
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
        assert_eq!(m.graph.nodes[3].op, Op::GlobalAvgPool);
        assert_eq!(m.preprocess.crop, 5);
    }

    #[test]
    fn float16_weights_are_padded_to_four_bytes() {
        let param = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1 1=1 6=3 9=1\n";
        let mut bin = TAG_FP16.to_le_bytes().to_vec();
        for v in [1.0f32, -2.0, 0.5] {
            bin.extend(half::f16::from_f32(v).to_le_bytes());
        }
        bin.extend([0, 0]);
        let m = parse_ncnn(param, &bin).unwrap();
        assert_eq!(m.layers[0].weights, vec![1.0, -2.0, 0.5]);
        assert_eq!(
            m.layers[0].bias,
            vec![0.0],
            "no bias_term gives zero biases"
        );
        assert!(matches!(
            m.graph.nodes[0].op,
            Op::Conv(Conv { relu: true, .. })
        ));
        let e = parse_ncnn(param, &bin[..bin.len() - 2]).unwrap_err();
        assert!(
            matches!(e, FormatError::Truncated(_)),
            "missing padding: {e}"
        );
    }

    #[test]
    fn unknown_weight_tag_is_unsupported_and_named() {
        let param = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1 1=1 6=1\n";
        let mut bin = 0x000D_4B38u32.to_le_bytes().to_vec();
        bin.extend([0; 4]);
        let e = parse_ncnn(param, &bin).unwrap_err();
        assert!(
            matches!(e, FormatError::Unsupported(_)) && e.to_string().contains("0x000d4b38"),
            "{e}"
        );
    }

    #[test]
    fn lying_weight_count_is_truncated_not_allocated() {
        let param =
            "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1 1=1 6=4000000000000\n";
        let e = parse_ncnn(param, &TAG_FP32.to_le_bytes()).unwrap_err();
        assert!(matches!(e, FormatError::Truncated(_)), "{e}");
    }

    #[test]
    fn leftover_bin_bytes_are_rejected() {
        let (param, mut bin) = small_net();
        bin.push(0);
        assert!(parse_ncnn(&param, &bin)
            .unwrap_err()
            .to_string()
            .contains("unexpected bytes"));
    }

    #[test]
    fn pooling_keys_and_rounding() {
        let pool = |params: &str| {
            let p: Vec<&str> = params.split_whitespace().collect();
            pooling(&ParamDict::parse(&p).unwrap())
        };
        let p = pool("0=0 1=3 11=2 2=2 12=1 3=1 13=0 5=1").unwrap();
        assert_eq!(
            p,
            Op::Pool(Pool {
                kind: PoolKind::Max,
                kernel_h: 2,
                kernel_w: 3,
                stride_h: 1,
                stride_w: 2,
                pad_h: 0,
                pad_w: 1,
                ceil_mode: false,
                count_include_pad: true,
            })
        );
        assert!(matches!(
            pool("0=0 1=3 2=2").unwrap(),
            Op::Pool(Pool {
                ceil_mode: true,
                kernel_h: 3,
                stride_h: 2,
                ..
            })
        ));
        assert!(matches!(
            pool("0=0 1=3 5=2"),
            Err(FormatError::Unsupported(_))
        ));
        assert!(
            matches!(pool("0=0 4=1"), Err(FormatError::Unsupported(_))),
            "global max"
        );
        assert!(
            matches!(pool("0=1 1=3 3=1"), Err(FormatError::Unsupported(_))),
            "padded average"
        );
        assert!(
            matches!(pool("0=0 1=3 3=1 14=0"), Err(FormatError::Unsupported(_))),
            "asymmetric"
        );
    }

    #[test]
    fn reshape_is_accepted_only_as_flatten() {
        let reshape_of = |params: &str| {
            let p: Vec<&str> = params.split_whitespace().collect();
            reshape(&ParamDict::parse(&p).unwrap())
        };
        assert_eq!(reshape_of("0=1 1=1 2=-1").unwrap(), Op::Flatten);
        assert_eq!(reshape_of("0=-1").unwrap(), Op::Flatten);
        assert!(reshape_of("0=-1 1=1 2=1").is_err());
        assert!(reshape_of("0=7 1=7 2=-1").is_err());
    }

    #[test]
    fn unsupported_features_are_rejected() {
        let conv = |params: &str| {
            let param = format!("7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=1 1=1 6=1 {params}\n");
            let mut bin = TAG_FP32.to_le_bytes().to_vec();
            bin.extend(f32_bytes(&[1.0]));
            parse_ncnn(&param, &bin)
        };
        assert!(conv("").is_ok());
        for bad in ["9=2", "2=2", "4=-233", "4=1 15=0", "8=1", "7=1"] {
            let e = conv(bad).unwrap_err();
            assert!(matches!(e, FormatError::Unsupported(_)), "{bad}: {e}");
            assert!(e.to_string().contains("line 4 (layer c)"), "{e}");
        }
        let e = parse_ncnn(
            "7767517\n2 2\nInput in 0 1 data\nInnerProduct fc 1 1 data out 0=10\n",
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().contains("InnerProduct"), "{e}");
    }

    #[test]
    fn malformed_param_text_gives_errors() {
        let (_, bin) = small_net();
        let cases = [
            ("", "empty"),
            ("7767518\n", "first line"),
            ("7767517\n", "counts"),
            ("7767517\n1 x\n", "numbers"),
            ("7767517\n2 2\nInput in 0 1 data\n", "announces 2 layers"),
            (
                "7767517\n1 1\nInput in 0 9 data\n",
                "announces 0 inputs and 9 outputs",
            ),
            (
                "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 nowhere out\n",
                "no earlier layer",
            ),
            (
                "7767517\n2 1\nInput in 0 1 data\nReLU r 1 1 data data\n",
                "produced twice",
            ),
            (
                "7767517\n2 5\nInput in 0 1 data\nReLU r 1 1 data out\n",
                "announces 5 blobs",
            ),
            (
                "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data out 0\n",
                "key=value",
            ),
            (
                "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data out 0=1 0=2\n",
                "twice",
            ),
            (
                "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data out -23300=3,1\n",
                "array",
            ),
            (
                "7767517\n2 2\nInput in 0 1 data\nReLU r 1 1 data out -9223372036854775808=0\n",
                "not supported",
            ),
        ];
        for (param, expected) in cases {
            let e = parse_ncnn(param, &bin).unwrap_err().to_string();
            assert!(e.contains(expected), "{param:?}: {e}");
        }
    }
}
