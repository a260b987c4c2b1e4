//! End-to-end tests of the compression commands on the real SqueezeNets:
//! `prune`, `quantize`, `compress`, `decode` and `eval --reference`.

use std::path::Path;

use crate::common::*;
use formats::Model;
use formats::{read_model, ReadOptions};
use sqz::engine::forward;

fn load(path: &Path) -> Model {
    read_model(path, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("output exists").len()
}

fn distinct_nonzero(weights: &[f32]) -> usize {
    let mut v: Vec<u32> = weights
        .iter()
        .filter(|w| **w != 0.0)
        .map(|w| w.to_bits())
        .collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn han_model_reencoded_at_8_bits_is_exact_and_smaller_than_his_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("han8.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "8", "-o", out]);
    let bytes = file_len(&out);
    println!(
        "Han's model re-encoded at 8 bits: {bytes} bytes (his .net: {})",
        file_len(&han_net())
    );
    assert!(bytes <= 550_000, "{bytes} bytes");
    let original = load(&han_net());
    let reencoded = load(&out);
    assert_eq!(
        original.layers, reencoded.layers,
        "weights and biases must be identical"
    );
    let input = reference_input("squeezenet_v1.0-deep-compression", 227);
    let bits = |m: &Model| {
        forward(m, &input)
            .unwrap()
            .data
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bits(&original),
        bits(&reencoded),
        "logits must be identical"
    );
}

#[test]
fn han_model_at_6_bits_fits_the_papers_470_kb() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("han6.sqz");
    let report = json(&run_ok(args![
        "quantize",
        han_net(),
        "--bits",
        "6",
        "--json",
        "-o",
        out
    ]));
    let bytes = file_len(&out);
    println!("Han's model at 6 bits: {bytes} bytes");
    assert!(bytes <= 481_280, "{bytes} bytes");
    assert_eq!(report["file_bytes"].as_u64(), Some(bytes));
    let original = load(&han_net());
    let model = load(&out);
    for (q, o) in model.layers.iter().zip(&original.layers) {
        assert!(
            distinct_nonzero(&q.weights) <= 63,
            "{}: 6 bits leave 63 shared values besides zero",
            q.name
        );
        for (a, b) in q.weights.iter().zip(&o.weights) {
            assert_eq!(
                *a == 0.0,
                *b == 0.0,
                "{}: quantization must keep the pruning mask",
                q.name
            );
        }
    }
}

/// Entropy-constrained sharing (the default `--entropy-weight`) codes
/// v1.1's continuous weights smaller than plain k-means at the same bits
/// (531,904 against 560,904 bytes at 4 bits when written), with no more shared
/// values per layer.
#[test]
fn entropy_constrained_sharing_codes_smaller_than_plain_kmeans() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared.sqz");
    let plain = dir.path().join("plain.sqz");
    run_ok(args!["quantize", v11_param(), "--bits", "4", "-o", shared]);
    run_ok(args![
        "quantize",
        v11_param(),
        "--bits",
        "4",
        "--entropy-weight",
        "0",
        "-o",
        plain
    ]);
    let (bytes, plain_bytes) = (file_len(&shared), file_len(&plain));
    println!("v1.1 at 4 bits: {bytes} bytes, {plain_bytes} with plain k-means");
    assert!(
        (bytes as f64) < 0.98 * plain_bytes as f64,
        "{bytes} vs {plain_bytes}"
    );
    for layer in &load(&shared).layers {
        assert!(distinct_nonzero(&layer.weights) <= 16, "{}", layer.name);
    }
}

#[test]
fn prune_then_quantize_chains_and_keeps_the_mask() {
    let dir = tempfile::tempdir().unwrap();
    let pruned = dir.path().join("pruned.sqz");
    let small = dir.path().join("small.sqz");
    let report = json(&run_ok(args![
        "prune",
        v11_param(),
        "--sparsity",
        "0.7",
        "--layer-sparsity",
        "convrelu_0=0",
        "--json",
        "-o",
        pruned
    ]));
    let model = load(&pruned);
    for (layer, row) in model
        .layers
        .iter()
        .zip(report["layers"].as_array().unwrap())
    {
        let sparsity = 1.0 - layer.nonzeros() as f64 / layer.weight_count() as f64;
        let target = if layer.name == "convrelu_0" { 0.0 } else { 0.7 };
        assert!(
            sparsity >= target && sparsity < target + 1.0 / layer.weight_count() as f64 + 1e-9,
            "{}: {sparsity}",
            layer.name
        );
        assert_eq!(row["nonzeros"].as_u64(), Some(layer.nonzeros() as u64));
    }
    run_ok(args!["quantize", pruned, "--bits", "6", "-o", small]);
    let quantized = load(&small);
    for (q, p) in quantized.layers.iter().zip(&model.layers) {
        let sparse = p.nonzeros() < p.weight_count();
        assert!(
            distinct_nonzero(&q.weights) <= if sparse { 63 } else { 64 },
            "{}",
            q.name
        );
        assert!(
            q.weights
                .iter()
                .zip(&p.weights)
                .all(|(a, b)| (*a == 0.0) == (*b == 0.0)),
            "{}",
            q.name
        );
    }
    println!(
        "v1.1 pruned to 70 %: {} bytes; then 6 bits: {} bytes",
        file_len(&pruned),
        file_len(&small)
    );
    assert!(file_len(&small) < file_len(&pruned));
}

#[test]
fn global_pruning_reaches_the_overall_sparsity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("global.sqz");
    let report = json(&run_ok(args![
        "prune",
        v11_param(),
        "--sparsity",
        "0.6",
        "--global",
        "--json",
        "-o",
        out
    ]));
    let sparsity = report["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.6).abs() < 1e-3, "overall sparsity {sparsity}");
    let per_layer: Vec<f64> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sparsity"].as_f64().unwrap())
        .collect();
    let spread = per_layer.iter().cloned().fold(0.0, f64::max)
        - per_layer.iter().cloned().fold(1.0, f64::min);
    assert!(
        spread > 0.05,
        "one global threshold prunes layers unevenly, got {per_layer:?}"
    );
}

/// With `--calib`, `prune --sparsity S` removes S of all weights where the
/// measured damage is least; the measurement is cached (here in a private
/// cache folder) and reused, a corrupt cache entry is ignored, and
/// `--uniform` prunes every layer alike.
#[test]
fn calibrated_pruning_places_the_sparsity_by_damage_and_caches_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let cache_env = [("XDG_CACHE_HOME", cache.to_str().unwrap())];
    let prune = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let mut args: Vec<std::ffi::OsString> = args![
            "prune",
            v11_param(),
            "--sparsity",
            "0.7",
            "--calib",
            images(),
            "--calib-count",
            "8",
            "--sensitivity-count",
            "4",
            "--json",
            "-o",
            out
        ]
        .iter()
        .map(|a| a.to_os_string())
        .collect();
        args.extend(extra.iter().map(Into::into));
        let result = run_env(&args, &cache_env);
        let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
        assert!(result.status.success(), "{stderr}");
        let report = json(&String::from_utf8_lossy(&result.stdout));
        (std::fs::read(&out).unwrap(), report, stderr)
    };
    let (placed, report, _) = prune("placed.sqz", &[]);
    let sparsity = report["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.7).abs() < 1e-4, "overall sparsity {sparsity}");
    let layers = report["layers"].as_array().unwrap();
    let placement = report["placement"]["layers"].as_array().expect("placement");
    assert_eq!(placement.len(), layers.len());
    for (p, l) in placement.iter().zip(layers) {
        // The layer reaches its placed sparsity, or keeps its own zeros
        // (the fp16 v1.1 has a few) when they are more.
        let planned = p["sparsity"].as_f64().unwrap();
        let before = l["sparsity_before"].as_f64().unwrap();
        let reached = l["sparsity"].as_f64().unwrap();
        assert!((planned.max(before) - reached).abs() < 1e-3, "{p} vs {l}");
    }
    let per_layer: Vec<f64> = layers
        .iter()
        .map(|l| l["sparsity"].as_f64().unwrap())
        .collect();
    let spread = per_layer.iter().cloned().fold(0.0, f64::max)
        - per_layer.iter().cloned().fold(1.0, f64::min);
    assert!(spread > 0.2, "placed unevenly, got {per_layer:?}");
    let entries: Vec<_> = std::fs::read_dir(cache.join("sqz/sensitivity"))
        .expect("the cache folder")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");

    // Warm: the same bytes from the cached measurement.
    let (again, _, stderr) = prune("again.sqz", &[]);
    assert!(stderr.contains("reused"), "{stderr}");
    assert_eq!(again, placed);
    // A corrupt entry is noted, measured again, and changes nothing.
    std::fs::write(&entries[0], b"{\"key\": 1").unwrap();
    let (remeasured, _, stderr) = prune("remeasured.sqz", &[]);
    assert!(
        stderr.contains("ignoring the cached sensitivity"),
        "{stderr}"
    );
    assert_eq!(remeasured, placed);

    let (_, uniform, _) = prune("uniform.sqz", &["--uniform", "--no-cache"]);
    assert!(uniform.get("placement").is_none());
    for l in uniform["layers"].as_array().unwrap() {
        let s = l["sparsity"].as_f64().unwrap();
        assert!((s - 0.7).abs() < 1e-3, "{l}");
    }
    // Overrides win over the placement.
    let (_, overridden, _) = prune("overridden.sqz", &["--layer-sparsity", "convrelu_0=0"]);
    assert_eq!(
        overridden["placement"]["layers"][0]["sparsity"].as_f64(),
        Some(0.0)
    );
    let first = &overridden["layers"][0];
    assert_eq!(first["sparsity"], first["sparsity_before"], "{first}");
    let sparsity = overridden["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.7).abs() < 1e-4, "overall sparsity {sparsity}");
}

#[test]
fn compress_and_decode_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.sqz");
    let dense = dir.path().join("dense.sqz");
    run_ok(args![
        "compress",
        v11_param(),
        "--sparsity",
        "0.5",
        "--bits",
        "5",
        "--init",
        "kmeans++",
        "--seed",
        "7",
        "-o",
        small
    ]);
    let report = json(&run_ok(args!["decode", small, "-o", dense, "--json"]));
    assert_eq!(report["files"][0]["bytes"].as_u64(), Some(file_len(&dense)));
    assert!(file_len(&dense) > 2 * file_len(&small));
    assert_eq!(load(&small), load(&dense));
}

#[test]
fn eval_with_reference_reports_both_models() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("han8.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "8", "-o", out]);
    let report = json(&run_ok(args![
        "eval",
        out,
        "--reference",
        han_net(),
        "--images",
        images(),
        "--limit",
        "24",
        "--json"
    ]));
    for key in [
        "file_bytes",
        "reference_file_bytes",
        "compression_ratio",
        "top1",
        "top5",
        "reference_top1",
        "reference_top5",
        "agreement",
        "images_per_sec",
    ] {
        assert!(
            report.get(key).is_some_and(|v| !v.is_null()),
            "missing {key} in {report}"
        );
    }
    assert_eq!(report["images"].as_u64(), Some(24));
    assert_eq!(report["agreement"].as_f64(), Some(1.0));
    assert_eq!(report["top1"], report["reference_top1"]);
    assert_eq!(
        report["reference_file_bytes"].as_u64(),
        Some(file_len(&han_net()))
    );
}

#[test]
fn bad_inputs_fail_cleanly_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.sqz");
    run_ok(args!["quantize", han_net(), "--bits", "4", "-o", good]);
    let bytes = std::fs::read(&good).unwrap();

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x10;
    let truncated = &bytes[..bytes.len() - 100];
    for (name, data) in [
        ("flipped.sqz", flipped.as_slice()),
        ("truncated.sqz", truncated),
    ] {
        let input = dir.path().join(name);
        std::fs::write(&input, data).unwrap();
        let out = dir.path().join(format!("{name}.out.sqz"));
        let result = run(args!["quantize", input, "--bits", "4", "-o", out]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{name}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{name}: one-line error expected, got {stderr}"
        );
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!out.exists(), "{name}: no output may be written");
    }

    // -o naming the input is refused and the input stays untouched.
    let result = run(args!["quantize", good, "--bits", "3", "-o", good]);
    assert_eq!(result.status.code(), Some(1));
    assert_eq!(std::fs::read(&good).unwrap(), bytes);

    // Unknown layer names and impossible settings are user errors.
    for bad in [
        args![
            "prune",
            good,
            "--sparsity",
            "1.5",
            "-o",
            dir.path().join("x.sqz")
        ]
        .to_vec(),
        args![
            "prune",
            good,
            "--sparsity",
            "0.5",
            "--layer-sparsity",
            "nope=0",
            "-o",
            dir.path().join("x.sqz")
        ]
        .to_vec(),
        args![
            "quantize",
            good,
            "--bits",
            "0",
            "-o",
            dir.path().join("x.sqz")
        ]
        .to_vec(),
    ] {
        let result = run(&bad);
        assert_eq!(
            result.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(!dir.path().join("x.sqz").exists());
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".sqz-tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn every_command_documents_an_example_and_the_exit_codes() {
    let top = run_ok(&["--help"]);
    assert!(top.contains("Exit codes: 0 success, 1 user error"), "{top}");
    for command in [
        "classify",
        "eval",
        "inspect",
        "prune",
        "quantize",
        "compress",
        "decode",
        "sensitivity",
        "report",
        "fetch",
    ] {
        let help = run_ok(&[command, "--help"]);
        assert!(
            help.contains(&format!("Example:\n  sqz-compress {command} ")),
            "{command}: {help}"
        );
        assert!(
            help.contains("--quiet"),
            "{command} takes the global --quiet"
        );
    }
}

#[test]
fn classify_json_gives_five_probabilities_per_image() {
    let image = images().join("n01484850_great_white_shark.JPEG");
    let stdout = run_ok(args!["classify", v11_param(), image, "--json", "--quiet"]);
    let value = json(&stdout);
    let top5 = value["top5"].as_array().expect("top5 array");
    assert_eq!(top5.len(), 5);
    assert_eq!(top5[0]["class"].as_u64(), Some(2), "a great white shark");
    let total: f64 = top5
        .iter()
        .map(|c| c["probability"].as_f64().unwrap())
        .sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-6);
}

#[test]
fn out_of_range_settings_are_usage_errors_before_the_model_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.sqz");
    // The model does not exist: an error naming the setting shows that
    // it was refused while parsing the arguments, before any work.
    let missing = dir.path().join("missing.net");
    let usage_code = run(args![
        "quantize", missing, "--bits", "6", "--nope", "-o", out
    ])
    .status
    .code();
    for (bad, option) in [
        (
            args!["quantize", missing, "--bits", "17", "-o", out].to_vec(),
            "--bits",
        ),
        (
            args!["quantize", missing, "--bits", "0", "-o", out].to_vec(),
            "--bits",
        ),
        (
            args![
                "quantize",
                missing,
                "--bits",
                "6",
                "--entropy-weight=-1",
                "-o",
                out
            ]
            .to_vec(),
            "--entropy-weight",
        ),
        (
            args![
                "quantize",
                missing,
                "--bits",
                "6",
                "--layer-bits",
                "conv1=20",
                "-o",
                out
            ]
            .to_vec(),
            "--layer-bits",
        ),
        (
            args!["prune", missing, "--sparsity", "1", "-o", out].to_vec(),
            "--sparsity",
        ),
        (
            args![
                "prune",
                missing,
                "--sparsity",
                "0.5",
                "--layer-sparsity",
                "conv1=2",
                "-o",
                out
            ]
            .to_vec(),
            "--layer-sparsity",
        ),
        (
            args![
                "sensitivity",
                missing,
                "--calib",
                dir.path(),
                "--bit-levels",
                "8,17"
            ]
            .to_vec(),
            "--bit-levels",
        ),
        (
            args![
                "sensitivity",
                missing,
                "--calib",
                dir.path(),
                "--sparsity-levels",
                "0.5,1.5"
            ]
            .to_vec(),
            "--sparsity-levels",
        ),
    ] {
        let result = run(&bad);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), usage_code, "{stderr}");
        assert_eq!(result.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: invalid value") && stderr.contains(option),
            "{option}: {stderr}"
        );
        assert!(!stderr.contains("missing.net"), "{stderr}");
        assert!(!out.exists());
    }
}

#[test]
fn compress_runs_only_the_stages_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let quantized = dir.path().join("quantized.sqz");
    let compressed = dir.path().join("compressed.sqz");
    // Han's model is already pruned: `compress --bits` alone shares its
    // weights exactly as `quantize` does.
    run_ok(args!["quantize", han_net(), "--bits", "6", "-o", quantized]);
    let report = json(&run_ok(args![
        "compress",
        han_net(),
        "--bits",
        "6",
        "--json",
        "-o",
        compressed
    ]));
    assert_eq!(
        std::fs::read(&quantized).unwrap(),
        std::fs::read(&compressed).unwrap()
    );
    let layers = report["layers"].as_array().unwrap();
    assert!(layers
        .iter()
        .all(|l| l["sparsity"] == l["sparsity_before"] && l["bits"].as_u64() == Some(6)));

    // Without any stage the model is only re-encoded, losslessly.
    let reencoded = dir.path().join("reencoded.sqz");
    let report = json(&run_ok(args![
        "compress",
        han_net(),
        "--json",
        "-o",
        reencoded
    ]));
    assert_eq!(load(&reencoded).layers, load(&han_net()).layers);
    assert!(report["layers"][0]["bits"].is_null());
}

/// Lossy stages without calibration say that nothing verified or recovered
/// the accuracy; a lossless re-encoding says nothing.
#[test]
fn uncalibrated_compression_says_accuracy_is_unverified() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.sqz");
    let result = run(args!["quantize", han_net(), "--bits", "6", "-o", out]);
    assert!(result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("accuracy is unverified") && stderr.contains("--calib"),
        "{stderr}"
    );
    let result = run(args!["compress", han_net(), "-o", out]);
    assert!(result.status.success());
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!stderr.contains("unverified"), "{stderr}");
}
