//! The real models of the shared data folder, for the integration tests
//! (see that folder's README.md). The folder is `$SQZ_SHARED`, else
//! `../shared` beside the repository; tests fail, never skip, without it.
// Each test crate including this module uses a different part of it.

use formats::deep_compression::read_deep_compression;
use formats::ncnn::read_ncnn;
use formats::Model;
use std::path::{Path, PathBuf};

/// Deep Compression SqueezeNet v1.0's network definition.
pub const V10_PROTOTXT: &str = "models/squeezenet_v1.0-deep-compression/SqueezeNet_deploy.prototxt";
const V10_NET: &str = "models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net";
const V11_PARAM: &str = "models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param";

/// A file of the shared data folder; panics with the place it looked.
pub fn shared(relative: &str) -> PathBuf {
    let root = match std::env::var_os("SQZ_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    let path = root.join(relative);
    assert!(
        path.is_file(),
        "shared test data missing: {} does not exist (set SQZ_SHARED to the shared data folder; default ../shared beside the repository)",
        path.display()
    );
    path
}

/// torchvision's SqueezeNet v1.1 (ncnn): fused ReLUs, Flatten at the end.
pub fn squeezenet_v1_1() -> Model {
    read_ncnn(&shared(V11_PARAM)).expect("the shared v1.1 model loads")
}

/// Han et al.'s Deep Compression SqueezeNet v1.0: separate ReLUs, Dropout.
pub fn squeezenet_v1_0() -> Model {
    read_deep_compression(&shared(V10_NET), None).expect("the shared v1.0 model loads")
}

/// A small model using every op the engine has, in forms the real models
/// lack: `Add` of two, three and one inputs, average pooling with padding
/// `avg_pad` and ceil rounding, floor-rounded max pooling, a Concat
/// reading one blob twice, and special float values in the weights
/// (negative zero, a subnormal, the largest finite value).
pub fn synthetic_model(avg_pad: usize) -> Model {
    use formats::{Conv, Graph, Layer, Node, Op, Pool, PoolKind, Preprocess};
    let layer = |name: &str, shape: [usize; 4]| {
        let count = shape.iter().product::<usize>();
        let mut weights: Vec<f32> = (0..count)
            .map(|i| (i as f32 - count as f32 / 2.0) / 16.0)
            .collect();
        weights[..3].copy_from_slice(&[-0.0, f32::from_bits(1), f32::MAX]);
        Layer {
            name: name.into(),
            shape,
            weights,
            bias: (0..shape[0]).map(|i| i as f32 - 1.5).collect(),
        }
    };
    let conv = |layer, pad, relu| {
        Op::Conv(Conv {
            layer,
            stride_h: 1,
            stride_w: 1,
            pad_h: pad,
            pad_w: pad,
            groups: 1,
            relu,
        })
    };
    let pool = |kind, kernel, pad, ceil_mode| {
        Op::Pool(Pool {
            kind,
            kernel_h: kernel,
            kernel_w: kernel,
            stride_h: 2,
            stride_w: 2,
            pad_h: pad,
            pad_w: pad,
            ceil_mode,
            count_include_pad: true,
        })
    };
    let node = |name: &str, op: Op, inputs: &[&str]| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![name.to_string()],
    };
    let nodes = vec![
        node("a", conv(0, 1, true), &["in"]),
        node("b", conv(1, 0, false), &["a"]),
        node("add2", Op::Add, &["a", "b"]),
        node("add3", Op::Add, &["a", "b", "add2"]),
        node("add1", Op::Add, &["add3"]),
        node("avg", pool(PoolKind::Avg, 3, avg_pad, true), &["add1"]),
        node("max", pool(PoolKind::Max, 2, 0, false), &["avg"]),
        node("cat", Op::Concat, &["max", "max"]),
        node("drop", Op::Dropout, &["cat"]),
        node("relu", Op::Relu, &["drop"]),
        node("gap", Op::GlobalAvgPool, &["relu"]),
        node("flat", Op::Flatten, &["gap"]),
        node("fc", conv(2, 0, false), &["flat"]),
        node("prob", Op::Softmax, &["fc"]),
    ];
    let model = Model {
        graph: Graph {
            nodes,
            input: "in".into(),
            output: "fc".into(),
        },
        layers: vec![
            layer("a", [4, 3, 3, 3]),
            layer("b", [4, 4, 1, 1]),
            layer("fc", [5, 8, 1, 1]),
        ],
        preprocess: Preprocess {
            crop: 16,
            ..Preprocess::torchvision()
        },
    };
    model.validate().expect("the synthetic model is consistent");
    model
}

/// Deterministic pseudo-random generator (64-bit LCG) for the mutation tests.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}
