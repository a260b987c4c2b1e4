//! End-to-end tests of the `sqz-compress` binary on the real models and
//! images of the shared data folder (`$SQZ_SHARED`, else `../shared` beside
//! the repository). Missing data makes the tests fail, saying where they
//! looked.

use std::collections::HashMap;
use std::path::Path;

use crate::common::{png_header, run_ok, run_user_error, shared, sqz_command};

/// A model of the shared folder, with the reference name used in `data/reference`.
struct RealModel {
    reference: &'static str,
    path: &'static str,
    /// Weights plus biases, from the shared README.
    parameters: u64,
    /// top-1 and top-5 in percent on `imagenet-sample`, from the shared README.
    top1: f64,
    top5: f64,
}

const V1_1: RealModel = RealModel {
    reference: "squeezenet_v1.1",
    path: "models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param",
    parameters: 1_235_496,
    top1: 64.30,
    top5: 85.50,
};

const V1_0_DC: RealModel = RealModel {
    reference: "squeezenet_v1.0-deep-compression",
    path: "models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net",
    parameters: 1_248_424,
    top1: 64.44,
    top5: 85.36,
};

/// Per-image top-5 lists of a predictions TSV (`file`, `top5`).
fn read_predictions(path: &Path) -> HashMap<String, Vec<usize>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("file\ttop5"),
        "{}: header",
        path.display()
    );
    lines
        .map(|line| {
            let (file, top5) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("{}: bad line {line:?}", path.display()));
            let top5 = top5
                .split(',')
                .map(|c| c.parse().expect("class index"))
                .collect();
            (file.to_owned(), top5)
        })
        .collect()
}

/// A number field of a flat JSON object.
fn number(json: &serde_json::Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
}

/// `eval` on every image: accuracy within one point of the documented
/// figures and top-1 agreeing with the reference runtime's predictions on at
/// least 98 % of the images (the README allows a few borderline
/// disagreements; since preprocessing is bit-exact, the measured agreement
/// is all 717, printed along with the agreement of whole top-5 lists).
fn check_eval(model: &RealModel) {
    let shared = shared();
    let predictions = tempfile::NamedTempFile::new().expect("temp file");
    let model_path = shared.join(model.path);
    let images = shared.join("data/imagenet-sample");
    let stdout = run_ok(&[
        "eval",
        model_path.to_str().expect("utf-8 path"),
        "--images",
        images.to_str().expect("utf-8 path"),
        "--json",
        "--predictions",
        predictions.path().to_str().expect("utf-8 path"),
    ]);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let (top1, top5) = (100.0 * number(&json, "top1"), 100.0 * number(&json, "top5"));
    println!(
        "{}: {} images, top-1 {top1:.2} %, top-5 {top5:.2} %, {:.1} images/s",
        model.reference,
        number(&json, "images"),
        number(&json, "images_per_sec")
    );
    assert_eq!(number(&json, "images"), 717.0);
    assert!(
        (top1 - model.top1).abs() <= 1.0,
        "top-1 {top1} vs {}",
        model.top1
    );
    assert!(
        (top5 - model.top5).abs() <= 1.0,
        "top-5 {top5} vs {}",
        model.top5
    );

    let ours = read_predictions(predictions.path());
    let reference = read_predictions(&shared.join(format!(
        "data/reference/{}.predictions.tsv",
        model.reference
    )));
    assert_eq!(ours.len(), 717);
    assert_eq!(reference.len(), 717);
    let agree = ours
        .iter()
        .filter(|(file, top5)| reference.get(*file).map(|r| r[0]) == Some(top5[0]))
        .count();
    let exact = ours
        .iter()
        .filter(|(file, top5)| reference.get(*file) == Some(top5))
        .count();
    println!(
        "{}: top-1 agrees with the reference on {agree}/717, whole top-5 list on {exact}/717",
        model.reference
    );
    assert!(agree as f64 >= 0.98 * 717.0, "top-1 agreement {agree}/717");
}

#[test]
fn eval_v1_1_matches_reference() {
    check_eval(&V1_1);
}

#[test]
fn eval_v1_0_deep_compression_matches_reference() {
    check_eval(&V1_0_DC);
}

#[test]
fn classify_prints_five_named_classes_per_image() {
    let shared = shared();
    let model = shared.join(V1_1.path);
    let images = ["n01484850_great_white_shark.JPEG", "n02782093_balloon.JPEG"]
        .map(|f| shared.join("data/imagenet-sample").join(f));
    let classes = shared.join("data/imagenet-classes.tsv");
    let names: HashMap<usize, String> = std::fs::read_to_string(&classes)
        .expect("class table")
        .lines()
        .skip(1)
        .map(|l| {
            let fields: Vec<&str> = l.split('\t').collect();
            (fields[0].parse().expect("index"), fields[2].to_owned())
        })
        .collect();
    let reference =
        read_predictions(&shared.join("data/reference/squeezenet_v1.1.predictions.tsv"));

    let path = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let args = [
        "classify".into(),
        path(&model),
        path(&images[0]),
        path(&images[1]),
        "--classes".into(),
        path(&classes),
    ];
    let stdout = run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2 * 6,
        "a header and 5 classes per image: {stdout}"
    );
    for (image, block) in images.iter().zip(lines.chunks(6)) {
        assert_eq!(block[0], image.display().to_string());
        let mut previous = 1.0f64;
        for (rank, line) in block[1..].iter().enumerate() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let probability: f64 = fields[0].parse().expect("probability");
            let class: usize = fields[1].parse().expect("class index");
            assert!(
                (0.0..=previous).contains(&probability),
                "probabilities descend: {block:?}"
            );
            previous = probability;
            assert_eq!(
                fields[2..].join(" "),
                names[&class],
                "name of class {class}"
            );
            let file = image
                .file_name()
                .and_then(|f| f.to_str())
                .expect("file name");
            if rank == 0 {
                assert_eq!(class, reference[file][0], "{file}: best class");
            }
        }
    }
}

#[test]
fn classify_finds_class_names_through_sqz_shared() {
    let shared = shared();
    let image = shared.join("data/imagenet-sample/n01484850_great_white_shark.JPEG");
    let out = sqz_command()
        .args([
            "classify".as_ref(),
            shared.join(V1_1.path).as_os_str(),
            image.as_os_str(),
        ])
        .env("SQZ_SHARED", &shared)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("cannot start sqz-compress");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("great white shark")),
        "{stdout}"
    );
}

#[test]
fn inspect_totals_are_the_parameter_counts() {
    let shared = shared();
    for model in [&V1_1, &V1_0_DC] {
        let path = shared.join(model.path);
        let stdout = run_ok(&["inspect", path.to_str().expect("utf-8 path"), "--json"]);
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        let total = &json["total"];
        assert_eq!(
            total["parameters"].as_u64(),
            Some(model.parameters),
            "{}",
            model.reference
        );
        assert_eq!(total["bytes"].as_u64(), Some(4 * model.parameters));
        let layers = json["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 26, "SqueezeNet has 26 convolutions");
        let sum: u64 = layers
            .iter()
            .map(|l| l["parameters"].as_u64().expect("parameters"))
            .sum();
        assert_eq!(sum, model.parameters);

        let table = run_ok(&["inspect", path.to_str().expect("utf-8 path")]);
        let last = table.lines().last().expect("a total line");
        assert!(
            last.starts_with("total") && last.contains(&model.parameters.to_string()),
            "{last}"
        );
    }
    // Han's release stores 422,083 entries (nonzeros plus zero fillers) and
    // shares at most 256 values per layer.
    let stdout = run_ok(&[
        "inspect",
        shared.join(V1_0_DC.path).to_str().expect("utf-8 path"),
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert!(json["total"]["nonzeros"].as_u64().expect("nonzeros") <= 422_083);
    for layer in json["layers"].as_array().expect("layers") {
        assert!(
            layer["distinct"].as_u64().expect("distinct") <= 256,
            "{layer}"
        );
    }
}

#[test]
fn bad_inputs_give_one_line_errors_and_exit_code_1() {
    let shared = shared();
    let model = shared.join(V1_1.path);
    let model = model.to_str().expect("utf-8 path");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| {
        dir.path()
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_owned()
    };

    std::fs::write(path("garbage.jpg"), b"this is not an image").expect("write");
    let line = run_user_error(&["classify", model, &path("garbage.jpg")]);
    assert!(
        line.contains("garbage.jpg") && line.contains("cannot decode image"),
        "{line}"
    );

    std::fs::write(path("huge.png"), png_header(20_000, 20_000)).expect("write");
    let line = run_user_error(&["classify", model, &path("huge.png")]);
    assert!(
        line.contains("huge.png") && line.contains("20000x20000"),
        "{line}"
    );

    let images = dir.path().to_str().expect("utf-8 path");
    let eval_error = || run_user_error(&["eval", model, "--images", images]);
    let line = eval_error();
    assert!(line.contains("labels.tsv"), "{line}");

    let write_labels = |text: &str| std::fs::write(path("labels.tsv"), text).expect("write");
    write_labels("file\tclass_index\twnid\tname\ngarbage.jpg\t1000\tn0\tx\n");
    let line = eval_error();
    assert!(
        line.contains("labels.tsv:2") && line.contains("1000"),
        "{line}"
    );

    write_labels("file\tclass_index\twnid\tname\ngarbage.jpg\t1\tn01443537\tgoldfish\n");
    let line = eval_error();
    assert!(line.contains("garbage.jpg"), "{line}");

    run_user_error(&["eval", model]);
    run_user_error(&["eval", model, "--images", "x", "--batch", "0"]);
    run_user_error(&["frobnicate"]);
    run_user_error::<&str>(&[]);
    let line = run_user_error(&["inspect", &path("missing.param")]);
    assert!(line.contains("missing.param"), "{line}");
    let line = run_user_error(&["inspect", &path("labels.tsv")]);
    assert!(line.contains("unknown model format"), "{line}");
}
