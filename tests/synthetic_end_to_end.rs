//! A hermetic end-to-end run of the `sqz-compress` binary on a tiny
//! synthetic SqueezeNet-like model that the test writes itself (ncnn
//! `.param` + `.bin`, with synthetic PNG images and a `labels.tsv`), so it
//! needs no shared data folder: prune, quantize, compress, decode, then
//! inspect and evaluate every result. The `.sqz` files written hold every
//! storage kind, and the dense decode of a compressed model computes exactly
//! what the compressed model computes.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The model: input 3x32x32; a 3x3 convolution with padding and fused
/// ReLU; a 2x2 max pool; a fire module (1x1 squeeze, then 1x1 and 3x3
/// padded expands concatenated, the 3x3 one with a separate ReLU layer);
/// a 1x1 classifier over 10 classes; global average pool; softmax.
const PARAM: &str = "7767517
12 13
Input data 0 1 data 0=32 1=32 2=3
Convolution conv1 1 1 data conv1 0=8 1=3 11=3 3=1 4=1 5=1 6=216 9=1
Pooling pool1 1 1 conv1 pool1 0=0 1=2 2=2 5=0
Convolution squeeze 1 1 pool1 squeeze 0=4 1=1 11=1 5=1 6=32 9=1
Split split 1 2 squeeze s1 s3
Convolution expand1x1 1 1 s1 expand1x1 0=8 1=1 11=1 5=1 6=32 9=1
Convolution expand3x3 1 1 s3 e3 0=8 1=3 11=3 4=1 5=1 6=288
ReLU relu3x3 1 1 e3 expand3x3
Concat concat 2 1 expand1x1 expand3x3 concat 0=0
Convolution classifier 1 1 concat classifier 0=10 1=1 11=1 5=1 6=160
Pooling gap 1 1 classifier gap 0=1 4=1
Softmax prob 1 1 gap prob 0=0
";

/// `(weights, biases)` of each convolution, in `.param` order.
const CONVOLUTIONS: [(usize, usize); 5] = [(216, 8), (32, 4), (32, 8), (288, 8), (160, 10)];

/// Classes the model predicts.
const CLASSES: usize = 10;

/// Synthetic images in the evaluation folder.
const IMAGES: usize = 12;

/// A deterministic pseudo-random value in `[-1, 1)` (SplitMix64).
fn pseudo_random(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Writes `model.param` and `model.bin` (float32 weights then biases per
/// convolution) into `dir`; returns the `.param` path.
fn write_model(dir: &Path) -> PathBuf {
    let mut state = 2024;
    let mut bin = Vec::new();
    for (weights, biases) in CONVOLUTIONS {
        bin.extend_from_slice(&0u32.to_le_bytes()); // float32 tag
        for _ in 0..weights + biases {
            bin.extend_from_slice(&pseudo_random(&mut state).to_le_bytes());
        }
    }
    let param = dir.join("model.param");
    std::fs::write(&param, PARAM).expect("write .param");
    std::fs::write(dir.join("model.bin"), bin).expect("write .bin");
    param
}

/// Writes [`IMAGES`] small PNG pictures (stripes and gradients, different
/// for each image) and their `labels.tsv` into `dir/images`; returns the
/// folder.
fn write_images(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir(&images).expect("create the image folder");
    let mut labels = String::from("file\tclass_index\twnid\tname\n");
    for i in 0..IMAGES as u32 {
        let picture = image::RgbImage::from_fn(40 + i, 36, |x, y| {
            let stripe = if (x / (1 + i % 4) + y / 3) % 2 == 0 {
                220
            } else {
                30
            };
            image::Rgb([stripe, (x * 6 + i * 20) as u8, (y * 7 + i * 35) as u8])
        });
        let file = format!("image{i}.png");
        picture.save(images.join(&file)).expect("write a PNG");
        let class = i as usize % CLASSES;
        labels.push_str(&format!("{file}\t{class}\tn{class:08}\tclass {class}\n"));
    }
    std::fs::write(images.join("labels.tsv"), labels).expect("write labels.tsv");
    images
}

/// Runs `sqz-compress` with `args` and returns its stdout, failing the test
/// with the command's stderr when it does not succeed.
fn sqz<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = common::run_hermetic(args);
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
