//! `sqz-compress bench` on the real models and on small built ones: the JSON
//! it prints, its profile labels and its refusals of bad arguments.

use std::path::Path;

use crate::classic_cnns::build;
use crate::common::{han_net, run_ok, run_user_error, v11_param};

fn bench_json(model: &Path, batch: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        model.to_string_lossy().into_owned(),
        "--batch".into(),
        batch.into(),
        "--threads".into(),
        "2".into(),
        "--runs".into(),
        "2".into(),
        "--warmup".into(),
        "1".into(),
        "--json".into(),
    ];
    args.insert(0, "bench".into());
    args.extend(extra.iter().map(|s| s.to_string()));
    serde_json::from_str(run_ok(&args).trim()).expect("bench --json prints one JSON object")
}

#[test]
fn bench_reports_speed_load_time_and_a_profile_for_both_paths() {
    for (model, kinds) in [
        (v11_param(), &["conv 1x1", "conv 3x3", "pooling"][..]),
        (
            han_net(),
            &["conv 1x1", "conv 3x3", "conv 7x7", "pooling"][..],
        ),
    ] {
        for path in [&[][..], &["--im2col"][..]] {
            let report = bench_json(&model, "2", path);
            assert_eq!(report["batch"], 2);
            assert_eq!(report["threads"], 2);
            let rate = report["images_per_sec"].as_f64().unwrap();
            let (min, max) = (
                report["images_per_sec_min"].as_f64().unwrap(),
                report["images_per_sec_max"].as_f64().unwrap(),
            );
            assert!(0.0 < min && min <= rate && rate <= max, "{report}");
            assert!(report["load_ms"].as_f64().unwrap() > 0.0, "{report}");
            for kind in kinds {
                let ms = report["op_ms"][kind].as_f64();
                assert!(
                    ms.is_some_and(|ms| ms > 0.0),
                    "no time for {kind}: {report}"
                );
            }
        }
    }
}

/// `--per-node` lists every node of the graph once, in graph order, and its
/// times add up to the per-kind profile's.
#[test]
fn bench_per_node_times_cover_every_node_and_sum_to_the_profile() {
    let model = v11_param();
    let graph = formats::read_model(&model, &formats::ReadOptions::default())
        .expect("read the model")
        .graph;
    let report = bench_json(&model, "1", &["--per-node"]);
    let nodes = report["node_ms"]
        .as_array()
        .expect("node_ms with --per-node");
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    let expected: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, expected);
    let per_node: f64 = nodes.iter().map(|n| n["ms"].as_f64().unwrap()).sum();
    let per_kind: f64 = report["op_ms"]
        .as_object()
        .unwrap()
        .values()
        .map(|ms| ms.as_f64().unwrap())
        .sum();
    assert!(
        (per_node - per_kind).abs() <= 1e-6 * per_kind.max(1.0),
        "{per_node} vs {per_kind}"
    );
    let conv = nodes.iter().find(|n| n["name"] == "convrelu_0").unwrap();
    assert_eq!(conv["kind"], "conv 3x3");
    assert!(conv["ms"].as_f64().unwrap() > 0.0, "{conv}");
    assert!(bench_json(&model, "1", &[]).get("node_ms").is_none());
}

#[test]
fn bench_refuses_bad_arguments_and_models() {
    let model = v11_param();
    let model = model.to_string_lossy();
    for (flag, value) in [
        ("--batch", "0"),
        ("--batch", "100000"),
        ("--runs", "0"),
        ("--threads", "0"),
    ] {
        let message = run_user_error(&["bench", &model, flag, value]);
        assert!(message.contains(flag), "{flag} {value}: {message}");
    }
    let missing = run_user_error(&["bench", "no-such-model.onnx"]);
    assert!(missing.contains("no-such-model.onnx"), "{missing}");
}

/// Grouped and depthwise convolutions, LRN and Clip get their own rows in
/// the profile (depthwise 3x3 convolutions used to count as "conv 3x3").
#[test]
fn bench_profiles_grouped_and_depthwise_convolutions_lrn_and_clip_apart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (family, kinds) in [
        (
            "mobilenetv2",
            &["depthwise conv 3x3", "clip", "conv 1x1"][..],
        ),
        (
            "alexnet-caffe",
            &["grouped conv 5x5", "lrn", "conv 11x11"][..],
        ),
    ] {
        let model = build(family, 4, dir.path());
        let report = bench_json(&model, "1", &[]);
        for kind in kinds {
            assert!(
                report["op_ms"][kind].as_f64().is_some(),
                "{family}: no {kind} in {report}"
            );
        }
    }
}
