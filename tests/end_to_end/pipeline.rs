//! The compression pipeline as a library: a `Recipe` applied to a model
//! gives the compressed model, its `.sqz` bytes and the report, without
//! the CLI.

use crate::common::{han_net, reference_input, v11_param};
use formats::sqz::decode_model;
use formats::sqz::read_sqz;
use formats::{read_model, ReadOptions};
use sqz::engine::forward_hooked;
use sqz::error::Fault;
use sqz::pipeline::params::{Bits, Sparsity};
use sqz::pipeline::prune::PruneSpec;
use sqz::pipeline::quantize::{KMeans, QuantizeSpec};
use sqz::pipeline::sensitivity::Ladder;
use sqz::pipeline::sensitivity_cache::SensitivityRun;
use sqz::pipeline::tails::Tails;
use sqz::pipeline::target_size::TargetSize;
use sqz::pipeline::{compress, PipelineError, Recipe, Silent};

#[test]
fn a_recipe_gives_the_model_its_file_and_a_report() {
    let original = read_model(&han_net(), &ReadOptions::default()).expect("Han's model");
    let bits = Bits::new(5).unwrap();
    let recipe = Recipe {
        quantize: Some(QuantizeSpec::uniform(bits, KMeans::default())),
        ..Recipe::default()
    };
    let compressed = compress(original.clone(), &recipe, &mut Silent).expect("compressed");

    let decoded = decode_model(&read_sqz(&compressed.bytes).expect("valid .sqz")).expect("decodes");
    assert_eq!(
        decoded.layers, compressed.model.layers,
        "the file holds the model"
    );
    let report = &compressed.report;
    assert_eq!(report.file_bytes, compressed.bytes.len());
    assert_eq!(report.layers.len(), original.layers.len());
    for ((row, layer), before) in report
        .layers
        .iter()
        .zip(&compressed.model.layers)
        .zip(&original.layers)
    {
        assert_eq!(row.bits, Some(bits));
        // 5 bits: 31 shared values besides the pruned zero.
        let shared = layer.distinct_nonzero_weights().len();
        assert_eq!(row.shared_values, Some(shared));
        assert!(shared <= 31, "{}: {shared}", layer.name);
        assert_eq!(
            row.nonzeros,
            before.nonzeros(),
            "{}: the mask is kept",
            layer.name
        );
    }
    assert!(report.plan.is_none());
}

#[test]
fn recipes_the_model_cannot_take_are_user_errors() {
    let original = read_model(&v11_param(), &ReadOptions::default()).expect("v1.1");
    let prune = PruneSpec {
        sparsity: Sparsity::new(0.5).unwrap(),
        global: false,
        per_layer: [("nope".to_string(), Sparsity::ZERO)].into(),
    };
    let unknown = Recipe {
        prune: Some(prune),
        ..Recipe::default()
    };
    let err = compress(original.clone(), &unknown, &mut Silent).expect_err("unknown layer");
    assert!(
        matches!(&err, PipelineError::UnknownLayer { name, .. } if name == "nope"),
        "{err}"
    );
    assert!(!err.is_internal());

    let target = TargetSize {
        bytes: 400_000,
        sparsity: None,
        ladder: Ladder::default(),
        sensitivity: SensitivityRun {
            images: 1,
            cache: None,
        },
        kmeans: KMeans::default(),
    };
    let uncalibrated = Recipe {
        target_size: Some(target),
        ..Recipe::default()
    };
    let err = compress(original, &uncalibrated, &mut Silent).expect_err("needs calibration");
    assert!(
        matches!(err, PipelineError::TargetNeedsCalibration),
        "{err}"
    );
    assert!(!err.is_internal());
}

/// Sensitivity trials run only the graph's tail from the last cut before
/// the changed layer: the output must be (to float rounding) a full run with
/// the layer replaced, on v1.1 (ncnn, distinct blob names) and on Han's
/// v1.0 (Caffe, ReLUs in place).
#[test]
fn a_trial_from_the_last_cut_equals_a_full_run() {
    for (path, reference, side) in [
        (v11_param(), "squeezenet_v1.1", 224),
        (han_net(), "squeezenet_v1.0-deep-compression", 227),
    ] {
        let model = read_model(&path, &ReadOptions::default()).expect("model");
        let input = reference_input(reference, side);
        let mut nodes = 0;
        let (tails, output) =
            Tails::capture(&model, &input, &mut |_, _| nodes += 1).expect("captured");
        assert_eq!(nodes, model.graph.nodes.len(), "every node was observed");
        assert_eq!(
            output,
            forward_hooked(&model, &input, &mut |_, _, _| None).unwrap()
        );
        // A cut before conv1 and before each of the 8 fire modules at least.
        assert!(
            tails.cut_count() >= 9,
            "{reference}: {} cuts",
            tails.cut_count()
        );
        for (index, layer) in model.layers.iter().enumerate() {
            let mut changed = layer.clone();
            changed
                .weights
                .iter_mut()
                .step_by(3)
                .for_each(|w| *w *= -0.5);
            let full = forward_hooked(&model, &input, &mut |_, node, _| {
                matches!(&node.op, formats::Op::Conv(c) if c.layer == index)
                    .then(|| changed.clone())
            })
            .unwrap();
            let tail = tails.run_with(index, changed).expect("trial");
            // The tail runs on `Session::run`, whose Winograd 3x3
            // convolutions round differently from the hooked run's direct
            // ones (engine::blocked::winograd): equal to float rounding.
            assert_eq!(tail.shape, full.shape);
            for (a, b) in tail.data.iter().zip(&full.data) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{reference}, layer {}: {a} vs {b}",
                    layer.name
                );
            }
            assert_ne!(
                tail, output,
                "{reference}, layer {} changed nothing",
                layer.name
            );
        }
    }
}
