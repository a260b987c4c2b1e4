//! The classic CNN families of issue 12 against onnxruntime: AlexNet (in
//! torchvision's and in BVLC Caffe's layout), VGG-16, GoogLeNet, ResNet-18,
//! ResNet-50 and MobileNetV2, built with random weights by
//! `tests/models/build_classic_cnns.py` as a PyTorch export writes them.
//! For each: our engine's logits on the ONNX source are within 1e-4
//! (relative to the largest logit) of onnxruntime's, with the same top-1
//! class; `compress --sparsity 0.5 --bits 6` -> `.sqz` -> `decode -o
//! x.onnx` runs in onnxruntime as our engine runs the `.sqz`, and the
//! export keeps the source's input and output names and its `N x 1000`
//! output (the BVLC AlexNet's a final Softmax `prob`; the logits before it
//! are compared). VGG-16 is built at a quarter of its width (same layers,
//! 9.4 M instead of 138 M weights) to keep CI fast; the full-size check is
//! an ignored test. MobileNetV2 at a quarter width also goes through
//! `sensitivity`, `compress --target-size` and `report`, and ResNet-18
//! checks that calibrated runs over the memory limit are refused first.
//!
//! Python (`SQZ_PYTHON`, see `.ci/install-test-deps`) needs onnxruntime,
//! numpy and onnx; without them the tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{
    compress_to_target, images, python, require_python_modules, run_env, run_ok, run_sensitivity,
};
use formats::{read_model, ReadOptions};
use sqz::engine::{forward, Tensor};

/// Images per batch compared.
const IMAGES: usize = 2;
/// Largest difference allowed, relative to onnxruntime's largest value.
const RELATIVE_TOLERANCE: &str = "1e-4";

/// Build `family` with `tests/models/build_classic_cnns.py` into `dir`.
pub(crate) fn build(family: &str, width_divisor: usize, dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models/build_classic_cnns.py");
    let out = dir.join(format!("{family}.onnx"));
    let status = Command::new(python())
        .arg(script)
        .args(["--family", family, "--width-divisor"])
        .arg(width_divisor.to_string())
        .arg("--out")
        .arg(&out)
        .output()
        .expect("cannot run the model builder");
    assert!(
        status.status.success(),
        "building {family} failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

/// A batch of `IMAGES` images of `side` pixels with values spread like
/// normalized pixels, from a fixed linear congruential sequence.
fn random_input(side: usize) -> Tensor {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let data = (0..IMAGES * 3 * side * side)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect();
    Tensor {
        shape: [IMAGES, 3, side, side],
        data,
    }
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Our engine's output for `model` (any format) on `input`.
fn engine_logits(model: &Path, input: &Tensor) -> Vec<f32> {
    let model = read_model(model, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let out = forward(&model, input).unwrap_or_else(|e| panic!("{}: {e}", model.graph.output));
    assert_eq!(
        out.data.len(),
        IMAGES * 1000,
        "one logit per class and image"
    );
    out.data
}

/// Run `tests/onnxruntime_check.py` with the relative tolerance and top-1
/// check on `onnx`, comparing its logits blob (the output, or the input of
/// a final Softmax) with `logits`; returns whether it passed and its
/// report.
fn onnxruntime_agrees(onnx: &Path, input: &Path, side: usize, logits: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnxruntime_check.py");
    let blob = read_model(onnx, &ReadOptions::default())
        .unwrap()
        .graph
        .output;
    let out = Command::new(python())
        .arg(script)
        .args(["--relative", RELATIVE_TOLERANCE, "--top1", "--blob", &blob])
        .args([onnx, input])
        .args([IMAGES, 3, side, side].map(|d| d.to_string()))
        .arg(logits)
        .output()
        .expect("cannot run the onnxruntime check");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "the check could not run: {report}"
    );
    (out.status.success(), report)
}

/// The whole check of one family (see the module documentation); the
/// source's output is called `output`.
fn check_family(family: &str, width_divisor: usize, side: usize, output: &str) {
    require_python_modules("onnxruntime, numpy, onnx");
    let dir = tempfile::tempdir().unwrap();
    let source = build(family, width_divisor, dir.path());
    let input = random_input(side);
    let input_path = dir.path().join("input.f32");
    write_f32(&input_path, &input.data);
    let signature = format!("input input, output {output} of shape [{IMAGES}, 1000]");

    let logits = dir.path().join("source.logits.f32");
    let ours = engine_logits(&source, &input);
    write_f32(&logits, &ours);
    let (ok, report) = onnxruntime_agrees(&source, &input_path, side, &logits);
    assert!(
        ok,
        "{family}: our engine differs from onnxruntime: {report}"
    );
    println!("{family} source: {}", report.trim().replace('\n', "; "));

    // The check notices a logit off by ten times the tolerance.
    let largest = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut wrong = ours.clone();
    wrong[IMAGES * 1000 / 2] += largest * 1e-3;
    write_f32(&logits, &wrong);
    let (ok, report) = onnxruntime_agrees(&source, &input_path, side, &logits);
    assert!(!ok, "{family}: a 1e-3 relative error passed: {report}");

    let compressed = dir.path().join("compressed.sqz");
    let exported = dir.path().join("exported.onnx");
    run_ok(args![
        "compress",
        source,
        "--sparsity",
        "0.5",
        "--bits",
        "6",
        "-o",
        compressed
    ]);
    run_ok(args!["decode", compressed, "-o", exported]);
    let decoded_logits = dir.path().join("decoded.logits.f32");
    write_f32(&decoded_logits, &engine_logits(&compressed, &input));
    let (ok, report) = onnxruntime_agrees(&exported, &input_path, side, &decoded_logits);
    assert!(
        ok,
        "{family}: the decoded export differs from our engine on the .sqz: {report}"
    );
    assert!(report.contains(&signature), "{family}: {report}");
    println!("{family} compressed: {}", report.trim().replace('\n', "; "));
}

#[test]
fn alexnet_matches_onnxruntime() {
    check_family("alexnet", 1, 224, "logits");
}

#[test]
fn bvlc_caffe_alexnet_with_lrn_and_groups_matches_onnxruntime() {
    check_family("alexnet-caffe", 1, 227, "prob");
}

#[test]
fn vgg16_at_quarter_width_matches_onnxruntime() {
    check_family("vgg16", 4, 224, "logits");
}

/// The full-size VGG-16 (138 M weights, 553 MB of float32), for the scale
/// work; not run by CI: `cargo test --release -p sqz-compress --test
/// end_to_end -- --ignored vgg16_full`.
#[test]
#[ignore = "full-size VGG-16: minutes and gigabytes; run with --ignored"]
fn vgg16_full_size_matches_onnxruntime() {
    check_family("vgg16", 1, 224, "logits");
}

#[test]
fn googlenet_matches_onnxruntime() {
    check_family("googlenet", 1, 224, "logits");
}

#[test]
fn resnet18_matches_onnxruntime() {
    check_family("resnet18", 1, 224, "logits");
}

#[test]
fn resnet50_matches_onnxruntime() {
    check_family("resnet50", 1, 224, "logits");
}

#[test]
fn mobilenetv2_matches_onnxruntime() {
    check_family("mobilenetv2", 1, 224, "logits");
}

#[test]
fn bvlc_caffe_alexnet_exports_to_caffe_and_reads_back_the_same() {
    // Quarter width: the same layers (LRN, two groups, InnerProduct).
    require_python_modules("onnxruntime, numpy, onnx");
    let dir = tempfile::tempdir().unwrap();
    let source = build("alexnet-caffe", 4, dir.path());
    let caffemodel = dir.path().join("alexnet.caffemodel");
    run_ok(args!["decode", source, "-o", caffemodel]);
    let prototxt = std::fs::read_to_string(dir.path().join("alexnet.prototxt")).unwrap();
    for expected in [
        "type: \"LRN\"",
        "group: 2",
        "type: \"InnerProduct\"",
        "type: \"Softmax\"",
    ] {
        assert!(prototxt.contains(expected), "{expected}: {prototxt}");
    }
    let original = read_model(&source, &ReadOptions::default()).unwrap();
    let back = read_model(&caffemodel, &ReadOptions::default()).unwrap();
    assert_eq!(back.graph, original.graph);
    assert_eq!(back.layers, original.layers);
    let input = random_input(227);
    assert_eq!(
        engine_logits(&caffemodel, &input),
        engine_logits(&source, &input)
    );
}

/// Layers of `model` (any format), in order.
fn layer_names(model: &Path) -> Vec<String> {
    let model = read_model(model, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    model.layers.into_iter().map(|l| l.name).collect()
}

/// `sensitivity`, `compress --target-size` and `report` on a family other
/// than SqueezeNet: MobileNetV2 at a quarter of its width (53 layers,
/// depthwise ones among them), with few images and levels to stay fast.
#[test]
fn sensitivity_target_size_and_report_run_on_mobilenetv2() {
    require_python_modules("numpy, onnx");
    let dir = tempfile::tempdir().unwrap();
    let source = build("mobilenetv2", 4, dir.path());
    let names = layer_names(&source);
    assert!(names.len() >= 50, "{} layers", names.len());

    let chart = dir.path().join("sensitivity.svg");
    let stdout = run_sensitivity(
        &source,
        2,
        "0.5,0.9",
        "4",
        args!["--chart", chart, "--json"],
    );
    let measured: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let layers = measured["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), names.len());
    for (layer, name) in layers.iter().zip(&names) {
        assert_eq!(layer["name"].as_str(), Some(name.as_str()));
        for trial in ["prune", "quantize"] {
            for level in layer[trial].as_array().expect("trials") {
                // Random weights barely change the class distribution: a
                // KL divergence can round to a hair below zero.
                let kl = level["damage"]["kl"].as_f64().expect("a KL divergence");
                assert!(kl.is_finite() && kl > -1e-12, "{name}: {level}");
            }
        }
    }
    let svg = std::fs::read_to_string(&chart).expect("the chart was written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    let fp32_bytes = std::fs::metadata(&source).unwrap().len();
    let target = fp32_bytes / 12;
    let fitted = dir.path().join("fitted.sqz");
    compress_to_target(&source, target, &fitted, 4, "0.5,0.8", names.len());

    let page = dir.path().join("report");
    run_ok(args![
        "report",
        source,
        fitted,
        "--images",
        images(),
        "--limit",
        "2",
        "-o",
        page
    ]);
    let html = std::fs::read_to_string(page.join("index.html")).expect("the report page");
    for name in &names {
        assert!(html.contains(name.as_str()), "the report lacks {name}");
    }
}

/// A calibrated run on a bigger family that does not fit the memory
/// allowed is refused with one line before any work: no output, no
/// sensitivity measurement stored.
#[test]
fn calibrated_runs_over_the_memory_limit_on_resnet18_are_refused_before_work() {
    require_python_modules("numpy, onnx");
    let dir = tempfile::tempdir().unwrap();
    let source = build("resnet18", 4, dir.path());
    let cache = dir.path().join("cache");
    let out = dir.path().join("never.sqz");
    let chart = dir.path().join("never.svg");
    let refused = |command: &[&std::ffi::OsStr]| {
        let result = run_env(command, &[("XDG_CACHE_HOME", cache.to_str().unwrap())]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("needs about") && stderr.contains("are available"),
            "{stderr}"
        );
        assert!(!out.exists() && !chart.exists(), "nothing is written");
        assert!(!cache.exists(), "no measurement was stored");
    };
    refused(args![
        "compress",
        source,
        "--target-size",
        "100000",
        "--calib",
        images(),
        "--max-memory",
        "20000000",
        "-o",
        out
    ]);
    refused(args![
        "sensitivity",
        source,
        "--calib",
        images(),
        "--max-memory",
        "20000000",
        "--chart",
        chart
    ]);
}

/// Python that writes a small ONNX classifier whose strided convolution
/// pads with `auto_pad = SAME_UPPER` (9x9 input, 3x3 kernel, stride 2:
/// output 5x5, one row and column of padding on each side), to `argv[1]`.
const SAME_PAD_MODEL: &str = r#"
import sys
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
rng = np.random.default_rng(7)
def weights(name, *shape):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
nodes = [
    helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["c"], name="conv",
                     kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
    helper.make_node("Relu", ["c"], ["r"], name="relu"),
    helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
    helper.make_node("Flatten", ["g"], ["f"], name="flat", axis=1),
    helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
]
graph = helper.make_graph(
    nodes, "same_pad",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 9, 9])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
    [weights("conv.weight", 8, 3, 3, 3), weights("conv.bias", 8),
     weights("fc.weight", 1000, 8), weights("fc.bias", 1000)],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
"#;

/// `auto_pad = SAME_UPPER` with a stride, whose padding the reader computes
/// from the input size, runs in our engine as in onnxruntime.
#[test]
fn same_auto_pad_with_a_stride_matches_onnxruntime() {
    require_python_modules("onnxruntime, numpy, onnx");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("same_pad.onnx");
    let out = Command::new(python())
        .args(["-c", SAME_PAD_MODEL])
        .arg(&model)
        .output()
        .expect("cannot run Python");
    assert!(
        out.status.success(),
        "building the model failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let side = 9;
    let input = random_input(side);
    let input_path = dir.path().join("input.f32");
    write_f32(&input_path, &input.data);
    let logits = dir.path().join("logits.f32");
    write_f32(&logits, &engine_logits(&model, &input));
    let (ok, report) = onnxruntime_agrees(&model, &input_path, side, &logits);
    assert!(ok, "SAME_UPPER padding differs from onnxruntime: {report}");
}
