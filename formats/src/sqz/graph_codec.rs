//! The graph's encoding (`SQZ.md`, "Graph"). Each node is a head byte
//! (operation tag plus flags), a name, inputs, outputs and the operation's
//! hyper-parameters. What usually repeats is implied instead of stored: an
//! input that is the previous node's output, an output named like the node,
//! like its input, or `input/node` (as the Caffe readers name the output of
//! an in-place layer), and inputs are referenced by the node that produced
//! them, so that blob names only enter the string table when they cannot
//! be derived.

use super::strings::StringTable;
use super::wire::{put_varint, Reader};
use super::{MAX_HYPERPARAMETER, MAX_LAYERS, MAX_NODES, MAX_TEXT_BYTES};
use crate::model::{Clip, Conv, Graph, Lrn, Node, Op, Pool, PoolKind};
use crate::Result;
use std::collections::HashMap;

/// Numeric tag of each operation, in declaration order of [`Op`].
fn op_tag(op: &Op) -> u8 {
    match op {
        Op::Conv(_) => 0,
        Op::Relu => 1,
        Op::Pool(_) => 2,
        Op::GlobalAvgPool => 3,
        Op::Concat => 4,
        Op::Dropout => 5,
        Op::Add => 6,
        Op::Softmax => 7,
        Op::Flatten => 8,
        Op::Lrn(_) => 9,
        Op::Clip(_) => 10,
    }
}

/// The lowest layout version that can hold `graph`: 2 when it uses
/// grouped convolutions, average pooling that ignores padding, LRN or Clip
/// (none of which version 1 has), else 1.
pub(crate) fn required_version(graph: &Graph) -> u16 {
    let needs_v2 = |op: &Op| match op {
        Op::Conv(c) => c.groups != 1,
        Op::Pool(p) => !p.count_include_pad,
        Op::Lrn(_) | Op::Clip(_) => true,
        _ => false,
    };
    match graph.nodes.iter().any(|n| needs_v2(&n.op)) {
        true => 2,
        false => 1,
    }
}

/// Node head byte: the only input is the previous node's first output (the
/// graph input for the first node); no input list is stored.
const CHAINED: u8 = 0x10;
/// Node head byte, bits 5-6: how the outputs are given.
const OUTPUTS: u8 = 0x60;
/// Output mode: a stored list of string indices.
const OUTPUTS_LISTED: u8 = 0x00;
/// Output mode: one output, named like the node.
const OUTPUT_IS_NAME: u8 = 0x20;
/// Output mode: one output, named like the first input (in place).
const OUTPUT_IS_INPUT: u8 = 0x40;
/// Output mode: one output named `first input + "/" + node name`.
const OUTPUT_IS_INPUT_SLASH_NAME: u8 = 0x60;

/// Conv and pool flags byte: height and width share stride, padding (and
/// for pools the kernel), so each is stored once.
const SQUARE: u8 = 0x01;
/// Conv flags byte: ReLU fused.
const CONV_RELU: u8 = 0x02;
/// Conv flags byte: the layer index is one more than the previous conv
/// node's (0 for the first conv node) and is not stored.
const CONV_NEXT_LAYER: u8 = 0x04;
/// Conv flags byte (version 2): a varint group count follows the layer
/// index; clear means one group.
const CONV_GROUPED: u8 = 0x08;
/// Pool flags byte: average pooling (else max).
const POOL_AVG: u8 = 0x02;
/// Pool flags byte: ceil rounding of the output size.
const POOL_CEIL: u8 = 0x04;
/// Pool flags byte (version 2): average pooling divides by the real input
/// values only, not the padding.
const POOL_EXCLUDE_PAD: u8 = 0x08;

/// How an input is stored: a varint `2 * index` for string `index`, or
/// `2 * distance - 1` for the first output of the node `distance` places
/// before the current one.
#[derive(Clone, Copy)]
enum BlobRef<'a> {
    Name(&'a str),
    Producer(usize),
}

/// The encoding chosen for one node.
struct NodePlan<'a> {
    node: &'a Node,
    head: u8,
    /// Input references, or `None` when [`CHAINED`].
    inputs: Option<Vec<BlobRef<'a>>>,
}

/// The encoding of a whole graph, decided before the string table is built
/// so that the table holds only the names the encoding refers to.
pub(crate) struct GraphPlan<'a> {
    graph: &'a Graph,
    nodes: Vec<NodePlan<'a>>,
}

impl<'a> GraphPlan<'a> {
    /// Choose the most compact encoding of each node of `graph`.
    pub(crate) fn new(graph: &'a Graph) -> Self {
        let mut producers: HashMap<&str, usize> = HashMap::new();
        let mut previous_output = Some(graph.input.as_str());
        let mut nodes = Vec::with_capacity(graph.nodes.len());
        for (index, node) in graph.nodes.iter().enumerate() {
            let chained =
                matches!((node.inputs.as_slice(), previous_output), ([i], Some(p)) if i == p);
            let inputs = (!chained).then(|| {
                let reference = |name: &'a String| match producers.get(name.as_str()) {
                    Some(&producer) => BlobRef::Producer(index - producer),
                    None => BlobRef::Name(name),
                };
                node.inputs.iter().map(reference).collect()
            });
            let head = op_tag(&node.op) | if chained { CHAINED } else { 0 } | output_mode(node);
            nodes.push(NodePlan { node, head, inputs });
            previous_output = node.outputs.first().map(String::as_str);
            if let Some(output) = previous_output {
                producers.insert(output, index);
            }
        }
        GraphPlan { graph, nodes }
    }

    /// Every name the encoding stores as a string reference.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        let graph = [self.graph.input.as_str(), self.graph.output.as_str()];
        let nodes = self.nodes.iter().flat_map(|plan| {
            let inputs = plan.inputs.iter().flatten().filter_map(|r| match r {
                BlobRef::Name(name) => Some(*name),
                BlobRef::Producer(_) => None,
            });
            let outputs = match plan.head & OUTPUTS {
                OUTPUTS_LISTED => plan.node.outputs.as_slice(),
                _ => &[],
            };
            std::iter::once(plan.node.name.as_str())
                .chain(inputs)
                .chain(outputs.iter().map(String::as_str))
        });
        graph.into_iter().chain(nodes)
    }

    /// Append the graph: input and output names, node count, nodes.
    pub(crate) fn encode(&self, strings: &StringTable, out: &mut Vec<u8>) {
        let put_ref = |out: &mut Vec<u8>, r: BlobRef| match r {
            BlobRef::Name(name) => put_varint(out, 2 * strings.index(name)),
            BlobRef::Producer(distance) => put_varint(out, 2 * distance as u64 - 1),
        };
        put_varint(out, strings.index(&self.graph.input));
        put_varint(out, strings.index(&self.graph.output));
        put_varint(out, self.nodes.len() as u64);
        let mut next_layer = 0usize;
        for plan in &self.nodes {
            let node = plan.node;
            out.push(plan.head);
            put_varint(out, strings.index(&node.name));
            if let Some(inputs) = &plan.inputs {
                put_varint(out, inputs.len() as u64);
                inputs.iter().for_each(|&r| put_ref(out, r));
            }
            if plan.head & OUTPUTS == OUTPUTS_LISTED {
                put_varint(out, node.outputs.len() as u64);
                node.outputs
                    .iter()
                    .for_each(|o| put_varint(out, strings.index(o)));
            }
            match &node.op {
                Op::Conv(c) => {
                    encode_conv(c, next_layer, out);
                    next_layer = c.layer.saturating_add(1);
                }
                Op::Pool(p) => encode_pool(p, out),
                Op::Lrn(l) => {
                    put_varint(out, l.size as u64);
                    [l.alpha, l.beta, l.bias]
                        .iter()
                        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
                }
                Op::Clip(c) => [c.min, c.max]
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
                _ => {}
            }
        }
    }
}

/// The output mode of `node`'s head byte.
fn output_mode(node: &Node) -> u8 {
    let [output] = node.outputs.as_slice() else {
        return OUTPUTS_LISTED;
    };
    match node.inputs.first() {
        _ if *output == node.name => OUTPUT_IS_NAME,
        Some(input) if output == input => OUTPUT_IS_INPUT,
        Some(input) if *output == slash_join(input, &node.name) => OUTPUT_IS_INPUT_SLASH_NAME,
        _ => OUTPUTS_LISTED,
    }
}

fn slash_join(input: &str, name: &str) -> String {
    format!("{input}/{name}")
}

/// Append the flags byte of `flags`' set bits.
fn flags_byte(flags: &[(bool, u8)]) -> u8 {
    flags
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |byte, (_, bit)| byte | bit)
}

fn encode_conv(c: &Conv, next_layer: usize, out: &mut Vec<u8>) {
    let square = c.stride_h == c.stride_w && c.pad_h == c.pad_w;
    out.push(flags_byte(&[
        (square, SQUARE),
        (c.relu, CONV_RELU),
        (c.layer == next_layer, CONV_NEXT_LAYER),
        (c.groups != 1, CONV_GROUPED),
    ]));
    if c.layer != next_layer {
        put_varint(out, c.layer as u64);
    }
    if c.groups != 1 {
        put_varint(out, c.groups as u64);
    }
    let sizes: &[usize] = match square {
        true => &[c.stride_h, c.pad_h],
        false => &[c.stride_h, c.stride_w, c.pad_h, c.pad_w],
    };
    sizes.iter().for_each(|&v| put_varint(out, v as u64));
}

fn encode_pool(p: &Pool, out: &mut Vec<u8>) {
    let square = p.kernel_h == p.kernel_w && p.stride_h == p.stride_w && p.pad_h == p.pad_w;
    out.push(flags_byte(&[
        (square, SQUARE),
        (p.kind == PoolKind::Avg, POOL_AVG),
        (p.ceil_mode, POOL_CEIL),
        (!p.count_include_pad, POOL_EXCLUDE_PAD),
    ]));
    let sizes: &[usize] = match square {
        true => &[p.kernel_h, p.stride_h, p.pad_h],
        false => &[
            p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
        ],
    };
    sizes.iter().for_each(|&v| put_varint(out, v as u64));
}

/// Materialises names while keeping their total within [`MAX_TEXT_BYTES`],
/// so that many references to long names cannot blow up memory.
struct Names<'a> {
    table: &'a StringTable,
    text: usize,
}

impl Names<'_> {
    /// Account for one more name in the decoded graph.
    fn charge(&mut self, r: &Reader, name: String) -> Result<String> {
        self.text += name.len();
        if self.text > MAX_TEXT_BYTES {
            return Err(r.invalid(format!(
                "the graph's names exceed {MAX_TEXT_BYTES} bytes in total"
            )));
        }
        Ok(name)
    }

    /// A name stored as a string index.
    fn string(&mut self, r: &mut Reader, what: &str) -> Result<String> {
        let index = r.varint(what)?;
        let name = self.table.get(r, index, what)?.to_string();
        self.charge(r, name)
    }

    /// An input reference (see [`BlobRef`]) made while decoding node
    /// `nodes.len()`.
    fn input(&mut self, r: &mut Reader, nodes: &[Node], what: &str) -> Result<String> {
        let value = r.varint(what)?;
        if value % 2 == 0 {
            let name = self.table.get(r, value / 2, what)?.to_string();
            return self.charge(r, name);
        }
        let distance = value / 2 + 1;
        let producer = usize::try_from(distance)
            .ok()
            .and_then(|d| nodes.len().checked_sub(d));
        let output = producer.and_then(|p| nodes[p].outputs.first()).ok_or_else(|| {
            r.invalid(format!("{what} refers to the output of a node {distance} places back, which does not exist"))
        })?;
        self.charge(r, output.clone())
    }

    /// A count and that many names read by `item`.
    fn list(
        &mut self,
        r: &mut Reader,
        what: &str,
        mut item: impl FnMut(&mut Self, &mut Reader) -> Result<String>,
    ) -> Result<Vec<String>> {
        let count = r.varint(&format!("{what} count"))?;
        // Every reference takes at least one byte, so `count` is bounded by
        // the section's size before anything large is allocated.
        if count > r.remaining() as u64 {
            return Err(r.invalid(format!(
                "{count} {what}s cannot fit in {} bytes",
                r.remaining()
            )));
        }
        (0..count).map(|_| item(self, r)).collect()
    }
}

/// Read a graph written by [`GraphPlan::encode`] into a file of layout
/// `version`.
pub(crate) fn decode(r: &mut Reader, strings: &StringTable, version: u16) -> Result<Graph> {
    let v2 = version >= 2;
    let mut names = Names {
        table: strings,
        text: 0,
    };
    let input = names.string(r, "graph input")?;
    let output = names.string(r, "graph output")?;
    let node_count = r.bounded("node count", MAX_NODES as u64)?;
    let mut nodes: Vec<Node> = Vec::new();
    let mut next_layer = 0usize;
    for index in 0..node_count {
        let head = r.u8("node head")?;
        let name = names.string(r, "node name")?;
        r.set_context(format!("model section, node {index} ({name})"));
        let inputs = match head & CHAINED {
            0 => names.list(r, "input", |names, r| names.input(r, &nodes, "input"))?,
            _ => {
                let previous = match nodes.last() {
                    Some(node) => node.outputs.first(),
                    None => Some(&input),
                };
                let previous =
                    previous.ok_or_else(|| r.invalid("chained to a node without outputs"))?;
                vec![names.charge(r, previous.clone())?]
            }
        };
        let derived = |what: &str| match inputs.first() {
            Some(first) => Ok(first),
            None => Err(r.invalid(format!("output named like {what} of a node without inputs"))),
        };
        let outputs = match head & OUTPUTS {
            OUTPUTS_LISTED => names.list(r, "output", |names, r| names.string(r, "output"))?,
            OUTPUT_IS_NAME => vec![names.charge(r, name.clone())?],
            OUTPUT_IS_INPUT => vec![names.charge(r, derived("the input")?.clone())?],
            _ => vec![names.charge(r, slash_join(derived("the input and name")?, &name))?],
        };
        let op = match head & !(CHAINED | OUTPUTS) {
            0 => Op::Conv(decode_conv(r, next_layer, v2)?),
            1 => Op::Relu,
            2 => Op::Pool(decode_pool(r, v2)?),
            3 => Op::GlobalAvgPool,
            4 => Op::Concat,
            5 => Op::Dropout,
            6 => Op::Add,
            7 => Op::Softmax,
            8 => Op::Flatten,
            9 if v2 => Op::Lrn(Lrn {
                size: r.bounded("LRN size", MAX_HYPERPARAMETER as u64)?,
                alpha: r.f32("LRN alpha")?,
                beta: r.f32("LRN beta")?,
                bias: r.f32("LRN bias")?,
            }),
            10 if v2 => Op::Clip(Clip {
                min: r.f32("clip minimum")?,
                max: r.f32("clip maximum")?,
            }),
            _ => return Err(r.invalid(format!("unknown node head byte {head:#04x}"))),
        };
        if let Op::Conv(c) = &op {
            next_layer = c.layer + 1;
        }
        nodes.push(Node {
            name,
            op,
            inputs,
            outputs,
        });
    }
    r.set_context("model section");
    Ok(Graph {
        nodes,
        input,
        output,
    })
}

/// `N` hyper-parameters, each at most [`MAX_HYPERPARAMETER`].
fn hyperparameters<const N: usize>(r: &mut Reader, what: &str) -> Result<[usize; N]> {
    let mut out = [0; N];
    for v in &mut out {
        *v = r.bounded(what, MAX_HYPERPARAMETER as u64)?;
    }
    Ok(out)
}

/// A flags byte with no bits outside `known`.
fn read_flags(r: &mut Reader, what: &str, known: u8) -> Result<u8> {
    let flags = r.u8(what)?;
    match flags & !known {
        0 => Ok(flags),
        _ => Err(r.invalid(format!("unknown bits in {what} {flags:#04x}"))),
    }
}

/// The flag bits of layout version 1, plus `v2_bits` when `v2`.
fn known_flags(v1_bits: u8, v2_bits: u8, v2: bool) -> u8 {
    v1_bits | if v2 { v2_bits } else { 0 }
}

fn decode_conv(r: &mut Reader, next_layer: usize, v2: bool) -> Result<Conv> {
    let known = known_flags(SQUARE | CONV_RELU | CONV_NEXT_LAYER, CONV_GROUPED, v2);
    let flags = read_flags(r, "conv flags", known)?;
    let layer = match flags & CONV_NEXT_LAYER {
        0 => r.bounded("conv layer index", MAX_LAYERS as u64)?,
        _ => next_layer,
    };
    let groups = match flags & CONV_GROUPED {
        0 => 1,
        _ => r.bounded("conv groups", MAX_HYPERPARAMETER as u64)?,
    };
    let [stride_h, stride_w, pad_h, pad_w] = match flags & SQUARE {
        0 => hyperparameters(r, "conv stride or padding")?,
        _ => hyperparameters::<2>(r, "conv stride or padding").map(|[s, p]| [s, s, p, p])?,
    };
    Ok(Conv {
        layer,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        groups,
        relu: flags & CONV_RELU != 0,
    })
}

fn decode_pool(r: &mut Reader, v2: bool) -> Result<Pool> {
    let known = known_flags(SQUARE | POOL_AVG | POOL_CEIL, POOL_EXCLUDE_PAD, v2);
    let flags = read_flags(r, "pool flags", known)?;
    let [kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w] = match flags & SQUARE {
        0 => hyperparameters(r, "pool kernel, stride or padding")?,
        _ => hyperparameters::<3>(r, "pool kernel, stride or padding")
            .map(|[k, s, p]| [k, k, s, s, p, p])?,
    };
    let kind = if flags & POOL_AVG != 0 {
        PoolKind::Avg
    } else {
        PoolKind::Max
    };
    Ok(Pool {
        kind,
        kernel_h,
        kernel_w,
        stride_h,
        stride_w,
        pad_h,
        pad_w,
        ceil_mode: flags & POOL_CEIL != 0,
        count_include_pad: flags & POOL_EXCLUDE_PAD == 0,
    })
}
