//! The same `compress` command writes byte-identical files whatever the
//! number of threads: k-means++ seeding, k-means and calibration (Hessians,
//! OBS/GPTQ, the engine's forward passes) must not depend on how rayon
//! splits the work.

use std::path::Path;

use crate::common::{images, run_env, v11_param};

/// Runs `compress` with `options` on SqueezeNet v1.1 under 1 and 2 rayon
/// threads and asserts both outputs are the same bytes.
fn same_bytes_on_1_and_2_threads(options: &[&str], dir: &Path) {
    let model = v11_param();
    let write = |threads: &str| {
        let out = dir.join(format!("threads{threads}.sqz"));
        let mut args: Vec<&std::ffi::OsStr> = args![
            "compress",
            model,
            "--sparsity",
            "0.5",
            "--bits",
            "4",
            "-o",
            out
        ]
        .to_vec();
        args.extend(options.iter().map(std::ffi::OsStr::new));
        let result = run_env(&args, &[("RAYON_NUM_THREADS", threads)]);
        assert!(
            result.status.success(),
            "compress {options:?} on {threads} threads failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
    };
    let one = write("1");
    let two = write("2");
    assert!(!one.is_empty());
    let first_difference = one.iter().zip(&two).position(|(a, b)| a != b);
    assert!(
        one == two,
        "compress {options:?}: {} bytes on 1 thread, {} on 2, first difference at byte {first_difference:?}",
        one.len(),
        two.len()
    );
}

#[test]
fn kmeans_plus_plus_is_thread_count_independent() {
    let dir = tempfile::tempdir().expect("temp dir");
    same_bytes_on_1_and_2_threads(&["--init", "kmeans++", "--seed", "5"], dir.path());
}

#[test]
fn calibration_is_thread_count_independent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let calib = images();
    let calib = calib.to_str().expect("UTF-8 path to the shared images");
    // --no-cache: both runs measure the damage that places the sparsity.
    same_bytes_on_1_and_2_threads(
        &["--calib", calib, "--calib-count", "16", "--no-cache"],
        dir.path(),
    );
}
