//! A hermetic end-to-end run of the `sqz-compress` binary on a tiny
//! synthetic SqueezeNet-like model that the test writes itself (ncnn
//! `.param` + `.bin`, with synthetic PNG images and a `labels.tsv`), so it
//! needs no shared data folder: prune, quantize, compress, decode, then
//! inspect and evaluate every result. The `.sqz` files written hold every
//! storage kind, and the dense decode of a compressed model computes exactly
//! what the compressed model computes.

use crate::common::synthetic::{write_images, write_model, CONVOLUTIONS, IMAGES};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Runs `sqz-compress` with `args` and returns its stdout, failing the test
/// with the command's stderr when it does not succeed.
fn sqz<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = crate::common::run_hermetic(args);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        out.status.success(),
        "{shown:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// `inspect --json` of `model`.
fn inspect(model: &Path) -> Value {
    serde_json::from_str(&sqz(args!["inspect", model, "--json"])).expect("inspect prints JSON")
}

/// The storage kind of every layer of an inspected `.sqz`.
fn storage_kinds(report: &Value) -> Vec<String> {
    report["storage"]["layers"]
        .as_array()
        .expect("a .sqz report has storage layers")
        .iter()
        .map(|layer| layer["storage"].as_str().expect("storage kind").to_owned())
        .collect()
}

/// `(weights, nonzeros, distinct values)` of every layer of an inspect report.
fn layer_counts(report: &Value) -> Vec<(u64, u64, u64)> {
    let count = |layer: &Value, key: &str| layer[key].as_u64().expect(key);
    report["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                count(l, "weights"),
                count(l, "nonzeros"),
                count(l, "distinct"),
            )
        })
        .collect()
}

/// Asserts that every layer has `sparsity` of its weights zeroed (the
/// weight counts are multiples of 8, so `sparsity * weights` is whole for
/// the eighths used here).
fn assert_sparsity(report: &Value, sparsity: f64, what: &str) {
    for (weights, nonzeros, _) in layer_counts(report) {
        let zeros = (sparsity * weights as f64) as u64;
        assert_eq!(nonzeros, weights - zeros, "{what}: {report}");
    }
}

/// Asserts that no layer holds more than `2^bits` distinct weight values
/// (zero included).
fn assert_shared_values(report: &Value, bits: u32, what: &str) {
    for (_, _, distinct) in layer_counts(report) {
        assert!(distinct <= 1 << bits, "{what}: {report}");
    }
}

#[test]
fn synthetic_model_through_every_stage_and_storage_kind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let model = write_model(dir.path());
    let images = write_images(dir.path());
    let out = |name: &str| dir.path().join(name);

    let original = inspect(&model);
    let counts = layer_counts(&original);
    let weights: Vec<u64> = CONVOLUTIONS.iter().map(|&(w, _)| w as u64).collect();
    assert_eq!(
        counts.iter().map(|c| c.0).collect::<Vec<_>>(),
        weights,
        "{original}"
    );
    assert!(
        counts
            .iter()
            .all(|&(w, nz, distinct)| nz == w && distinct == w),
        "random weights are all nonzero and distinct: {original}"
    );

    sqz(args![
        "prune",
        model,
        "--sparsity",
        "0.75",
        "-o",
        out("pruned.sqz")
    ]);
    sqz(args![
        "quantize",
        model,
        "--bits",
        "3",
        "-o",
        out("quantized.sqz")
    ]);
    sqz(args![
        "compress",
        model,
        "--sparsity",
        "0.875",
        "--bits",
        "3",
        "-o",
        out("compressed.sqz")
    ]);
    sqz(args![
        "decode",
        out("compressed.sqz"),
        "-o",
        out("dense.sqz")
    ]);

    let pruned = inspect(&out("pruned.sqz"));
    assert_sparsity(&pruned, 0.75, "prune --sparsity 0.75");
    let quantized = inspect(&out("quantized.sqz"));
    assert_shared_values(&quantized, 3, "quantize --bits 3");
    let compressed = inspect(&out("compressed.sqz"));
    assert_sparsity(&compressed, 0.875, "compress --sparsity 0.875");
    assert_shared_values(&compressed, 3, "compress --bits 3");
    let dense = inspect(&out("dense.sqz"));
    assert_eq!(
        layer_counts(&dense),
        layer_counts(&compressed),
        "decode keeps every weight"
    );

    // Each stage stores its largest layer in the kind it calls for, and the
    // decode stores every layer dense.
    let largest = 3; // expand3x3, 288 weights
    assert_eq!(storage_kinds(&pruned)[largest], "sparse", "{pruned}");
    assert_eq!(
        storage_kinds(&quantized)[largest],
        "quantized",
        "{quantized}"
    );
    assert_eq!(
        storage_kinds(&compressed)[largest],
        "sparse+quantized",
        "{compressed}"
    );
    assert!(
        storage_kinds(&dense).iter().all(|kind| kind == "dense"),
        "{dense}"
    );
    for (name, report) in [
        ("pruned", &pruned),
        ("quantized", &quantized),
        ("compressed", &compressed),
    ] {
        println!(
            "{name}: {:?} {:?}",
            storage_kinds(report),
            layer_counts(report)
        );
    }
    let all_kinds: BTreeSet<String> = [&pruned, &quantized, &compressed, &dense]
        .into_iter()
        .flat_map(storage_kinds)
        .collect();
    assert_eq!(
        all_kinds,
        BTreeSet::from(["dense", "sparse", "quantized", "sparse+quantized"].map(String::from))
    );

    // Every file runs forward on every image, compared with the original.
    for name in ["pruned.sqz", "quantized.sqz", "compressed.sqz", "dense.sqz"] {
        let report: Value = serde_json::from_str(&sqz(args![
            "eval",
            out(name),
            "--reference",
            model,
            "--images",
            images,
            "--json"
        ]))
        .expect("eval prints JSON");
        assert_eq!(report["images"].as_u64(), Some(IMAGES as u64), "{report}");
        assert_eq!(report["skipped"].as_u64(), Some(0), "{report}");
        let agreement = report["agreement"].as_f64().expect("agreement");
        println!("{name}: top-1 agreement with the original {agreement}");
        assert!((0.0..=1.0).contains(&agreement), "{name}: {report}");
    }

    // The dense decode computes exactly what the compressed file computes:
    // same predictions on every image, same top-5 probabilities to the bit.
    let report: Value = serde_json::from_str(&sqz(args![
        "eval",
        out("dense.sqz"),
        "--reference",
        out("compressed.sqz"),
        "--images",
        images,
        "--json"
    ]))
    .expect("eval prints JSON");
    assert_eq!(report["agreement"].as_f64(), Some(1.0), "{report}");
    assert_eq!(report["top1"], report["reference_top1"], "{report}");
    let image_files: Vec<PathBuf> = (0..IMAGES)
        .map(|i| images.join(format!("image{i}.png")))
        .collect();
    let classify = |model: PathBuf| {
        let mut args = vec!["classify".into(), model.into_os_string(), "--json".into()];
        args.extend(image_files.iter().map(|f| f.clone().into_os_string()));
        sqz(&args)
    };
    let top5 = classify(out("compressed.sqz"));
    assert_eq!(top5.lines().count(), IMAGES, "{top5}");
    assert_eq!(classify(out("dense.sqz")), top5);
}
