//! The hand-off to PyTorch (`formats/SAFETENSORS.md`) through the CLI:
//! `decode -o OUT.safetensors` of Han's model shared at 6 bits and of a
//! pruned v1.1 is loaded by Python's `safetensors` package
//! (`tests/safetensors_check.py`), which rebuilds the dense weights from
//! mask, codes and shared values and compares them with our decoded
//! model; a file handed back with trained shared values is read by the
//! commands with `--graph`, and `quantize` keeps its codes.
//!
//! Python runs as in `tests/export.rs` (`SQZ_PYTHON`); without `numpy` and
//! `safetensors` these tests fail, saying so: they never skip.

use std::path::Path;
use std::process::Command;

use crate::common::{han_net, python, require_python_modules, run_ok, run_user_error, v11_param};
use formats::{read_model, Model, ReadOptions};

fn load(path: &Path) -> Model {
    read_model(path, &ReadOptions::default()).unwrap()
}

/// Run `tests/safetensors_check.py` on `weights` against `model`'s
/// weights, with `extra` arguments; returns its stdout.
fn python_check(weights: &Path, model: &Model, extra: &[&std::ffi::OsStr]) -> String {
    require_python_modules("numpy, safetensors");
    let expected = weights.with_extension("expected.f32");
    let bytes: Vec<u8> = model
        .layers
        .iter()
        .flat_map(|l| l.weights.iter().flat_map(|w| w.to_le_bytes()))
        .collect();
    std::fs::write(&expected, bytes).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/safetensors_check.py");
    let out = Command::new(python())
        .arg(script)
        .args([weights, &expected])
        .args(extra)
        .output()
        .expect("cannot run the safetensors check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Python's rebuild differs: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn han_6_bit_goes_to_python_and_comes_back_with_trained_shared_values() {
    let dir = tempfile::tempdir().unwrap();
    let q6 = dir.path().join("q6.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "6", "-o", q6]);
    let weights = dir.path().join("q6.safetensors");
    run_ok(args!["decode", q6, "-o", weights]);
    let model = load(&q6);

    // Python rebuilds our weights and hands back shared values x 1.5.
    let back = dir.path().join("back.safetensors");
    let report = python_check(&weights, &model, args!["1.5", back]);
    assert!(report.contains("26 layers (26 with codes)"), "{report}");

    let decoded = dir.path().join("back.sqz");
    run_ok(args!["decode", back, "--graph", q6, "-o", decoded]);
    let trained = load(&decoded);
    for (orig, new) in model.layers.iter().zip(&trained.layers) {
        let expected: Vec<f32> = orig.weights.iter().map(|w| w * 1.5).collect();
        assert_eq!(new.weights, expected, "layer {}", orig.name);
        assert_eq!(new.bias, orig.bias);
    }
    assert_eq!(trained.graph, model.graph);

    // Re-sharing the returned weights at 6 bits keeps every code.
    let requantized = dir.path().join("requantized.sqz");
    run_ok(args![
        "quantize",
        back,
        "--graph",
        q6,
        "--bits",
        "6",
        "-o",
        requantized
    ]);
    assert_eq!(load(&requantized).layers, trained.layers);
}

#[test]
fn pruned_v1_1_goes_to_python_and_reads_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("pruned.sqz");
    run_ok(args![
        "prune",
        v11_param(),
        "--sparsity",
        "0.5",
        "-o",
        pruned
    ]);
    let weights = dir.path().join("pruned.safetensors");
    run_ok(args!["decode", pruned, "-o", weights]);
    let model = load(&pruned);
    let report = python_check(&weights, &model, &[]);
    assert!(report.contains("26 layers"), "{report}");

    let again = dir.path().join("again.sqz");
    run_ok(args!["decode", weights, "--graph", pruned, "-o", again]);
    assert_eq!(load(&again), model);
}

#[test]
fn safetensors_without_a_fitting_graph_are_user_errors() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("han.safetensors");
    run_ok(args!["decode", han_net(), "-o", weights]);

    let e = run_user_error(args!["inspect", weights]);
    assert!(
        e.contains("holds only weights") && e.contains("--graph"),
        "{e}"
    );
    let e = run_user_error(args!["inspect", weights, "--graph", v11_param()]);
    assert!(e.contains("belongs to no layer of the graph"), "{e}");
    let e = run_user_error(args!["inspect", han_net(), "--graph", v11_param()]);
    assert!(e.contains("only applies to safetensors"), "{e}");
    let e = run_user_error(args!["inspect", weights, "--graph", weights]);
    assert!(e.contains("holds only weights"), "{e}");
    // The graph model is an input too: -o may not overwrite it.
    let graph = dir.path().join("graph.sqz");
    run_ok(args!["decode", han_net(), "-o", graph]);
    let e = run_user_error(args!["decode", weights, "--graph", graph, "-o", graph]);
    assert!(e.contains("is also an input"), "{e}");
}
