//! ONNX import and export: exact round trips of both real models, a
//! hand-made model exercising the encodings and operators exporters use,
//! and refusals of what the engine cannot run the same way.

use crate::shared_data::Lcg;

use crate::shared_data::{squeezenet_v1_0, squeezenet_v1_1, synthetic_model};
use formats::onnx::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use formats::onnx::{read_onnx, read_onnx_path, write_onnx, PreprocessSource};
use formats::{Conv, FormatError, Model, Op, Pool, PoolKind, Preprocess};
use prost::Message;

// TensorProto.DataType and AttributeProto.AttributeType values, from onnx.proto.
const FLOAT: i32 = 1;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const ATTR_FLOAT: i32 = 1;
const ATTR_INT: i32 = 2;
const ATTR_STRING: i32 = 3;
const ATTR_INTS: i32 = 7;

fn assert_bit_identical(a: &Model, b: &Model) {
    assert_eq!(a.layers.len(), b.layers.len());
    for (x, y) in a.layers.iter().zip(&b.layers) {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x.weights), bits(&y.weights), "weights of {}", x.name);
        assert_eq!(bits(&x.bias), bits(&y.bias), "biases of {}", x.name);
    }
}

fn count_ops(proto: &ModelProto, op_type: &str) -> usize {
    proto.graph.as_ref().map_or(0, |g| {
        g.node.iter().filter(|n| n.op_type == op_type).count()
    })
}

#[test]
fn real_models_round_trip_exactly() {
    for (model, relus) in [(squeezenet_v1_1(), 26), (squeezenet_v1_0(), 26)] {
        let bytes = write_onnx(&model).unwrap();
        let (back, source) = read_onnx(&bytes, Some(Preprocess::torchvision())).unwrap();
        assert_eq!(source, PreprocessSource::Metadata);
        assert_eq!(back, model);
        assert_bit_identical(&back, &model);
        assert_eq!(
            write_onnx(&back).unwrap(),
            bytes,
            "writing is deterministic"
        );

        let proto = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!((proto.ir_version, proto.opset_import[0].version), (7, 13));
        let graph = proto.graph.as_ref().unwrap();
        let input = graph.input[0]
            .r#type
            .as_ref()
            .unwrap()
            .tensor_type
            .as_ref()
            .unwrap();
        let dims: Vec<(Option<i64>, Option<String>)> = input
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| (d.dim_value, d.dim_param.clone()))
            .collect();
        let crop = model.preprocess.crop as i64;
        assert_eq!(
            dims,
            [
                (None, Some("N".into())),
                (Some(3), None),
                (Some(crop), None),
                (Some(crop), None)
            ]
        );
        assert_eq!(graph.output[0].name, model.graph.output);
        assert_eq!(count_ops(&proto, "Conv"), 26);
        assert_eq!(
            count_ops(&proto, "Relu"),
            relus,
            "fused or not, every ReLU is a node in ONNX"
        );
        assert_eq!(count_ops(&proto, "MaxPool"), 3);
        let pools = graph.node.iter().filter(|n| n.op_type == "MaxPool");
        assert!(pools
            .flat_map(|n| &n.attribute)
            .filter(|a| a.name == "ceil_mode")
            .all(|a| a.i == 1));
        assert_eq!(
            graph
                .initializer
                .iter()
                .filter(|t| t.data_type == FLOAT)
                .count(),
            52
        );
    }
}

#[test]
fn every_engine_op_round_trips_exactly() {
    let model = synthetic_model(1);
    let bytes = write_onnx(&model).unwrap();
    let (back, _) = read_onnx(&bytes, None).unwrap();
    assert_eq!(back, model);
    assert_bit_identical(&back, &model);
    let proto = ModelProto::decode(bytes.as_slice()).unwrap();
    let ops: Vec<&str> = proto
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .map(|n| n.op_type.as_str())
        .collect();
    assert_eq!(
        ops,
        [
            "Conv",
            "Relu",
            "Conv",
            "Add",
            "Sum",
            "Sum",
            "AveragePool",
            "MaxPool",
            "Concat",
            "Dropout",
            "Relu",
            "GlobalAveragePool",
            "Flatten",
            "Gemm",
            "Softmax"
        ]
    );
    let average = &proto.graph.as_ref().unwrap().node[6];
    let attribute = |name: &str| {
        average
            .attribute
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.i)
    };
    assert_eq!(
        (attribute("count_include_pad"), attribute("ceil_mode")),
        (Some(1), Some(1))
    );
}

#[test]
fn path_reader_reads_what_the_writer_wrote() {
    let model = squeezenet_v1_1();
    let path = std::env::temp_dir().join(format!("sqz-onnx-{}.onnx", std::process::id()));
    std::fs::write(&path, write_onnx(&model).unwrap()).unwrap();
    let (back, _) = read_onnx_path(&path, None).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, model);
    let missing = read_onnx_path(&path, None).unwrap_err();
    assert!(matches!(missing, FormatError::Io { .. }), "{missing}");
}

// ---- A hand-made model, built the way exporters write them. ----

fn ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_INTS,
        ints: values.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_INT,
        i: value,
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_FLOAT,
        f: value,
        ..Default::default()
    }
}

fn string(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_STRING,
        s: value.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn node(
    name: &str,
    op_type: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: name.into(),
        op_type: op_type.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute,
        ..Default::default()
    }
}

fn f16_bits(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// Conv weights: 2x3x3x3, value i/4 - 3 for flat index i (exact in f32).
fn conv_weights() -> Vec<f32> {
    (0..54).map(|i| i as f32 / 4.0 - 3.0).collect()
}

/// Gemm B stored untransposed as K x out = 2 x 5, value (k*5+o)/8 (exact in f16).
fn gemm_b() -> Vec<f32> {
    (0..10).map(|i| i as f32 / 8.0).collect()
}

/// x [N,3,4,4] -> Conv 3x3 pad 1 -> Relu -> GlobalAveragePool -> Flatten
/// -> Gemm (transB=0) -> Softmax. Conv weights in float_data, conv bias
/// FLOAT16 in raw_data, Gemm B FLOAT16 in int32_data, Gemm C in raw_data.
fn tiny() -> ModelProto {
    let conv_bias: Vec<u8> = [0.5f32, -1.5]
        .iter()
        .flat_map(|&v| f16_bits(v).to_le_bytes())
        .collect();
    let initializer = vec![
        TensorProto {
            name: "c.weight".into(),
            dims: vec![2, 3, 3, 3],
            data_type: FLOAT,
            float_data: conv_weights(),
            ..Default::default()
        },
        TensorProto {
            name: "c.bias".into(),
            dims: vec![2],
            data_type: FLOAT16,
            raw_data: conv_bias.into(),
            ..Default::default()
        },
        TensorProto {
            name: "fc.weight".into(),
            dims: vec![2, 5],
            data_type: FLOAT16,
            int32_data: gemm_b().iter().map(|&v| f16_bits(v) as i32).collect(),
            ..Default::default()
        },
        TensorProto {
            name: "fc.bias".into(),
            dims: vec![5],
            data_type: FLOAT,
            raw_data: [1.0f32, 2.0, 3.0, 4.0, 5.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            ..Default::default()
        },
    ];
    let nodes = vec![
        node(
            "conv",
            "Conv",
            &["x", "c.weight", "c.bias"],
            "c",
            vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
        ),
        node("relu", "Relu", &["c"], "r", vec![]),
        node("gap", "GlobalAveragePool", &["r"], "g", vec![]),
        node("flat", "Flatten", &["g"], "f", vec![int("axis", 1)]),
        node(
            "fc",
            "Gemm",
            &["f", "fc.weight", "fc.bias"],
            "logits",
            vec![float("alpha", 1.0), int("transB", 0)],
        ),
        node("prob", "Softmax", &["logits"], "p", vec![int("axis", -1)]),
    ];
    let dims = [Dimension {
        dim_value: None,
        dim_param: Some("batch".into()),
    }]
    .into_iter()
    .chain([3, 4, 4].map(|v| Dimension {
        dim_value: Some(v),
        dim_param: None,
    }))
    .collect();
    let tensor = |shape| {
        Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: FLOAT,
                shape,
            }),
        })
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer,
            input: vec![ValueInfoProto {
                name: "x".into(),
                r#type: tensor(Some(TensorShapeProto { dim: dims })),
            }],
            output: vec![ValueInfoProto {
                name: "p".into(),
                r#type: tensor(None),
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn graph_mut(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().unwrap()
}

fn import(m: &ModelProto) -> Result<Model, FormatError> {
    read_onnx(&m.encode_to_vec(), Some(Preprocess::torchvision())).map(|(model, _)| model)
}

#[test]
fn hand_made_model_imports_with_every_encoding() {
    let (m, source) = read_onnx(&tiny().encode_to_vec(), Some(Preprocess::torchvision())).unwrap();
    assert_eq!(source, PreprocessSource::Fallback);
    assert_eq!(
        m.preprocess,
        Preprocess {
            crop: 4,
            ..Preprocess::torchvision()
        },
        "the crop follows the declared input"
    );
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["c", "fc"]);
    assert_eq!(m.layers[0].shape, [2, 3, 3, 3]);
    assert_eq!(m.layers[0].weights, conv_weights(), "float_data");
    assert_eq!(m.layers[0].bias, [0.5, -1.5], "FLOAT16 raw_data");
    // Gemm with transB=0: B[k][o] becomes weight[o][k].
    assert_eq!(m.layers[1].shape, [5, 2, 1, 1]);
    let b = gemm_b();
    let expected: Vec<f32> = (0..5)
        .flat_map(|o| (0..2).map(move |k| (o, k)))
        .map(|(o, k)| b[k * 5 + o])
        .collect();
    assert_eq!(
        m.layers[1].weights, expected,
        "FLOAT16 int32_data, transposed"
    );
    assert_eq!(
        m.layers[1].bias,
        [1.0, 2.0, 3.0, 4.0, 5.0],
        "FLOAT raw_data"
    );
    let ops: Vec<&Op> = m.graph.nodes.iter().map(|n| &n.op).collect();
    assert_eq!(
        ops,
        [
            &Op::Conv(Conv {
                layer: 0,
                stride_h: 1,
                stride_w: 1,
                pad_h: 1,
                pad_w: 1,
                groups: 1,
                relu: false
            }),
            &Op::Relu,
            &Op::GlobalAvgPool,
            &Op::Flatten,
            &Op::Conv(Conv {
                layer: 1,
                stride_h: 1,
                stride_w: 1,
                pad_h: 0,
                pad_w: 0,
                groups: 1,
                relu: false
            }),
            &Op::Softmax,
        ]
    );
    assert_eq!(
        (m.graph.input.as_str(), m.graph.output.as_str()),
        ("x", "logits"),
        "logits are the Softmax's input"
    );

    let e = read_onnx(&tiny().encode_to_vec(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no sqz.preprocess metadata"), "{e}");
    // The import survives a write and read of its own.
    let again = read_onnx(&write_onnx(&m).unwrap(), None).unwrap();
    assert_eq!(again, (m, PreprocessSource::Metadata));
}

#[test]
fn exporter_variants_import_alike() {
    let reference = import(&tiny()).unwrap();
    // Reshape [0, -1] instead of Flatten, with its shape from a Constant node.
    let mut reshaped = tiny();
    let g = graph_mut(&mut reshaped);
    let shape = TensorProto {
        dims: vec![2],
        data_type: INT64,
        int64_data: vec![0, -1],
        ..Default::default()
    };
    g.node[3] = node("flat", "Reshape", &["g", "shape"], "f", vec![]);
    let constant = AttributeProto {
        name: "value".into(),
        r#type: 4,
        t: Some(shape),
        ..Default::default()
    };
    g.node.insert(
        3,
        node("shape_const", "Constant", &[], "shape", vec![constant]),
    );
    assert_eq!(import(&reshaped).unwrap(), reference);
    // auto_pad SAME_UPPER at stride 1 is the explicit pad 1; Dropout with a
    // false training_mode is the identity.
    let mut same = tiny();
    let g = graph_mut(&mut same);
    g.node[0].attribute = vec![string("auto_pad", "SAME_UPPER")];
    g.initializer.push(TensorProto {
        name: "no".into(),
        dims: vec![],
        data_type: BOOL,
        raw_data: vec![0].into(),
        ..Default::default()
    });
    g.node[1] = node("relu", "Relu", &["c"], "r0", vec![]);
    g.node
        .insert(2, node("drop", "Dropout", &["r0", "", "no"], "r", vec![]));
    let m = import(&same).unwrap();
    assert_eq!(m.graph.nodes[0].op, reference.graph.nodes[0].op);
    assert_eq!(m.graph.nodes[2].op, Op::Dropout);
    // At stride 2 on a 5x5 input, SAME_UPPER and SAME_LOWER pad 2 in total
    // per axis (output ceil(5 / 2) = 3): 1 on each side.
    for mode in ["SAME_UPPER", "SAME_LOWER"] {
        let mut strided = tiny();
        let g = graph_mut(&mut strided);
        g.node[0].attribute = vec![string("auto_pad", mode), ints("strides", &[2, 2])];
        input_dims(g)[2..]
            .iter_mut()
            .for_each(|d| d.dim_value = Some(5));
        let m = import(&strided).unwrap_or_else(|e| panic!("{mode}: {e}"));
        let Op::Conv(conv) = &m.graph.nodes[0].op else {
            panic!("{mode}: not a convolution")
        };
        assert_eq!(
            [conv.stride_h, conv.pad_h, conv.stride_w, conv.pad_w],
            [2, 1, 2, 1],
            "{mode}"
        );
    }
    // A Relu named <conv>/fused_relu (as write_onnx names it) is folded in.
    let mut fused = tiny();
    graph_mut(&mut fused).node[1].name = "conv/fused_relu".into();
    let m = import(&fused).unwrap();
    assert_eq!(
        m.graph.nodes[0].op,
        Op::Conv(Conv {
            layer: 0,
            stride_h: 1,
            stride_w: 1,
            pad_h: 1,
            pad_w: 1,
            groups: 1,
            relu: true
        })
    );
    assert_eq!(m.graph.nodes[0].outputs, ["r"]);
}

#[test]
fn pools_import_with_their_rounding() {
    let mut pooled = tiny();
    let g = graph_mut(&mut pooled);
    g.node[1] = node("relu", "Relu", &["c"], "r0", vec![]);
    let window = vec![
        ints("kernel_shape", &[3, 3]),
        ints("strides", &[2, 2]),
        int("ceil_mode", 1),
    ];
    g.node
        .insert(2, node("mp", "MaxPool", &["r0"], "r1", window.clone()));
    let average = [
        window,
        vec![ints("pads", &[1, 1, 1, 1]), int("count_include_pad", 1)],
    ]
    .concat();
    g.node
        .insert(3, node("ap", "AveragePool", &["r1"], "r", average));
    let m = import(&pooled).unwrap();
    let pool = |kind, pad| {
        Op::Pool(Pool {
            kind,
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 2,
            stride_w: 2,
            pad_h: pad,
            pad_w: pad,
            ceil_mode: true,
            count_include_pad: true,
        })
    };
    assert_eq!(m.graph.nodes[2].op, pool(PoolKind::Max, 0));
    assert_eq!(m.graph.nodes[3].op, pool(PoolKind::Avg, 1));
}

/// `tiny()` changed by `edit` must fail to import with a message
/// containing `expected`, and the error must be `Unsupported` if `unsupported`.
fn refused(edit: impl FnOnce(&mut GraphProto), expected: &str, unsupported: bool) {
    let mut m = tiny();
    edit(graph_mut(&mut m));
    let e = import(&m).unwrap_err();
    assert!(e.to_string().contains(expected), "{expected}: {e}");
    assert_eq!(matches!(e, FormatError::Unsupported(_)), unsupported, "{e}");
}

#[test]
fn unsupported_operators_and_attributes_are_named() {
    refused(
        |g| g.node[1] = node("norm", "Selu", &["c"], "r", vec![]),
        "unsupported: ONNX node norm (Selu): operator Selu",
        true,
    );
    refused(
        |g| g.node[1] = node("norm", "LRN", &["c"], "r", vec![int("size", 0)]),
        "size Some(0)",
        false,
    );
    refused(
        |g| g.node[1] = node("", "Sigmoid", &["c"], "r", vec![]),
        "node Sigmoid_1 (Sigmoid)",
        true,
    );
    refused(
        |g| g.node[0].attribute.push(int("group", 2)),
        "expect 6 input channels (2 groups of 3) but x has 3",
        false,
    );
    refused(
        |g| g.node[0].attribute.push(int("group", 3)),
        "2 output channels do not split into 3 groups",
        false,
    );
    refused(
        |g| g.node[0].attribute.push(ints("dilations", &[2, 2])),
        "dilations [2, 2]",
        true,
    );
    refused(
        |g| g.node[0].attribute[0] = ints("pads", &[1, 1, 0, 0]),
        "asymmetric pads",
        true,
    );
    // On the 4x4 input, SAME at stride 2 pads 1 in total: one side only.
    refused(
        |g| g.node[0].attribute = vec![string("auto_pad", "SAME_UPPER"), ints("strides", &[2, 2])],
        "auto_pad SAME_UPPER on a 4x4 input needs padding [1, 1] in total",
        true,
    );
    refused(
        |g| {
            g.node[0].attribute = vec![string("auto_pad", "SAME_LOWER"), ints("strides", &[2, 2])];
            input_dims(g)[2..].fill(Dimension::default());
        },
        "auto_pad SAME_LOWER with a stride or even kernel on an input of unknown size",
        true,
    );
    refused(
        |g| g.node[0].attribute.push(int("mystery", 1)),
        "attribute mystery",
        true,
    );
    refused(
        |g| g.node[4].attribute.push(float("beta", f32::NAN)),
        "beta NaN",
        false,
    );
    refused(
        |g| g.node[4].attribute.push(int("transA", 1)),
        "transA",
        true,
    );
    refused(|g| g.node[4].input[0] = "g".into(), "rank 4", true);
    refused(
        |g| g.node[5].attribute = vec![int("axis", 0)],
        "softmax axis 0",
        true,
    );
    refused(
        |g| {
            g.node[2] = node(
                "ap",
                "AveragePool",
                &["r"],
                "g",
                vec![ints("kernel_shape", &[2, 2]), int("count_include_pad", 2)],
            )
        },
        "count_include_pad 2",
        false,
    );
    refused(
        |g| g.node[1] = node("bn", "BatchNormalization", &["c", "c.bias"], "r", vec![]),
        "2 inputs (needs 5)",
        false,
    );
    refused(
        |g| g.node[1] = node("clip", "Clip", &["c", "c.bias"], "r", vec![]),
        "bound c.bias is not a scalar",
        true,
    );
    refused(
        |g| {
            g.node[4] = node(
                "fc",
                "MatMul",
                &["f", "fc.weight"],
                "logits",
                vec![int("x", 1)],
            )
        },
        "attribute x",
        true,
    );
    refused(
        |g| g.node[4] = node("fc", "Add", &["f", "fc.bias"], "logits", vec![]),
        "input fc.bias is a constant tensor",
        true,
    );
    refused(
        |g| g.node[1].domain = "com.example".into(),
        "domain com.example",
        true,
    );
    refused(
        |g| g.node[1].input[0] = "nowhere".into(),
        "reads nowhere",
        false,
    );
    refused(
        |g| g.node[1].input[0] = "c.bias".into(),
        "constant tensor",
        true,
    );
    refused(
        |g| g.initializer[0].dims = vec![200, 3, 3, 3],
        "need 5400 float_data values but 54",
        false,
    );
    refused(
        |g| g.initializer[0].dims = vec![1 << 40, 3, 3, 3],
        "exceed",
        true,
    );
    refused(
        |g| g.initializer[1].dims = vec![3],
        "need 6 raw bytes but 4",
        false,
    );
    refused(|g| g.initializer[0].data_type = 11, "element type 11", true);
    refused(|g| g.input.push(g.input[0].clone()), "2 inputs", true);
    refused(
        |g| g.node[5].attribute.push(int("axis", 1)),
        "given twice",
        false,
    );
    let mut old = tiny();
    old.opset_import[0].version = 6;
    assert!(import(&old).unwrap_err().to_string().contains("opset 6"));
    let mut reshape = tiny();
    let g = graph_mut(&mut reshape);
    g.initializer.push(TensorProto {
        name: "s".into(),
        dims: vec![3],
        data_type: INT64,
        int64_data: vec![0, 2, -1],
        ..Default::default()
    });
    g.node[3] = node("flat", "Reshape", &["g", "s"], "f", vec![]);
    assert!(import(&reshape)
        .unwrap_err()
        .to_string()
        .contains("Reshape to [0, 2, -1]"));
}

#[test]
fn truncated_mutated_and_garbage_bytes_fail_cleanly() {
    let bytes = write_onnx(&squeezenet_v1_1()).unwrap();
    let step = bytes.len() / 97;
    for cut in (0..bytes.len())
        .step_by(step)
        .chain([1, 2, 3, 10, 100, bytes.len() - 1])
    {
        assert!(
            read_onnx(&bytes[..cut], None).is_err(),
            "cut at {cut} of {}",
            bytes.len()
        );
    }
    let mut rng = Lcg(11);
    for _ in 0..60 {
        let mut mutated = bytes.clone();
        for _ in 0..4 {
            let at = rng.below(mutated.len());
            mutated[at] ^= 1 << rng.below(8);
        }
        let _ = read_onnx(&mutated, Some(Preprocess::torchvision()));
    }
    // A model of the classic CNN operators, mutated the same way.
    let (bn, mut tensors) = batch_norm("c", "b");
    tensors.push(float_tensor("dw.weight", &[2, 1, 3, 3], &[0.25; 18]));
    tensors.push(float_tensor("hi", &[], &[6.0]));
    let nodes = vec![
        bn,
        node(
            "dw",
            "Conv",
            &["b", "dw.weight"],
            "d",
            vec![int("group", 2), ints("pads", &[1; 4])],
        ),
        node("norm", "LRN", &["d"], "n", vec![int("size", 3)]),
        node("six", "Clip", &["n", "", "hi"], "r", vec![]),
    ];
    let mut classic = tiny_with(nodes, tensors);
    graph_mut(&mut classic).node.splice(
        7..8,
        [
            node("fc", "MatMul", &["f", "fc.weight"], "product", vec![]),
            node("fc_bias", "Add", &["product", "fc.bias"], "logits", vec![]),
        ],
    );
    let bytes = classic.encode_to_vec();
    import(&classic).unwrap();
    for _ in 0..300 {
        let mut mutated = bytes.clone();
        for _ in 0..3 {
            let at = rng.below(mutated.len());
            mutated[at] ^= 1 << rng.below(8);
        }
        let _ = read_onnx(&mutated, Some(Preprocess::torchvision()));
    }
    for len in [1, 7, 100, 10_000] {
        let garbage: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        assert!(
            read_onnx(&garbage, Some(Preprocess::torchvision())).is_err(),
            "{len} random bytes"
        );
    }
}

/// The declared dimensions of a graph input or output: a number, a
/// symbol, or `?`.
fn declared_dims(value: &ValueInfoProto) -> Vec<String> {
    let shape = value.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
    let dims = &shape.shape.as_ref().unwrap().dim;
    dims.iter()
        .map(|d| match (&d.dim_value, &d.dim_param) {
            (Some(v), _) => v.to_string(),
            (None, Some(p)) => p.clone(),
            (None, None) => "?".into(),
        })
        .collect()
}

#[test]
fn an_export_keeps_the_sources_names_and_output_rank() {
    // As torchvision's SqueezeNet: `input` -> ... -> GlobalAveragePool ->
    // Flatten -> `logits` of N x C.
    let mut source = tiny();
    let g = graph_mut(&mut source);
    g.node.truncate(4);
    g.node[0].input[0] = "input".into();
    g.node[3].output[0] = "logits".into();
    g.input[0].name = "input".into();
    g.output[0].name = "logits".into();
    g.initializer.truncate(2);
    let model = import(&source).unwrap();
    assert_eq!(
        (&*model.graph.input, &*model.graph.output),
        ("input", "logits")
    );

    let exported = ModelProto::decode(&*write_onnx(&model).unwrap()).unwrap();
    let graph = exported.graph.as_ref().unwrap();
    assert_eq!(graph.input[0].name, "input");
    assert_eq!(declared_dims(&graph.input[0]), ["N", "3", "4", "4"]);
    assert_eq!(graph.output[0].name, "logits");
    assert_eq!(declared_dims(&graph.output[0]), ["N", "?"], "rank 2");
    assert_bit_identical(&import(&exported).unwrap(), &model);

    // Flatten -> Gemm -> Softmax: the fully connected layer is a Gemm, and
    // the output is the Softmax's, under its name, N x C.
    let classifier = import(&tiny()).unwrap();
    let exported = ModelProto::decode(&*write_onnx(&classifier).unwrap()).unwrap();
    assert_eq!(count_ops(&exported, "Gemm"), 1);
    let graph = exported.graph.as_ref().unwrap();
    assert_eq!(graph.output[0].name, "p");
    assert_eq!(declared_dims(&graph.output[0]), ["N", "?"]);
    assert_eq!(import(&exported).unwrap(), classifier);

    // A rank-2 blob that an operation needs 4-D is reshaped for it.
    let mut pooled_again = model.clone();
    pooled_again.graph.nodes.push(formats::Node {
        name: "gap2".into(),
        op: Op::GlobalAvgPool,
        inputs: vec!["logits".into()],
        outputs: vec!["pooled".into()],
    });
    pooled_again.graph.output = "pooled".into();
    let exported = ModelProto::decode(&*write_onnx(&pooled_again).unwrap()).unwrap();
    let graph = exported.graph.as_ref().unwrap();
    let reshape = graph.node.iter().find(|n| n.op_type == "Reshape").unwrap();
    assert_eq!(
        (&*reshape.input[0], &*reshape.output[0]),
        ("logits", "logits/4d")
    );
    assert_eq!(declared_dims(&graph.output[0]).len(), 4);

    // An output from a pooling keeps its rank 4.
    let mut pooled = model.clone();
    pooled.graph.nodes.pop();
    pooled.graph.output = pooled.graph.nodes.last().unwrap().outputs[0].clone();
    let exported = ModelProto::decode(&*write_onnx(&pooled).unwrap()).unwrap();
    assert_eq!(declared_dims(&exported.graph.unwrap().output[0]).len(), 4);
}

/// A FLOAT initializer.
fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: FLOAT,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// `tiny()` with `nodes` in place of its Relu (reading `c`, the last
/// writing `r`) and `initializers` inserted after the convolution's.
fn tiny_with(nodes: Vec<NodeProto>, initializers: Vec<TensorProto>) -> ModelProto {
    let mut m = tiny();
    let g = graph_mut(&mut m);
    g.node.splice(1..2, nodes);
    g.initializer.splice(2..2, initializers);
    m
}

/// Batch normalization `bn` of 2 channels: scale (1, 0.5), shift (0.5, -1)
/// with epsilon 1.
fn batch_norm(input: &str, output: &str) -> (NodeProto, Vec<TensorProto>) {
    let inputs = [input, "bn.weight", "bn.bias", "bn.mean", "bn.var"];
    let node = node(
        "bn",
        "BatchNormalization",
        &inputs,
        output,
        vec![float("epsilon", 1.0)],
    );
    let tensors = [
        ("bn.weight", [2.0, 0.5]),
        ("bn.bias", [1.0, -1.0]),
        ("bn.mean", [0.5, 0.0]),
        ("bn.var", [3.0, 0.0]),
    ];
    let tensors = tensors
        .iter()
        .map(|(name, values)| float_tensor(name, &[2], values))
        .collect();
    (node, tensors)
}

fn plain_conv(layer: usize, pad: usize, groups: usize) -> Op {
    Op::Conv(Conv {
        layer,
        stride_h: 1,
        stride_w: 1,
        pad_h: pad,
        pad_w: pad,
        groups,
        relu: false,
    })
}

#[test]
fn batch_norm_after_a_convolution_folds_into_it() {
    let (bn, tensors) = batch_norm("c", "b");
    let relu = node("relu", "Relu", &["b"], "r", vec![]);
    let m = import(&tiny_with(vec![bn, relu], tensors)).unwrap();
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["c", "fc"], "the convolution keeps its name");
    let expected: Vec<f32> = conv_weights()
        .iter()
        .enumerate()
        .map(|(i, w)| if i < 27 { *w } else { w * 0.5 })
        .collect();
    assert_eq!(m.layers[0].weights, expected);
    assert_eq!(m.layers[0].bias, [0.5 + 0.5, -1.5 * 0.5 - 1.0]);
    assert_eq!(
        (&m.graph.nodes[0].name, &m.graph.nodes[0].outputs[0]),
        (&"conv".to_string(), &"b".to_string())
    );
    assert_eq!(m.graph.nodes[1].op, Op::Relu);
}

#[test]
fn batch_norm_that_cannot_fold_is_a_depthwise_convolution() {
    let relu = node("relu", "Relu", &["c"], "a", vec![]);
    let (bn, tensors) = batch_norm("a", "r");
    let m = import(&tiny_with(vec![relu, bn], tensors)).unwrap();
    let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["c", "bn", "fc"]);
    assert_eq!(m.layers[1].shape, [2, 1, 1, 1]);
    assert_eq!(
        (&m.layers[1].weights, &m.layers[1].bias),
        (&vec![1.0, 0.5], &vec![0.5, -1.0])
    );
    assert_eq!(m.graph.nodes[2].op, plain_conv(1, 0, 2));
    assert_eq!(m.graph.nodes[5].op, plain_conv(2, 0, 1));
    // Written and read back, it stays what it is: a depthwise convolution.
    let (back, _) = read_onnx(&write_onnx(&m).unwrap(), None).unwrap();
    assert_eq!(back, m);
}

#[test]
fn classic_cnn_operators_import() {
    let op_of = |nodes: Vec<NodeProto>, tensors: Vec<TensorProto>, opset: i64| {
        let mut m = tiny_with(nodes, tensors);
        m.opset_import[0].version = opset;
        let model = import(&m).unwrap();
        model.graph.nodes[1].op.clone()
    };
    let bound = |name: &str, v: f32| float_tensor(name, &[], &[v]);
    assert_eq!(
        op_of(
            vec![node("c6", "Clip", &["c", "lo", "hi"], "r", vec![])],
            vec![bound("lo", 0.0), bound("hi", 6.0)],
            13
        ),
        Op::Clip(formats::Clip { min: 0.0, max: 6.0 }),
        "ReLU6 from opset 11 on"
    );
    assert_eq!(
        op_of(
            vec![node("c6", "Clip", &["c", "", "hi"], "r", vec![])],
            vec![bound("hi", 6.0)],
            13
        ),
        Op::Clip(formats::Clip {
            min: f32::NEG_INFINITY,
            max: 6.0
        }),
        "an absent bound is open"
    );
    assert_eq!(
        op_of(
            vec![node(
                "c6",
                "Clip",
                &["c"],
                "r",
                vec![float("min", 0.0), float("max", 6.0)]
            )],
            vec![],
            9
        ),
        Op::Clip(formats::Clip { min: 0.0, max: 6.0 }),
        "bounds as attributes before opset 11"
    );
    let lrn = node(
        "norm",
        "LRN",
        &["c"],
        "r",
        vec![int("size", 5), float("alpha", 2e-4)],
    );
    assert_eq!(
        op_of(vec![lrn], vec![], 13),
        Op::Lrn(formats::Lrn {
            size: 5,
            alpha: 2e-4,
            beta: 0.75,
            bias: 1.0
        })
    );
    assert_eq!(
        op_of(
            vec![node("id", "Identity", &["c"], "r", vec![])],
            vec![],
            13
        ),
        Op::Dropout,
        "Identity is the model type's identity"
    );
    let depthwise = node(
        "dw",
        "Conv",
        &["c", "dw.weight"],
        "r",
        vec![int("group", 2), ints("pads", &[1, 1, 1, 1])],
    );
    let weights = float_tensor("dw.weight", &[2, 1, 3, 3], &[0.25; 18]);
    assert_eq!(
        op_of(vec![depthwise], vec![weights], 13),
        plain_conv(1, 1, 2)
    );
    let average = |include: i64, pad: i64| {
        let attributes = vec![
            ints("kernel_shape", &[3, 3]),
            ints("pads", &[pad; 4]),
            int("count_include_pad", include),
        ];
        match op_of(
            vec![node("ap", "AveragePool", &["c"], "r", attributes)],
            vec![],
            13,
        ) {
            Op::Pool(p) => p.count_include_pad,
            other => panic!("{other:?}"),
        }
    };
    assert!(!average(0, 1), "padding excluded from the divisor");
    assert!(average(1, 1));
    assert!(average(0, 0), "without padding both divisors agree");
}

#[test]
fn fully_connected_forms_import_alike() {
    let reference = import(&tiny()).unwrap();
    // MatMul by the K x out weights, then Add of the bias.
    let mut matmul = tiny();
    let g = graph_mut(&mut matmul);
    g.node.splice(
        4..5,
        [
            node("fc", "MatMul", &["f", "fc.weight"], "product", vec![]),
            node("fc_bias", "Add", &["product", "fc.bias"], "logits", vec![]),
        ],
    );
    assert_eq!(import(&matmul).unwrap(), reference);
    // A product read elsewhere too keeps its bias apart, which sqz refuses.
    let mut shared = matmul.clone();
    graph_mut(&mut shared).output[0].name = "product".into();
    graph_mut(&mut shared).node.pop();
    assert!(import(&shared).is_err());
    // Gemm's alpha and beta scale weights and bias.
    let mut scaled = tiny();
    let g = graph_mut(&mut scaled);
    g.node[4]
        .attribute
        .extend([float("beta", 0.5), float("alpha", 2.0)]);
    g.node[4].attribute.remove(0);
    let m = import(&scaled).unwrap();
    let doubled: Vec<f32> = reference.layers[1]
        .weights
        .iter()
        .map(|w| w * 2.0)
        .collect();
    assert_eq!(m.layers[1].weights, doubled);
    assert_eq!(m.layers[1].bias, [0.5, 1.0, 1.5, 2.0, 2.5]);
}

/// The dimensions of the graph input of `g` (N, C, H, W).
fn input_dims(g: &mut GraphProto) -> &mut Vec<Dimension> {
    let input = g.input[0].r#type.as_mut().expect("a typed input");
    let tensor = input.tensor_type.as_mut().expect("a tensor input");
    &mut tensor.shape.as_mut().expect("a shape").dim
}
