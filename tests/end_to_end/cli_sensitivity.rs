//! End-to-end tests of `sensitivity` and `compress --target-size` on the
//! real SqueezeNet v1.1, with few images and levels so they stay fast.

use crate::common::*;
use formats::{read_model, ReadOptions};

fn v11_layer_names() -> Vec<String> {
    let model =
        read_model(&v11_param(), &ReadOptions::default()).unwrap_or_else(|e| panic!("{e:#}"));
    model.layers.iter().map(|l| l.name.clone()).collect()
}

#[test]
fn sensitivity_prints_one_row_per_layer_and_draws_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("sensitivity.svg");
    let stdout = run_sensitivity(&v11_param(), 2, "0.5,0.9", "3", args!["--chart", chart]);
    let names = v11_layer_names();
    let lines: Vec<&str> = stdout.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("layer"))
        .expect("a header line");
    let rows = &lines[header + 1..];
    assert_eq!(rows.len(), names.len(), "one row per layer:\n{stdout}");
    for (row, name) in rows.iter().zip(&names) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[0], name);
        // weights, then KL at two sparsities and one bit width.
        assert_eq!(cells.len(), 5, "{row}");
        for kl in &cells[2..] {
            let kl: f64 = kl.parse().unwrap_or_else(|_| panic!("bad KL in {row}"));
            assert!(kl.is_finite() && kl >= 0.0, "{row}");
        }
    }
    let svg = std::fs::read_to_string(&chart).expect("the chart was written");
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "not an SVG document"
    );
    assert_eq!(svg.matches("<svg").count(), 1);
    for name in &names {
        assert!(
            svg.contains(&format!(">\n{name}\n<")) || svg.contains(&format!(">{name}<")),
            "legend lacks {name}"
        );
    }
}

#[test]
fn sensitivity_json_has_every_level_of_every_layer() {
    let stdout = run_sensitivity(&v11_param(), 1, "0.6", "5,2", args!["--json"]);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    let layers = report["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), v11_layer_names().len());
    for l in layers {
        assert_eq!(l["prune"].as_array().map(Vec::len), Some(1));
        assert_eq!(l["quantize"].as_array().map(Vec::len), Some(2));
        let agreement = l["quantize"][1]["damage"]["agreement"]
            .as_f64()
            .expect("agreement");
        assert!((0.0..=1.0).contains(&agreement));
    }
}

#[test]
fn compress_to_a_target_size_never_exceeds_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fitted.sqz");
    let layers = v11_layer_names().len();
    compress_to_target(&v11_param(), 481_280, &out, 6, "0.5,0.7", layers);
}

#[test]
fn an_impossible_target_size_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.sqz");
    let result = run(args![
        "compress",
        v11_param(),
        "--target-size",
        "20000",
        "--calib",
        images(),
        "--calib-count",
        "2",
        "--sensitivity-count",
        "1",
        "--sparsity-levels",
        "0.9",
        "--bit-levels",
        "2",
        "-o",
        out
    ]);
    assert!(!result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("budget") && stderr.contains("20000"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn target_size_needs_calibration_images() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(args![
        "compress",
        v11_param(),
        "--target-size",
        "400000",
        "-o",
        dir.path().join("x.sqz")
    ]);
    assert!(!result.status.success());
    assert!(String::from_utf8_lossy(&result.stderr).contains("--calib"));
}

/// Trials run in parallel, from saved activations: the measured damage must
/// not depend on the thread count.
#[test]
fn sensitivity_is_thread_count_independent() {
    let measure = |threads: &str| {
        let result = run_env(
            args![
                "sensitivity",
                v11_param(),
                "--calib",
                images(),
                "--calib-count",
                "4",
                "--sparsity-levels",
                "0.5,0.8",
                "--bit-levels",
                "6,3",
                "--json",
                "--no-cache"
            ],
            &[("RAYON_NUM_THREADS", threads)],
        );
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        String::from_utf8(result.stdout).expect("UTF-8 JSON")
    };
    let one = measure("1");
    assert!(one.contains("\"kl\""), "{one}");
    assert_eq!(one, measure("2"));
}

/// Before the first trial, sensitivity analysis says how long it may take:
/// the estimate (from the model's shapes) is on stderr while the process
/// is still running and has printed no result. The run is stopped there.
#[test]
fn sensitivity_announces_its_estimated_time_before_the_work() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = sqz_command()
        .args(args![
            "sensitivity",
            v11_param(),
            "--calib",
            images(),
            "--no-cache"
        ])
        .env("SQZ_SHARED", shared())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start sqz-compress");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut estimate = None;
    for line in stderr.split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&line).into_owned();
        if line.contains("by an estimate from the shapes") {
            estimate = Some(line);
            break;
        }
        seen.push(line);
    }
    let still_running = child.try_wait().expect("the child can be polled").is_none();
    child.kill().ok();
    let output = child.wait_with_output().expect("the child ends");
    let estimate = estimate.unwrap_or_else(|| panic!("no estimate on stderr: {seen:?}"));
    assert!(
        estimate.contains("26 layers x 14 levels on 128 images"),
        "{estimate}"
    );
    assert!(estimate.contains("of CPU"), "{estimate}");
    assert!(still_running, "the estimate came only after the run ended");
    assert!(output.stdout.is_empty(), "a result before the estimate");
}
