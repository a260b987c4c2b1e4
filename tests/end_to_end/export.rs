//! `decode` as an exporter: both shipped models, and a 6-bit quantization of
//! Han's, exported to ONNX by the CLI must give in onnxruntime the logits our
//! engine computes (max abs difference <= 1e-3, checked by
//! `tests/onnxruntime_check.py` on the `data/reference` inputs); exported
//! to `.caffemodel` they must read back, with the written `.prototxt`, as the
//! same model. Unknown output extensions are refused.
//!
//! onnxruntime runs in the Python named by `SQZ_PYTHON` (default `python3`);
//! `.ci/install-test-deps` makes one that has it. Without it the ONNX tests
//! fail, saying so: they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{
    han_net, python, reference_input, require_python_modules, run, run_ok, shared, v11_param,
};
use formats::caffemodel::read_caffemodel_path;
use formats::Model;
use formats::{read_model, ReadOptions};
use sqz::engine::forward;

/// Fail unless the test venv has onnxruntime and numpy.
fn require_onnxruntime() {
    require_python_modules("onnxruntime, numpy");
}

/// Export `model` (any format the CLI loads) to ONNX with `decode`, run it
/// in onnxruntime on the reference input of `reference` (a `data/reference`
/// name, `side` pixels square) and compare with our engine's logits (the
/// export's blob named like the model's logits, which is its output unless
/// a final Softmax follows). Returns the check's report (input and output
/// names, output shape).
fn check_in_onnxruntime(model: &Path, reference: &str, side: usize) -> String {
    require_onnxruntime();
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("model.onnx");
    let stdout = run_ok(args!["decode", model, "-o", onnx]);
    assert!(
        stdout.contains(&format!("wrote {}", onnx.display())),
        "{stdout}"
    );

    let input = reference_input(reference, side);
    let source = read_model(model, &ReadOptions::default()).unwrap();
    let ours = forward(&source, &input).unwrap();
    let logits_blob = &source.graph.output;
    assert_eq!(
        ours.data.len(),
        input.shape[0] * 1000,
        "one logit per class and image"
    );
    let logits = dir.path().join("engine.logits.f32");
    let bytes: Vec<u8> = ours.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&logits, bytes).unwrap();

    let input_path = shared().join(format!("data/reference/{reference}.input.f32"));
    let out = onnxruntime_check(&onnx, &input_path, input.shape, &logits, logits_blob);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} in onnxruntime differs from our engine: {report}{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("max abs difference"), "{report}");
    println!("{}: {}", model.display(), report.trim());
    let report = report.into_owned();

    // The check must notice a logit that is off by more than its tolerance.
    let mut wrong = ours.data.clone();
    wrong[input.shape[0] * 1000 / 2] += 2e-3;
    let bytes: Vec<u8> = wrong.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&logits, bytes).unwrap();
    let out = onnxruntime_check(&onnx, &input_path, input.shape, &logits, logits_blob);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a 2e-3 error must fail the check: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    report
}

/// Run `tests/onnxruntime_check.py` on an ONNX model, an input batch of
/// `shape` and the logits its blob `blob` must hold.
fn onnxruntime_check(
    onnx: &Path,
    input: &Path,
    shape: [usize; 4],
    logits: &Path,
    blob: &str,
) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnxruntime_check.py");
    Command::new(python())
        .arg(&script)
        .args(["--blob", blob])
        .args([onnx, input])
        .args(shape.map(|d| d.to_string()))
        .arg(logits)
        .output()
        .expect("cannot run the onnxruntime check")
}

/// The names and output shape the check reports for `model`'s export on
/// `images` reference images: the source's input and output blob names
/// (neither shipped model ends in a Softmax), and `output_dims` after the
/// batch.
fn expected_signature(model: &Path, images: usize, output_dims: &[usize]) -> String {
    let graph = read_model(model, &ReadOptions::default()).unwrap().graph;
    let shape: Vec<String> = std::iter::once(images)
        .chain(output_dims.iter().copied())
        .map(|d| d.to_string())
        .collect();
    format!(
        "input {}, output {} of shape [{}]",
        graph.input,
        graph.output,
        shape.join(", ")
    )
}

#[test]
fn v1_1_exported_to_onnx_runs_the_same_in_onnxruntime() {
    let report = check_in_onnxruntime(&v11_param(), "squeezenet_v1.1", 224);
    let images = reference_input("squeezenet_v1.1", 224).shape[0];
    // ncnn's Flatten gives N x 1000, and so does the export.
    let signature = expected_signature(&v11_param(), images, &[1000]);
    assert!(report.contains(&signature), "{report}");
}

#[test]
fn an_onnx_model_with_a_2d_output_exports_with_its_names_and_rank() {
    // An ONNX source ending in Flatten (as torchvision's SqueezeNet does),
    // its output N x 1000: the export keeps input and output names and rank.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.onnx");
    run_ok(args!["decode", v11_param(), "-o", source]);
    let report = check_in_onnxruntime(&source, "squeezenet_v1.1", 224);
    let images = reference_input("squeezenet_v1.1", 224).shape[0];
    let signature = expected_signature(&source, images, &[1000]);
    assert!(report.contains(&signature), "{report}");
}

#[test]
fn deep_compression_exported_to_onnx_runs_the_same_in_onnxruntime() {
    let report = check_in_onnxruntime(&han_net(), "squeezenet_v1.0-deep-compression", 227);
    let images = reference_input("squeezenet_v1.0-deep-compression", 227).shape[0];
    // Caffe's global pooling output is N x 1000 x 1 x 1.
    let signature = expected_signature(&han_net(), images, &[1000, 1, 1]);
    assert!(report.contains(&signature), "{report}");
}

#[test]
fn quantized_model_exported_to_onnx_runs_the_same_in_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let quantized = dir.path().join("q6.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "6", "-o", quantized]);
    let model = read_model(&quantized, &ReadOptions::default()).unwrap();
    for layer in &model.layers {
        let mut values: Vec<u32> = layer.weights.iter().map(|w| w.to_bits()).collect();
        values.sort_unstable();
        values.dedup();
        assert!(
            values.len() <= 1 << 6,
            "{} has {} distinct weights after 6-bit sharing",
            layer.name,
            values.len()
        );
    }
    check_in_onnxruntime(&quantized, "squeezenet_v1.0-deep-compression", 227);
}

/// Export `model` to `.caffemodel` and read it back with the prototxt the
/// export wrote beside it.
fn caffe_round_trip(model: &Path) -> (Model, Model) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exported.caffemodel");
    let stdout = run_ok(args!["decode", model, "-o", out]);
    let prototxt = dir.path().join("exported.prototxt");
    assert!(
        stdout.contains(&format!("wrote {}", prototxt.display())),
        "{stdout}"
    );
    let back = read_caffemodel_path(&out, Some(&prototxt)).unwrap();
    assert_eq!(
        read_caffemodel_path(&out, None).unwrap(),
        back,
        "the prototxt is the one beside the weights"
    );
    (read_model(model, &ReadOptions::default()).unwrap(), back)
}

#[test]
fn deep_compression_exported_to_caffemodel_reads_back_equal() {
    let (model, back) = caffe_round_trip(&han_net());
    assert_eq!(
        back, model,
        "a Caffe model keeps everything, preprocessing included"
    );
}

#[test]
fn v1_1_exported_to_caffemodel_reads_back_equal_but_for_preprocessing() {
    let (model, back) = caffe_round_trip(&v11_param());
    assert_eq!(back.graph, model.graph);
    assert_eq!(back.layers, model.layers);
    // A prototxt records the input size, not torchvision's normalisation.
    assert_eq!(back.preprocess.crop, model.preprocess.crop);
}

#[test]
fn unknown_output_extensions_are_refused_naming_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("model.pb");
    let result = run(args!["decode", han_net(), "-o", out]);
    assert_eq!(result.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for choice in [".sqz", ".onnx", ".caffemodel"] {
        assert!(stderr.contains(choice), "{stderr}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}
