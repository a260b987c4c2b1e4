//! Calibrated runs that cannot fit in memory are refused before any work,
//! with one line naming what fits, and write nothing.

use crate::common::*;

#[test]
fn a_calibrated_run_over_the_memory_limit_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.sqz");
    let error = run_user_error(args![
        "compress",
        v11_param(),
        "--sparsity",
        "0.5",
        "--bits",
        "6",
        "--calib",
        images(),
        "--max-memory",
        "100000000",
        "-o",
        out
    ]);
    assert!(
        error.contains("calibrated compression on 256 images needs about")
            && error.contains("use at most"),
        "{error}"
    );
    assert!(!out.exists(), "nothing is written");

    let error = run_user_error(args![
        "sensitivity",
        v11_param(),
        "--calib",
        images(),
        "--max-memory",
        "1000",
    ]);
    assert!(
        error.contains("sensitivity analysis on 128 images needs about")
            && error.contains("even one image does not fit"),
        "{error}"
    );
}
