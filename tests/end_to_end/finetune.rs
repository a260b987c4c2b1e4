//! `--finetune` end to end on the tiny synthetic model (hermetic: no shared
//! data folder): distillation lowers the loss, the file keeps its pruned
//! positions, codes and size, the same seed gives the same bytes with 1 and
//! 2 threads, and bad arguments are refused before any work.

use std::path::{Path, PathBuf};

use crate::common::sqz_command;
use crate::common::synthetic::{write_images, write_model, IMAGES};
use formats::sqz::{read_sqz, FloatVec, Stream, WeightStorage};
use serde_json::Value;

/// Calibration images used (the other synthetic images are held back).
const CALIB_COUNT: &str = "8";

/// Runs `sqz-compress` hermetically with extra environment variables and
/// returns its stdout, failing with its stderr when it does not succeed.
fn sqz<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(&str, &str)]) -> String {
    let out = sqz_command()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("cannot start sqz-compress");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// The model, its images and a prune-only `.sqz` of it in a fresh folder.
struct Setup {
    _dir: tempfile::TempDir,
    model: PathBuf,
    images: PathBuf,
    pruned: PathBuf,
    out: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temporary folder");
    let model = write_model(dir.path());
    let images = write_images(dir.path());
    let pruned = dir.path().join("pruned.sqz");
    let out = dir.path().to_path_buf();
    sqz(
        args!["prune", model, "--sparsity", "0.5", "-o", pruned],
        &[],
    );
    Setup {
        _dir: dir,
        model,
        images,
        pruned,
        out,
    }
}

/// Runs the calibrated compression `stage` (command, model, settings) with
/// `extra` arguments into `name`; returns the file and stdout (`--json`).
fn calibrated(
    setup: &Setup,
    stage: &[&std::ffi::OsStr],
    name: &str,
    extra: &[String],
    env: &[(&str, &str)],
) -> (PathBuf, String) {
    let out = setup.out.join(name);
    let calib: &[&std::ffi::OsStr] = args![
        "--calib",
        setup.images,
        "--calib-count",
        CALIB_COUNT,
        "--json",
        "-o",
        out
    ];
    let mut args: Vec<std::ffi::OsString> = stage
        .iter()
        .chain(calib)
        .map(|a| a.to_os_string())
        .collect();
    args.extend(extra.iter().map(Into::into));
    let stdout = sqz(&args, env);
    (out, stdout)
}

/// `quantize pruned.sqz --bits 3 --calib` with `extra` arguments.
fn quantize(
    setup: &Setup,
    name: &str,
    extra: &[String],
    env: &[(&str, &str)],
) -> (PathBuf, String) {
    let stage = args!["quantize", setup.pruned, "--bits", "3"];
    calibrated(setup, stage, name, extra, env)
}

/// Fine-tuning arguments of the tests: `steps` steps, with a learning rate
/// large enough to move a random model quickly, and `teacher` (default: the
/// input model).
fn finetune_args(teacher: Option<&Path>, steps: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--finetune",
        "--steps",
        steps,
        "--batch",
        "4",
        "--lr",
        "0.01",
        "--held-back",
        "4",
    ]
    .map(String::from)
    .to_vec();
    if let Some(teacher) = teacher {
        args.extend(["--teacher".to_string(), teacher.display().to_string()]);
    }
    args
}

/// The codebook and the (positions, codes) streams of a weight-shared
/// layer; panics on other storage.
fn shared_storage(weights: &WeightStorage) -> (&FloatVec, (Option<&Stream>, &Stream)) {
    match weights {
        WeightStorage::Quantized { codebook, codes } => (codebook, (None, codes)),
        WeightStorage::SparseQuantized {
            codebook,
            positions,
            codes,
        } => (codebook, (Some(positions), codes)),
        other => panic!("not weight-shared: {other:?}"),
    }
}

fn layers(path: &Path) -> Vec<formats::sqz::EncodedLayer> {
    read_sqz(&std::fs::read(path).expect("read .sqz"))
        .expect("valid .sqz")
        .layers
}

#[test]
fn finetuning_lowers_the_loss_and_keeps_positions_codes_and_size() {
    let setup = setup();
    let (plain, _) = quantize(&setup, "plain.sqz", &[], &[]);
    let extra = finetune_args(Some(&setup.model), "40");
    let (tuned, json) = quantize(&setup, "tuned.sqz", &extra, &[]);

    let report: Value = serde_json::from_str(&json).expect("JSON report");
    let finetune = &report["finetune"];
    assert_eq!(finetune["steps"], 40, "{finetune}");
    assert_eq!(finetune["training_images"], 8, "{finetune}");
    assert_eq!(finetune["held_back_images"], 4, "{finetune}");
    let (initial, last) = (
        finetune["initial_loss"].as_f64().expect("initial loss"),
        finetune["final_loss"].as_f64().expect("final loss"),
    );
    assert!(last < 0.8 * initial, "loss {initial} -> {last}");
    assert!(finetune["held_back_agreement"].as_f64().is_some());

    let (before, after) = (layers(&plain), layers(&tuned));
    let mut changed = 0;
    for (b, a) in before.iter().zip(&after) {
        let (book_b, streams_b) = shared_storage(&b.weights);
        let (book_a, streams_a) = shared_storage(&a.weights);
        assert_eq!(
            streams_b, streams_a,
            "{}: positions or codes changed",
            b.name
        );
        changed += usize::from(book_b != book_a);
    }
    assert!(changed > 0, "fine-tuning changed no shared value");
    // Evaluation leaves out exactly the images fine-tuning trained on.
    let eval: Value = serde_json::from_str(&sqz(
        args![
            "eval",
            tuned,
            "--images",
            setup.images,
            "--exclude-calib",
            setup.images,
            "--calib-count",
            CALIB_COUNT,
            "--json"
        ],
        &[],
    ))
    .expect("eval JSON");
    assert_eq!(eval["images"], IMAGES as u64 - 8, "{eval}");
    let size = |p: &Path| std::fs::metadata(p).expect("size").len();
    assert_eq!(size(&plain), size(&tuned));
}

#[test]
fn pruned_weights_stay_zero_when_every_weight_trains() {
    let setup = setup();
    let stage = args!["prune", setup.model, "--sparsity", "0.6"];
    let (plain, _) = calibrated(&setup, stage, "plain.sqz", &[], &[]);
    let extra = finetune_args(None, "40");
    let (tuned, _) = calibrated(&setup, stage, "tuned.sqz", &extra, &[]);
    for (b, a) in layers(&plain).iter().zip(&layers(&tuned)) {
        let positions = |w: &WeightStorage| match w {
            WeightStorage::Sparse { positions, .. } => Some(positions.clone()),
            WeightStorage::Dense(_) => None,
            other => panic!("{}: unexpected storage {other:?}", b.name),
        };
        assert_eq!(positions(&b.weights), positions(&a.weights), "{}", b.name);
    }
    let decoded = |p: &Path| {
        formats::read_model(p, &formats::ReadOptions::default()).expect("read the model")
    };
    let (plain, tuned) = (decoded(&plain), decoded(&tuned));
    for (b, a) in plain.layers.iter().zip(&tuned.layers) {
        let zeros =
            |l: &formats::Layer| -> Vec<bool> { l.weights.iter().map(|&w| w == 0.0).collect() };
        assert_eq!(zeros(b), zeros(a), "{}: pruned weights moved", b.name);
    }
    assert_ne!(plain.layers, tuned.layers, "fine-tuning changed nothing");
}

#[test]
fn the_same_seed_writes_the_same_file_with_one_and_two_threads() {
    let setup = setup();
    let bytes = |p: &Path| std::fs::read(p).expect("read .sqz");
    for mixup in ["false", "true"] {
        let mut extra = finetune_args(Some(&setup.model), "12");
        extra.extend(["--seed", "5", "--mixup", mixup].map(String::from));
        let (one, _) = quantize(&setup, "one.sqz", &extra, &[("RAYON_NUM_THREADS", "1")]);
        let (two, _) = quantize(&setup, "two.sqz", &extra, &[("RAYON_NUM_THREADS", "2")]);
        assert_eq!(bytes(&one), bytes(&two), "--mixup {mixup}");
    }
}

/// Runs the binary expecting a usage or user error before any output file
/// is written; returns stderr.
fn refused(setup: &Setup, args: &[&str]) -> String {
    let out_file = setup.out.join("refused.sqz");
    let out = sqz_command()
        .args(args)
        .arg("-o")
        .arg(&out_file)
        .output()
        .expect("cannot start sqz-compress");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{args:?}: {stderr}"
    );
    assert!(!out_file.exists(), "{args:?} wrote a file");
    stderr
}

#[test]
fn bad_finetuning_arguments_are_refused() {
    let setup = setup();
    let model = setup.model.display().to_string();
    let images = setup.images.display().to_string();
    let pruned = setup.pruned.display().to_string();
    let stderr = refused(
        &setup,
        &["prune", &model, "--sparsity", "0.5", "--finetune"],
    );
    assert!(stderr.contains("--calib"), "{stderr}");
    let stderr = refused(
        &setup,
        &["quantize", &pruned, "--bits", "4", "--steps", "5"],
    );
    assert!(stderr.contains("--finetune"), "{stderr}");
    let base = [
        "quantize",
        &pruned,
        "--bits",
        "4",
        "--calib",
        &images,
        "--finetune",
    ];
    for bad in [
        &["--lr", "0"][..],
        &["--lr", "nan"],
        &["--batch", "0"],
        &["--steps", "0"],
        &["--steps", "5", "--epochs", "2"],
        &["--temperature", "-1"],
    ] {
        refused(&setup, &[&base[..], bad].concat());
    }
    let stderr = refused(
        &setup,
        &[&base[..], &["--teacher", "/nonexistent.param"]].concat(),
    );
    assert!(stderr.contains("/nonexistent.param"), "{stderr}");
}

/// `compress --sparsity 0.5 --bits 3` (both stages, so fine-tuning with
/// [`two_stage_args`] runs before and after weight sharing) with `extra`
/// arguments.
fn prune_and_share(
    setup: &Setup,
    name: &str,
    extra: &[String],
    env: &[(&str, &str)],
) -> (PathBuf, String) {
    let stage = args!["compress", setup.model, "--sparsity", "0.5", "--bits", "3"];
    calibrated(setup, stage, name, extra, env)
}

/// [`finetune_args`] (no teacher) with fine-tuning before weight sharing
/// too.
fn two_stage_args(steps: &str) -> Vec<String> {
    let mut args = finetune_args(None, steps);
    args.extend(["--two-stage", "true"].map(String::from));
    args
}

/// Which weights of each layer of the model in `path` are zero.
fn zeros(path: &Path) -> Vec<Vec<bool>> {
    let model =
        formats::read_model(path, &formats::ReadOptions::default()).expect("read the model");
    model
        .layers
        .iter()
        .map(|l| l.weights.iter().map(|&w| w == 0.0).collect())
        .collect()
}

#[test]
fn pruning_and_sharing_fine_tune_twice_keeping_the_pruned_weights_zero() {
    let setup = setup();
    let stage = args!["prune", setup.model, "--sparsity", "0.5"];
    let (pruned, _) = calibrated(&setup, stage, "pruned.sqz", &[], &[]);
    let (tuned, json) = prune_and_share(&setup, "tuned.sqz", &two_stage_args("30"), &[]);

    let report: Value = serde_json::from_str(&json).expect("JSON report");
    assert_eq!(report["finetune_before_sharing"]["steps"], 20, "{report}");
    assert_eq!(report["finetune"]["steps"], 10, "{report}");
    let before = &report["finetune_before_sharing"];
    let (initial, last) = (
        before["initial_loss"].as_f64().expect("initial loss"),
        before["final_loss"].as_f64().expect("final loss"),
    );
    assert!(last < initial, "loss before sharing {initial} -> {last}");
    // The weights pruned before fine-tuning are exactly the zeros at the
    // end: none was revived by either stage, and sharing pruned no more.
    assert_eq!(zeros(&pruned), zeros(&tuned));
    for layer in layers(&tuned) {
        let (codebook, _) = shared_storage(&layer.weights);
        assert!(codebook.len() <= 8, "{}: {codebook:?}", layer.name);
    }
}

#[test]
fn fine_tuning_to_a_target_size_stays_within_it() {
    let setup = setup();
    let dense = setup.out.join("dense.sqz");
    sqz(args!["compress", setup.model, "-o", dense], &[]);
    let target = std::fs::metadata(&dense).expect("size").len() * 6 / 10;
    let target_arg = target.to_string();
    let stage = args![
        "compress",
        setup.model,
        "--target-size",
        target_arg,
        "--sensitivity-count",
        "2",
        "--sparsity-levels",
        "0.3,0.5,0.7",
        "--bit-levels",
        "6,4,3",
        "--no-cache"
    ];
    let (plain, _) = calibrated(&setup, stage, "plain.sqz", &[], &[]);
    let (tuned, json) = calibrated(&setup, stage, "tuned.sqz", &two_stage_args("9"), &[]);
    let report: Value = serde_json::from_str(&json).expect("JSON report");
    let size = |p: &Path| std::fs::metadata(p).expect("size").len();
    assert!(size(&tuned) <= target, "{} > {target}", size(&tuned));
    assert_eq!(report["file_bytes"].as_u64(), Some(size(&tuned)));
    assert_eq!(report["finetune_before_sharing"]["steps"], 6, "{report}");
    assert_eq!(report["finetune"]["steps"], 3, "{report}");
    assert_ne!(
        std::fs::read(&plain).expect("read"),
        std::fs::read(&tuned).expect("read"),
        "fine-tuning changed nothing"
    );
}

#[test]
fn two_stage_fine_tuning_writes_the_same_file_with_one_and_two_threads() {
    let setup = setup();
    let bytes = |p: &Path| std::fs::read(p).expect("read .sqz");
    let extra = two_stage_args("6");
    let (one, _) = prune_and_share(&setup, "one.sqz", &extra, &[("RAYON_NUM_THREADS", "1")]);
    let (two, _) = prune_and_share(&setup, "two.sqz", &extra, &[("RAYON_NUM_THREADS", "2")]);
    assert_eq!(bytes(&one), bytes(&two));

    // The default fine-tunes once, after weight sharing.
    let (_, json) = prune_and_share(&setup, "one_stage.sqz", &finetune_args(None, "6"), &[]);
    let report: Value = serde_json::from_str(&json).expect("JSON report");
    assert!(report.get("finetune_before_sharing").is_none(), "{report}");
    assert_eq!(report["finetune"]["steps"], 6, "{report}");
}
