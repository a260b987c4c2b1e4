//! `.caffemodel` reading and writing: exact round trips of both real
//! models, a hand-made legacy (V1 `layers`) file, and refusals of weights
//! that do not fit their definition.

use crate::shared_data::Lcg;

use crate::shared_data::{shared, squeezenet_v1_0, squeezenet_v1_1, synthetic_model, V10_PROTOTXT};
use formats::caffemodel::proto::{
    BlobProto, BlobShape, LayerParameter, NetParameter, V1LayerParameter, V1_CONVOLUTION,
};
use formats::caffemodel::{
    read_caffemodel, read_caffemodel_path, write_caffemodel, write_prototxt,
};
use formats::{FormatError, Model, Op, Preprocess};
use prost::Message;

fn assert_bit_identical(a: &Model, b: &Model) {
    for (x, y) in a.layers.iter().zip(&b.layers) {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x.weights), bits(&y.weights), "weights of {}", x.name);
        assert_eq!(bits(&x.bias), bits(&y.bias), "biases of {}", x.name);
    }
}

#[test]
fn deep_compression_v1_0_round_trips_with_its_own_and_a_written_prototxt() {
    let model = squeezenet_v1_0();
    let bytes = write_caffemodel(&model).unwrap();
    let original = std::fs::read_to_string(shared(V10_PROTOTXT)).unwrap();
    let back = read_caffemodel(&bytes, &original).unwrap();
    assert_eq!(back, model);
    assert_bit_identical(&back, &model);
    let written = write_prototxt(&model).unwrap();
    assert_eq!(
        read_caffemodel(&bytes, &written).unwrap(),
        model,
        "the v1.0 preset is Caffe's, so nothing is lost"
    );
    assert_eq!(
        write_caffemodel(&back).unwrap(),
        bytes,
        "writing is deterministic"
    );

    let net = NetParameter::decode(bytes.as_slice()).unwrap();
    assert_eq!(net.layer.len(), 26);
    let conv1 = &net.layer[0];
    assert_eq!(
        (conv1.name.as_deref(), conv1.r#type.as_deref()),
        (Some("conv1"), Some("Convolution"))
    );
    assert_eq!(conv1.blobs[0].shape.as_ref().unwrap().dim, [96, 3, 7, 7]);
    assert_eq!(conv1.blobs[1].shape.as_ref().unwrap().dim, [96]);
}

#[test]
fn ncnn_v1_1_round_trips_through_a_written_prototxt() {
    let model = squeezenet_v1_1();
    let bytes = write_caffemodel(&model).unwrap();
    let prototxt = write_prototxt(&model).unwrap();
    let back = read_caffemodel(&bytes, &prototxt).unwrap();
    // A prototxt has no place for torchvision's preprocessing.
    let expected = Model {
        preprocess: Preprocess {
            crop: 224,
            ..Preprocess::caffe()
        },
        ..model.clone()
    };
    assert_eq!(back, expected);
    assert_bit_identical(&back, &model);
    assert!(
        prototxt.contains("name: \"convrelu_0/fused_relu\"\n  type: \"ReLU\""),
        "fused ReLUs become ReLU layers"
    );
    assert_eq!(prototxt.matches("type: \"Flatten\"").count(), 2);
}

#[test]
fn every_op_caffe_expresses_round_trips() {
    let model = synthetic_model(0);
    let prototxt = write_prototxt(&model).unwrap();
    let back = read_caffemodel(&write_caffemodel(&model).unwrap(), &prototxt).unwrap();
    assert_eq!(
        back,
        Model {
            preprocess: Preprocess {
                crop: 16,
                ..Preprocess::caffe()
            },
            ..model
        }
    );
    assert!(
        prototxt.contains("pool: MAX kernel_h: 2 kernel_w: 2 stride_h: 2 stride_w: 2 pad_h: 0 pad_w: 0 round_mode: FLOOR"),
        "{prototxt}"
    );
    // Average pooling over padding counts it, as Caffe does.
    let padded = synthetic_model(1);
    let prototxt = write_prototxt(&padded).unwrap();
    let back = read_caffemodel(&write_caffemodel(&padded).unwrap(), &prototxt).unwrap();
    assert_eq!((back.graph, back.layers), (padded.graph, padded.layers));
}

#[test]
fn grouped_convolutions_lrn_clip_and_fully_connected_layers_round_trip() {
    let mut model = synthetic_model(1);
    let nodes = &mut model.graph.nodes;
    // b (4 -> 4 channels, 1x1) in 2 groups, an LRN and a ReLU6 after it.
    let Op::Conv(b) = &mut nodes[1].op else {
        panic!("node 1 is conv b");
    };
    b.groups = 2;
    let layer = &mut model.layers[b.layer];
    layer.shape[1] /= 2;
    layer.weights.truncate(layer.weights.len() / 2);
    let b_output = nodes[1].outputs[0].clone();
    let lrn = Op::Lrn(formats::Lrn {
        size: 3,
        alpha: 2e-4,
        beta: 0.75,
        bias: 2.0,
    });
    for (i, (name, op)) in [
        ("norm", lrn),
        ("six", Op::Clip(formats::Clip { min: 0.0, max: 6.0 })),
    ]
    .into_iter()
    .enumerate()
    {
        nodes.insert(
            2 + i,
            formats::Node {
                name: name.into(),
                op,
                inputs: vec![format!("{b_output}{}", "'".repeat(i))],
                outputs: vec![format!("{b_output}{}", "'".repeat(i + 1))],
            },
        );
    }
    for node in &mut nodes[4..] {
        for input in node.inputs.iter_mut().filter(|i| **i == b_output) {
            *input = format!("{b_output}''");
        }
    }
    model.validate().unwrap();
    let prototxt = write_prototxt(&model).unwrap();
    for expected in [
        "group: 2",
        "type: \"LRN\"",
        "lrn_param { local_size: 3 alpha: 0.0002 beta: 0.75 k: 2 }",
        "clip_param { min: 0 max: 6 }",
        "type: \"InnerProduct\"",
    ] {
        assert!(prototxt.contains(expected), "{expected}: {prototxt}");
    }
    let bytes = write_caffemodel(&model).unwrap();
    let fc = NetParameter::decode(bytes.as_slice())
        .unwrap()
        .layer
        .pop()
        .unwrap();
    assert_eq!(fc.r#type.as_deref(), Some("InnerProduct"));
    assert_eq!(
        fc.blobs[0].shape.as_ref().unwrap().dim.len(),
        2,
        "[out, in]"
    );
    let back = read_caffemodel(&bytes, &prototxt).unwrap();
    assert_eq!((back.graph, back.layers), (model.graph, model.layers));
    // Caffe's average pooling always counts the padding.
    let mut excluding = synthetic_model(1);
    for node in &mut excluding.graph.nodes {
        if let Op::Pool(p) = &mut node.op {
            p.count_include_pad = false;
        }
    }
    let e = write_prototxt(&excluding).unwrap_err();
    assert!(
        matches!(&e, FormatError::Unsupported(m) if m.contains("node avg: average pooling that leaves the padding out")),
        "{e}"
    );
}

/// A modern saved layer with blobs of the given values (1-D shapes).
fn saved_layer(name: &str, blobs: &[&[f32]]) -> LayerParameter {
    LayerParameter {
        name: Some(name.into()),
        blobs: blobs
            .iter()
            .map(|values| BlobProto {
                shape: Some(BlobShape {
                    dim: vec![values.len() as i64],
                }),
                data: values.to_vec(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn batch_norm_and_scale_fold_into_the_convolution() {
    let prototxt = r#"
        input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 1 bias_term: false } }
        layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" batch_norm_param { eps: 1 } }
        layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
        layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
        layer { name: "alone" type: "Scale" bottom: "conv" top: "conv" }
    "#;
    // Mean 1 and variance 3 stored times the factor 2: scale 1/2.
    let net = NetParameter {
        layer: vec![
            saved_layer("conv", &[&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]),
            saved_layer("bn", &[&[2.0, 2.0], &[6.0, 6.0], &[2.0]]),
            saved_layer("scale", &[&[2.0, 4.0], &[1.0, -1.0]]),
            saved_layer("alone", &[&[0.5, 0.25]]),
        ],
        ..Default::default()
    };
    let model = read_caffemodel(&net.encode_to_vec(), prototxt).unwrap();
    let names: Vec<&str> = model.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["conv", "alone"],
        "BatchNorm and Scale fold into conv"
    );
    // Channel c: (w * 1/2 - 1/2) * gamma + beta.
    assert_eq!(model.layers[0].weights, [1.0, 2.0, 3.0, 8.0, 10.0, 12.0]);
    assert_eq!(model.layers[0].bias, [0.0, -3.0]);
    // After the ReLU a Scale stays: a depthwise 1x1 convolution.
    assert_eq!(model.layers[1].shape, [2, 1, 1, 1]);
    assert_eq!(model.layers[1].bias, [0.0, 0.0]);
    assert!(matches!(
        model.graph.nodes.last().unwrap().op,
        Op::Conv(formats::Conv { groups: 2, .. })
    ));
    let mut short = net.clone();
    short.layer[1].blobs.pop();
    let e = read_caffemodel(&short.encode_to_vec(), prototxt).unwrap_err();
    assert!(
        e.to_string().contains("mean, variance and scale factor"),
        "{e}"
    );
}

#[test]
fn path_reader_finds_the_prototxt_beside_the_weights() {
    let model = squeezenet_v1_0();
    let dir = std::env::temp_dir().join(format!("sqz-caffemodel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("squeezenet.caffemodel");
    std::fs::write(&weights, write_caffemodel(&model).unwrap()).unwrap();
    let e = read_caffemodel_path(&weights, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no .prototxt beside"), "{e}");
    std::fs::write(dir.join("deploy.prototxt"), write_prototxt(&model).unwrap()).unwrap();
    assert_eq!(read_caffemodel_path(&weights, None).unwrap(), model);
    assert_eq!(
        read_caffemodel_path(&weights, Some(&shared(V10_PROTOTXT))).unwrap(),
        model
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const PROTOTXT: &str = r#"
    input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
    layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
    layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
    layer { name: "plain" type: "Convolution" bottom: "conv" top: "plain" convolution_param { num_output: 4 kernel_size: 1 bias_term: false } }
"#;

/// A legacy blob with the 4-D num/channels/height/width shape.
fn legacy_blob(dims: [i64; 4], data: Vec<f32>) -> BlobProto {
    let [n, c, h, w] = dims.map(Some);
    BlobProto {
        num: n,
        channels: c,
        height: h,
        width: w,
        data,
        ..Default::default()
    }
}

fn v1_layer(name: &str, blobs: Vec<BlobProto>) -> V1LayerParameter {
    V1LayerParameter {
        name: Some(name.into()),
        r#type: Some(V1_CONVOLUTION),
        blobs,
        ..Default::default()
    }
}

/// Old-style weights for [`PROTOTXT`]: legacy `layers` entries, legacy blob
/// shapes (Caffe stores a bias as 1x1x1xN), and a data layer without blobs.
fn legacy_net() -> NetParameter {
    let conv_weights: Vec<f32> = (0..54).map(|i| i as f32 * 0.25).collect();
    let plain_weights: Vec<f32> = (0..8).map(|i| -(i as f32)).collect();
    NetParameter {
        name: Some("old".into()),
        layers: vec![
            V1LayerParameter {
                name: Some("data".into()),
                r#type: Some(5),
                ..Default::default()
            },
            v1_layer("plain", vec![legacy_blob([4, 2, 1, 1], plain_weights)]),
            v1_layer(
                "conv",
                vec![
                    legacy_blob([2, 3, 3, 3], conv_weights),
                    legacy_blob([1, 1, 1, 2], vec![0.5, -0.5]),
                ],
            ),
        ],
        ..Default::default()
    }
}

#[test]
fn legacy_layers_load() {
    let m = read_caffemodel(&legacy_net().encode_to_vec(), PROTOTXT).unwrap();
    assert_eq!(
        m.layers[0].weights,
        (0..54).map(|i| i as f32 * 0.25).collect::<Vec<_>>()
    );
    assert_eq!(m.layers[0].bias, [0.5, -0.5]);
    assert_eq!(
        m.layers[1].weights,
        (0..8).map(|i| -(i as f32)).collect::<Vec<_>>()
    );
    assert_eq!(m.layers[1].bias, [0.0; 4], "no bias_term: zeros");
    assert_eq!(m.graph.nodes.len(), 3);
    assert_eq!(
        m.graph.nodes[1].op,
        Op::Relu,
        "an ordinary ReLU layer stays a node"
    );
}

/// The legacy net changed by `edit` must fail to load, naming `expected`.
fn refused(edit: impl FnOnce(&mut NetParameter), expected: &str) {
    let mut net = legacy_net();
    edit(&mut net);
    let e = read_caffemodel(&net.encode_to_vec(), PROTOTXT)
        .unwrap_err()
        .to_string();
    assert!(e.contains(expected), "{expected}: {e}");
}

#[test]
fn weights_that_do_not_fit_the_definition_are_refused() {
    refused(
        |n| {
            n.layers.remove(2);
        },
        "no weights for layer conv",
    );
    refused(
        |n| {
            n.layers[2].blobs.pop();
        },
        "1 blobs in the .caffemodel, the prototxt needs 2",
    );
    refused(
        |n| n.layers[1].blobs.push(BlobProto::default()),
        "2 blobs in the .caffemodel, the prototxt needs 1",
    );
    refused(
        |n| {
            n.layers[2].blobs[0].data.pop();
        },
        "has shape [2, 3, 3, 3] but 53 values",
    );
    refused(
        |n| n.layers[2].blobs[0] = legacy_blob([2, 3, 1, 9], vec![0.0; 54]),
        "the prototxt says [2, 3, 3, 3]",
    );
    refused(
        |n| n.layers[2].blobs[1] = legacy_blob([1, 1, 1, 3], vec![0.0; 3]),
        "bias blob has 3 values, the prototxt needs 2",
    );
    refused(|n| n.layers[2].blobs[1].width = Some(i64::MAX), "has shape");
    refused(
        |n| {
            n.layers[2].blobs[1] = BlobProto {
                double_data: vec![0.5, -0.5],
                ..Default::default()
            }
        },
        "double-precision",
    );
    refused(
        |n| {
            n.layer.push(LayerParameter {
                name: Some("conv".into()),
                blobs: vec![BlobProto::default()],
                ..Default::default()
            })
        },
        "two layers named \"conv\"",
    );
    let modern = BlobProto {
        shape: Some(BlobShape { dim: vec![2] }),
        data: vec![1.0, 2.0],
        ..Default::default()
    };
    let mut net = legacy_net();
    net.layers[2].blobs[1] = modern;
    assert_eq!(
        read_caffemodel(&net.encode_to_vec(), PROTOTXT)
            .unwrap()
            .layers[0]
            .bias,
        [1.0, 2.0],
        "shape wins over legacy fields"
    );
}

#[test]
fn models_caffe_cannot_express_are_refused_by_the_writers() {
    let mut shared_layer = squeezenet_v1_0();
    shared_layer.layers[1].name = shared_layer.layers[0].name.clone();
    let e = write_caffemodel(&shared_layer).unwrap_err();
    assert!(
        e.to_string().contains("two layers are named \"conv1\""),
        "{e}"
    );
    assert!(write_prototxt(&shared_layer)
        .unwrap_err()
        .to_string()
        .contains("two Caffe layers would be named \"conv1\""));
    let mut dangling = squeezenet_v1_0();
    dangling.graph.output = "conv1".into();
    assert!(matches!(
        write_prototxt(&dangling),
        Err(FormatError::Unsupported(_))
    ));
}

#[test]
fn truncated_mutated_and_garbage_bytes_fail_cleanly() {
    let model = squeezenet_v1_0();
    let prototxt = std::fs::read_to_string(shared(V10_PROTOTXT)).unwrap();
    let bytes = write_caffemodel(&model).unwrap();
    let step = bytes.len() / 97;
    for cut in (0..bytes.len())
        .step_by(step)
        .chain([1, 2, 3, 10, 100, bytes.len() - 1])
    {
        assert!(
            read_caffemodel(&bytes[..cut], &prototxt).is_err(),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
    let mut rng = Lcg(5);
    for _ in 0..60 {
        let mut mutated = bytes.clone();
        for _ in 0..4 {
            let at = rng.below(mutated.len());
            mutated[at] ^= 1 << rng.below(8);
        }
        let _ = read_caffemodel(&mutated, &prototxt);
    }
    for len in [1, 7, 100, 10_000] {
        let garbage: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        assert!(
            read_caffemodel(&garbage, &prototxt).is_err(),
            "{len} random bytes"
        );
    }
}
