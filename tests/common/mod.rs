//! Helpers shared by the end-to-end tests: where the real models and
//! images are, and how to run the binary. The shared data folder is
//! `$SQZ_SHARED`, else `../shared` beside the repository; when it is
//! missing the tests fail, saying where they looked — they never skip.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder; panics with a clear message when it is missing.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("SQZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    for needed in ["data/imagenet-sample/labels.tsv", "data/reference", "models"] {
        assert!(
            dir.join(needed).exists(),
            "shared data not found: {} is missing (set SQZ_SHARED to the shared data folder)",
            dir.join(needed).display()
        );
    }
    dir
}

/// torchvision's SqueezeNet v1.1 in ncnn form.
pub fn v11_param() -> PathBuf {
    shared().join("models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param")
}

/// Han's Deep Compression SqueezeNet v1.0.
pub fn han_net() -> PathBuf {
    shared().join("models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net")
}

/// The labelled ImageNet sample folder.
pub fn images() -> PathBuf {
    shared().join("data/imagenet-sample")
}

/// Run `sqz-compress` with `args`.
pub fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sqz-compress"))
        .args(args)
        .env("SQZ_SHARED", shared())
        .output()
        .expect("cannot start sqz-compress")
}

/// Run `sqz-compress` and return its stdout, failing the test with its
/// stderr when it does not succeed.
pub fn run_ok(args: &[&std::ffi::OsStr]) -> String {
    let out = run(args);
    assert!(out.status.success(), "sqz-compress {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Shorthand to build argument lists of paths and strings.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new(&$a)),*] };
}

/// Little-endian float32 file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The reference input batch of a model (`v1.1` or `v1.0` name as in
/// `data/reference`), as an engine tensor.
pub fn reference_input(name: &str, side: usize) -> sqz::engine::Tensor {
    let data = read_f32(&shared().join(format!("data/reference/{name}.input.f32")));
    let n = data.len() / (3 * side * side);
    sqz::engine::Tensor { shape: [n, 3, side, side], data }
}
