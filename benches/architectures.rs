//! Forward speed of the engine on the operations SqueezeNet does not use,
//! in graphs shaped like MobileNetV2 (depthwise 3x3 convolutions at stride
//! 1 and 2, ReLU6 clips, residual additions) and AlexNet (11x11 stride 4,
//! LRN, grouped 5x5 and 3x3 convolutions, padded max pooling, fully
//! connected layers). Run with `cargo bench --bench architectures`.
//!
//! The weights are pseudo-random, scaled by the fan-in so activations stay
//! in a normal range (the engine's speed does not depend on the values, as
//! long as they are not subnormal). For each model, batch and thread count:
//! images per second of a `Session` (median of several runs after warm-up)
//! and the median time of each kind of operation per batch (zero for a node
//! fused into the convolution before it). With `SQZ_ARCHITECTURES_DIR` set,
//! the two models are also written there as `.sqz` files, for trying the
//! command-line tool on them.

use std::collections::BTreeMap;
use std::time::Duration;

use formats::{Clip, Conv, Graph, Layer, Lrn, Model, Node, Op, Pool, PoolKind, Preprocess};
use sqz::engine::{infer_shapes, Session, Tensor};

mod common;
use common::{median, timed};

const WARM_UP: usize = 2;
const TIMED: usize = 7;

fn main() {
    let models = [
        ("MobileNetV2-like", mobilenet_v2()),
        ("AlexNet-like", alexnet()),
    ];
    if let Some(dir) = std::env::var_os("SQZ_ARCHITECTURES_DIR") {
        for (name, model) in &models {
            let path = std::path::Path::new(&dir).join(format!("{name}.sqz"));
            let bytes = formats::sqz::write_sqz(&formats::sqz::encode_model_dense(model));
            std::fs::write(&path, bytes).expect("write the model");
            println!("wrote {}", path.display());
        }
    }
    println!("median of {TIMED} runs after {WARM_UP} warm-up runs; op times in ms per batch");
    for (name, model) in &models {
        let session = Session::new(model).expect("a valid model");
        let side = model.preprocess.crop as usize;
        for (batch, threads) in [(1, 1), (1, 2), (8, 2)] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let input = random_tensor([batch, 3, side, side], 1.0, 7);
            let kinds = op_kinds(model, input.shape);
            let run = || pool.install(|| session.run_profiled(&input)).expect("runs");
            (0..WARM_UP).for_each(|_| drop(run()));
            let mut totals = Vec::new();
            let mut by_kind: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
            for _ in 0..TIMED {
                let ((_, times), total) = timed(run);
                totals.push(total);
                let mut sums: BTreeMap<&str, Duration> = BTreeMap::new();
                for (kind, time) in kinds.iter().zip(times) {
                    *sums.entry(kind).or_default() += time;
                }
                for (kind, time) in sums {
                    by_kind.entry(kind).or_default().push(time);
                }
            }
            let total = median(totals);
            println!(
                "{name}, batch {batch}, {threads} thread(s): {:.1} img/s ({:.1} ms per batch)",
                batch as f64 / total.as_secs_f64(),
                total.as_secs_f64() * 1e3
            );
            for (kind, times) in by_kind {
                println!("  {kind:<22} {:>9.2}", median(times).as_secs_f64() * 1e3);
            }
        }
    }
}

/// The kind of operation of every node, for the per-kind profile.
fn op_kinds(model: &Model, input: [usize; 4]) -> Vec<String> {
    let shapes = infer_shapes(model, input).expect("valid shapes").nodes;
    model
        .graph
        .nodes
        .iter()
        .zip(shapes)
        .map(|(node, shape)| match &node.op {
            Op::Conv(conv) => {
                let [_, in_c, kh, kw] = model.layers[conv.layer].shape;
                if conv.groups > 1 && in_c == 1 {
                    format!("conv {kh}x{kw} depthwise")
                } else if conv.groups > 1 {
                    format!("conv {kh}x{kw} grouped")
                } else if shape[2] * shape[3] == 1 {
                    "fully connected".into()
                } else {
                    format!("conv {kh}x{kw}")
                }
            }
            Op::Pool(p) if p.kind == PoolKind::Max => "max pool".into(),
            Op::Pool(_) | Op::GlobalAvgPool => "avg pool".into(),
            Op::Lrn(_) => "lrn".into(),
            Op::Clip(_) => "clip".into(),
            Op::Relu => "relu".into(),
            Op::Add => "add".into(),
            _ => "other".into(),
        })
        .collect()
}

/// Builds a graph node by node, with pseudo-random layers.
struct Builder {
    nodes: Vec<Node>,
    layers: Vec<Layer>,
    last: String,
    channels: usize,
    seed: u64,
}

impl Builder {
    fn new() -> Self {
        Builder {
            nodes: Vec::new(),
            layers: Vec::new(),
            last: "data".into(),
            channels: 3,
            seed: 1,
        }
    }

    /// Append `op` reading `inputs` (the last blob when empty).
    fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> String {
        let inputs = match inputs {
            [] => vec![self.last.clone()],
            _ => inputs.iter().map(|s| s.to_string()).collect(),
        };
        self.nodes.push(Node {
            name: name.into(),
            op,
            inputs,
            outputs: vec![name.into()],
        });
        self.last = name.into();
        self.last.clone()
    }

    /// A `kernel x kernel` convolution to `out` channels in `groups`,
    /// padded by `kernel / 2` ("same" at stride 1).
    fn conv(&mut self, name: &str, out: usize, kernel: usize, stride: usize, groups: usize) {
        self.conv_padded(name, out, kernel, stride, groups, kernel / 2);
    }

    /// [`Builder::conv`] with padding `pad`.
    fn conv_padded(
        &mut self,
        name: &str,
        out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        pad: usize,
    ) {
        let shape = [out, self.channels / groups, kernel, kernel];
        let fan_in = shape[1] * kernel * kernel;
        self.seed += 1;
        let weights = random_tensor(shape, (3.0 / fan_in as f32).sqrt(), self.seed).data;
        self.layers.push(Layer {
            name: name.into(),
            shape,
            weights,
            bias: vec![0.01; out],
        });
        let conv = Conv {
            layer: self.layers.len() - 1,
            stride_h: stride,
            stride_w: stride,
            pad_h: pad,
            pad_w: pad,
            groups,
            relu: false,
        };
        self.push(name, Op::Conv(conv), &[]);
        self.channels = out;
    }

    fn finish(self, crop: u32, preprocess: Preprocess) -> Model {
        Model {
            graph: Graph {
                output: self.last,
                nodes: self.nodes,
                input: "data".into(),
            },
            layers: self.layers,
            preprocess: Preprocess { crop, ..preprocess },
        }
    }
}

const RELU6: Op = Op::Clip(Clip { min: 0.0, max: 6.0 });

/// MobileNetV2 (width 1.0, 224 x 224): a 3x3 stride-2 stem, the 17
/// inverted residual blocks of the paper's table 2, a 1x1 convolution to
/// 1280 channels, global average pooling and a 1000-way classifier, with
/// ReLU6 after every convolution but the projections.
fn mobilenet_v2() -> Model {
    let mut b = Builder::new();
    b.conv("stem", 32, 3, 2, 1);
    b.push("stem_relu6", RELU6, &[]);
    let blocks = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ];
    let mut index = 0;
    for (expansion, out, repeats, first_stride) in blocks {
        for repeat in 0..repeats {
            index += 1;
            let stride = if repeat == 0 { first_stride } else { 1 };
            let (block_input, in_c) = (b.last.clone(), b.channels);
            let name = |part: &str| format!("block{index}_{part}");
            if expansion > 1 {
                b.conv(&name("expand"), in_c * expansion, 1, 1, 1);
                b.push(&name("expand_relu6"), RELU6, &[]);
            }
            let hidden = b.channels;
            b.conv(&name("depthwise"), hidden, 3, stride, hidden);
            b.push(&name("depthwise_relu6"), RELU6, &[]);
            b.conv(&name("project"), out, 1, 1, 1);
            if stride == 1 && in_c == out {
                let projected = b.last.clone();
                b.push(&name("add"), Op::Add, &[&projected, &block_input]);
            }
        }
    }
    b.conv("head", 1280, 1, 1, 1);
    b.push("head_relu6", RELU6, &[]);
    b.push("pool", Op::GlobalAvgPool, &[]);
    b.conv("classifier", 1000, 1, 1, 1);
    b.finish(224, Preprocess::torchvision())
}

/// Caffe's AlexNet (227 x 227): 11x11 stride 4, LRN and 3x3 stride-2 max
/// pooling twice, 5x5 and 3x3 convolutions in 2 groups, three fully
/// connected layers.
fn alexnet() -> Model {
    let lrn = Op::Lrn(Lrn {
        size: 5,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    let max_pool = Op::Pool(Pool::square(PoolKind::Max, 3, 2, 0, true));
    let mut b = Builder::new();
    b.conv_padded("conv1", 96, 11, 4, 1, 0);
    b.push("relu1", Op::Relu, &[]);
    b.push("norm1", lrn.clone(), &[]);
    b.push("pool1", max_pool.clone(), &[]);
    b.conv("conv2", 256, 5, 1, 2);
    b.push("relu2", Op::Relu, &[]);
    b.push("norm2", lrn, &[]);
    b.push("pool2", max_pool.clone(), &[]);
    b.conv("conv3", 384, 3, 1, 1);
    b.push("relu3", Op::Relu, &[]);
    b.conv("conv4", 384, 3, 1, 2);
    b.push("relu4", Op::Relu, &[]);
    b.conv("conv5", 256, 3, 1, 2);
    b.push("relu5", Op::Relu, &[]);
    b.push("pool5", max_pool, &[]);
    b.push("flatten", Op::Flatten, &[]);
    b.channels = 256 * 6 * 6;
    for (name, out) in [("fc6", 4096), ("fc7", 4096), ("fc8", 1000)] {
        b.conv(name, out, 1, 1, 1);
        if name != "fc8" {
            b.push(&format!("{name}_relu"), Op::Relu, &[]);
        }
    }
    b.finish(227, Preprocess::caffe())
}

/// Pseudo-random values uniform in `[-scale, scale)` (xorshift).
fn random_tensor(shape: [usize; 4], scale: f32, seed: u64) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * scale
        })
        .collect();
    Tensor::new(shape, data).expect("consistent shape")
}
