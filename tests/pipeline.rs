//! The compression pipeline as a library: a `Recipe` applied to a model
//! gives the compressed model, its `.sqz` bytes and the report, without
//! the CLI.

mod common;

use common::{han_net, v11_param};
use formats::sqz::decode_model;
use formats::sqz::read_sqz;
use formats::{read_model, ReadOptions};
use sqz::error::Fault;
use sqz::pipeline::params::{Bits, Sparsity};
use sqz::pipeline::prune::PruneSpec;
use sqz::pipeline::quantize::{KMeans, QuantizeSpec};
use sqz::pipeline::sensitivity::Ladder;
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
    let compressed = compress(&original, &recipe, &mut Silent).expect("compressed");

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
    let err = compress(&original, &unknown, &mut Silent).expect_err("unknown layer");
    assert!(
        matches!(&err, PipelineError::UnknownLayer { name, .. } if name == "nope"),
        "{err}"
    );
    assert!(!err.is_internal());

    let target = TargetSize {
        bytes: 400_000,
        sparsity: None,
        ladder: Ladder::default(),
        sensitivity_images: 1,
        kmeans: KMeans::default(),
    };
    let uncalibrated = Recipe {
        target_size: Some(target),
        ..Recipe::default()
    };
    let err = compress(&original, &uncalibrated, &mut Silent).expect_err("needs calibration");
    assert!(
        matches!(err, PipelineError::TargetNeedsCalibration),
        "{err}"
    );
    assert!(!err.is_internal());
}
