//! Helpers shared by the end-to-end tests: where the real models and
//! images are, and how to run the binary. The shared data folder is
//! `$SQZ_SHARED`, else `../shared` beside the repository; when it is
//! missing the tests fail, saying where they looked — they never skip.

mod crc32;
pub mod synthetic;

pub use crc32::crc32;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder; panics with a clear message when it is missing.
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("SQZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    for needed in [
        "data/imagenet-sample/labels.tsv",
        "data/reference",
        "models",
    ] {
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
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    run_env(args, &[])
}

thread_local! {
    /// The running test's cache folder: libtest runs each test on a thread
    /// of its own, so this is one folder per test, removed when it ends.
    static TEST_CACHE: tempfile::TempDir =
        tempfile::tempdir().expect("cannot make a cache folder for the test");
}

/// A `sqz-compress` command whose cache (`XDG_CACHE_HOME`, where
/// sensitivity measurements are kept) is the running test's own temporary
/// folder, so tests never read or fill the user's `~/.cache/sqz` and never
/// see each other's measurements; calls within one test share it.
pub fn sqz_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sqz-compress"));
    TEST_CACHE.with(|cache| command.env("XDG_CACHE_HOME", cache.path()));
    command
}

/// Run `sqz-compress` with `args` and extra environment variables (e.g.
/// `RAYON_NUM_THREADS`).
pub fn run_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> Output {
    sqz_command()
        .args(args)
        .env("SQZ_SHARED", shared())
        .envs(env.iter().copied())
        .output()
        .expect("cannot start sqz-compress")
}

/// Run `sqz-compress` with `args` in the test's own environment, without
/// looking for the shared data folder: for hermetic tests, which must pass
/// whatever `SQZ_SHARED` says.
pub fn run_hermetic<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    sqz_command()
        .args(args)
        .output()
        .expect("cannot start sqz-compress")
}

/// Run `sqz-compress` and return its stdout, failing the test with its
/// stderr when it does not succeed.
pub fn run_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = run(args);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "sqz-compress {shown:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The reference input batch of a model (`v1.1` or `v1.0` name as in
/// `data/reference`), as an engine tensor.
pub fn reference_input(name: &str, side: usize) -> sqz::engine::Tensor {
    let data = read_f32(&shared().join(format!("data/reference/{name}.input.f32")));
    let n = data.len() / (3 * side * side);
    sqz::engine::Tensor {
        shape: [n, 3, side, side],
        data,
    }
}

/// A PNG file announcing a `width x height` 8-bit RGB image: signature, a
/// valid IHDR chunk and an empty IDAT chunk (decoders read the header up to
/// the first IDAT), no pixel data.
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", header), (b"IDAT", Vec::new())] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

/// Run the binary expecting a user error: exit code 1 and exactly one
/// stderr line (besides `note:` lines) starting with `error: `. Returns
/// that line.
pub fn run_user_error<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert_eq!(
        out.status.code(),
        Some(1),
        "sqz-compress {shown:?}: expected exit 1, stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("note: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

/// The Python interpreter of the test venv (`SQZ_PYTHON`, default
/// `python3`; `.ci/install-test-deps` makes one and prints its path).
pub fn python() -> String {
    std::env::var("SQZ_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fail unless [`python`] can import `modules` (e.g. `"onnxruntime, numpy"`):
/// the tests that need them fail, saying so, and never skip.
pub fn require_python_modules(modules: &str) {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return,
        Ok(out) => String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned(),
        Err(e) => e.to_string(),
    };
    panic!(
        "{modules} not importable by {python} ({problem}): run .ci/install-test-deps and set SQZ_PYTHON to the Python it prints"
    );
}

/// Run `sensitivity MODEL` on `calib_count` of the sample images with the
/// given sparsity and bit ladders and `extra` arguments, and return its
/// stdout (failing the test if it fails).
pub fn run_sensitivity(
    model: &Path,
    calib_count: usize,
    sparsity_levels: &str,
    bit_levels: &str,
    extra: &[&std::ffi::OsStr],
) -> String {
    let mut arguments: Vec<&std::ffi::OsStr> = Vec::new();
    let count = calib_count.to_string();
    let images = images();
    arguments.extend(args![
        "sensitivity",
        model,
        "--calib",
        images,
        "--calib-count",
        count,
        "--sparsity-levels",
        sparsity_levels,
        "--bit-levels",
        bit_levels
    ]);
    arguments.extend(extra);
    run_ok(&arguments)
}

/// Run `compress MODEL --target-size TARGET` into `out` with few images
/// and levels (calibration on `calib_count` images, sensitivity on 2,
/// sparsities `sparsity_levels`, 6 or 4 bits), and check what every
/// target-size run must give: a file of at most `target` bytes, as the
/// JSON report says, holding a plan entry for each of the model's
/// `layers` with the bits and (at least) the sparsity the plan chose.
/// Returns the file's size.
pub fn compress_to_target(
    model: &Path,
    target: u64,
    out: &Path,
    calib_count: usize,
    sparsity_levels: &str,
    layers: usize,
) -> u64 {
    let stdout = run_ok(args![
        "compress",
        model,
        "--target-size",
        target.to_string(),
        "--calib",
        images(),
        "--calib-count",
        calib_count.to_string(),
        "--sensitivity-count",
        "2",
        "--sparsity-levels",
        sparsity_levels,
        "--bit-levels",
        "6,4",
        "--json",
        "-o",
        out
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let bytes = std::fs::metadata(out).expect("output written").len();
    println!("{}: fitted to {target}: {bytes} bytes", model.display());
    assert!(
        bytes <= target,
        "{bytes} bytes is over the {target}-byte budget"
    );
    assert_eq!(report["file_bytes"].as_u64(), Some(bytes));
    let plan = report["plan"]["layers"].as_array().expect("the plan");
    assert_eq!(plan.len(), layers);
    for (p, l) in plan
        .iter()
        .zip(report["layers"].as_array().expect("layers"))
    {
        assert_eq!(p["bits"], l["bits"], "{p} vs {l}");
        let planned = p["sparsity"].as_f64().unwrap();
        let reached = l["sparsity"].as_f64().unwrap();
        assert!(reached + 1e-4 >= planned, "{p} vs {l}");
    }
    bytes
}
