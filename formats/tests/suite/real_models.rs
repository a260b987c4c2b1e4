//! The readers on the real models of the shared data folder (see its
//! README.md, where every expected number below comes from), and on
//! truncated or corrupted copies of them.
//!
//! The folder is `$SQZ_SHARED`, else `../shared` beside the repository.
//! These tests fail, never skip, when it is missing.

use crate::shared_data::Lcg;

use formats::caffe_net::parse_net_text;
use formats::deep_compression::{decode_net, parse_deep_compression, read_deep_compression};
use formats::detect::{detect_format, ModelFormat};
use formats::ncnn::{parse_ncnn, read_ncnn};
use formats::{ChannelOrder, FormatError, Model, Op, Pool, PoolKind, Preprocess};
use std::collections::HashSet;

use crate::shared_data::{shared, V10_PROTOTXT};

const V11_PARAM: &str = "models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param";
const V11_BIN: &str = "models/squeezenet_v1.1/squeezenet_v1.1.ncnn.bin";
const V10_NET: &str = "models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net";

fn read(relative: &str) -> Vec<u8> {
    std::fs::read(shared(relative)).expect("readable shared file")
}

fn text(relative: &str) -> String {
    String::from_utf8(read(relative)).expect("UTF-8 text file")
}

fn conv_count(m: &Model) -> usize {
    m.graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv(_)))
        .count()
}

fn pools(m: &Model) -> Vec<Pool> {
    m.graph
        .nodes
        .iter()
        .filter_map(|n| {
            if let Op::Pool(p) = n.op {
                Some(p)
            } else {
                None
            }
        })
        .collect()
}

/// The max pools of both SqueezeNets: 3x3, stride 2, no padding, ceil rounding.
const SQUEEZENET_MAX_POOL: Pool = Pool::square(PoolKind::Max, 3, 2, 0, true);

#[test]
fn squeezenet_v1_1_ncnn() {
    let m = read_ncnn(&shared(V11_PARAM)).unwrap();
    m.validate().unwrap();
    assert_eq!(m.parameter_count(), 1_235_496);
    assert_eq!(m.layers.len(), 26);
    assert_eq!(conv_count(&m), 26);
    assert_eq!(m.preprocess, Preprocess::torchvision());
    assert_eq!(m.layers[0].shape, [64, 3, 3, 3]);
    assert_eq!(m.layers[25].shape, [1000, 512, 1, 1]);
    assert!(
        matches!(m.graph.nodes[0].op, Op::Conv(c) if c.stride_h == 2 && c.stride_w == 2 && c.pad_h == 0 && c.relu)
    );
    assert_eq!(pools(&m), [SQUEEZENET_MAX_POOL; 3]);
    assert!(m.graph.nodes.iter().any(|n| n.op == Op::GlobalAvgPool));
    assert_eq!(
        (m.graph.input.as_str(), m.graph.output.as_str()),
        ("in0", "out0")
    );
    assert!(m
        .layers
        .iter()
        .all(|l| l.weights.iter().chain(&l.bias).all(|v| v.is_finite())));
    assert!(read_ncnn(&shared(V11_BIN))
        .unwrap_err()
        .to_string()
        .contains("through its .param"));
}

#[test]
fn ncnn_offsets_match_the_bin_layout() {
    // Independent of the reader's bookkeeping: the first layer's tag and
    // first float16 weight open the file, and the last layer's 1000 float32
    // biases close it.
    let bin = read(V11_BIN);
    let m = parse_ncnn(&text(V11_PARAM), &bin).unwrap();
    assert_eq!(
        u32::from_le_bytes(bin[..4].try_into().unwrap()),
        0x0130_6B47
    );
    assert_eq!(
        m.layers[0].weights[0],
        half::f16::from_le_bytes([bin[4], bin[5]]).to_f32()
    );
    let tail: Vec<f32> = bin[bin.len() - 4000..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(m.layers[25].bias, tail);
}

#[test]
fn squeezenet_v1_0_deep_compression() {
    let m = read_deep_compression(&shared(V10_NET), None).unwrap();
    assert_eq!(
        m,
        read_deep_compression(&shared(V10_NET), Some(&shared(V10_PROTOTXT))).unwrap()
    );
    m.validate().unwrap();
    assert_eq!(m.layers.len(), 26);
    assert_eq!(conv_count(&m), 26);
    assert_eq!(m.parameter_count(), 1_248_424);
    assert_eq!(m.layers[0].shape, [96, 3, 7, 7]);
    assert_eq!(m.preprocess.crop, 227);
    assert_eq!(m.preprocess.channel_order, ChannelOrder::Bgr);
    assert_eq!(
        (m.graph.input.as_str(), m.graph.output.as_str()),
        ("data", "pool_final")
    );

    let node = |name: &str| {
        m.graph
            .nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    };
    assert!(matches!(node("conv1").op, Op::Conv(c) if c.stride_h == 2 && c.pad_h == 0));
    assert!(
        matches!(node("conv_final").op, Op::Conv(c) if c.pad_h == 1 && c.pad_w == 1 && c.stride_h == 1)
    );
    assert_eq!(
        m.layers[m.layer_index("conv_final").unwrap()].shape,
        [1000, 512, 1, 1]
    );
    for pool in ["pool1", "pool4", "pool8"] {
        assert_eq!(node(pool).op, Op::Pool(SQUEEZENET_MAX_POOL), "{pool}");
    }
    assert_eq!(node("pool_final").op, Op::GlobalAvgPool);
    // In-place layers are renamed and their consumers follow.
    assert_eq!(node("relu_conv1").outputs, ["conv1/relu_conv1"]);
    assert_eq!(node("pool1").inputs, ["conv1/relu_conv1"]);
    assert_eq!(node("conv_final").inputs, ["fire9/concat/drop9"]);
}

#[test]
fn deep_compression_entries_and_codebooks() {
    let net = read(V10_NET);
    let definition = parse_net_text(&text(V10_PROTOTXT)).unwrap();
    let decoded = decode_net(&net, &definition.layers).unwrap();
    assert_eq!(net.len(), 675_763);
    assert_eq!(decoded.len(), 26);
    assert_eq!(decoded.iter().map(|d| d.nnz).sum::<usize>(), 422_083);
    for (layer, d) in definition.layers.iter().zip(&decoded) {
        let distinct: HashSet<u32> = d.weights.iter().map(|w| (w + 0.0).to_bits()).collect();
        assert!(
            distinct.len() <= 256,
            "{}: {} distinct values",
            layer.name,
            distinct.len()
        );
        assert!(
            distinct.contains(&0.0f32.to_bits()),
            "{}: no zero weight",
            layer.name
        );
        let nonzeros = d.weights.iter().filter(|w| **w != 0.0).count();
        assert!(
            nonzeros <= d.nnz,
            "{}: {nonzeros} nonzeros from {} entries",
            layer.name,
            d.nnz
        );
        assert_eq!(d.codebook.len(), 256);
        assert_eq!(d.codebook[0], 0.0);
    }
}

#[test]
fn formats_are_detected() {
    assert_eq!(
        detect_format(&shared(V11_PARAM)).unwrap(),
        ModelFormat::Ncnn
    );
    assert_eq!(
        detect_format(&shared(V10_NET)).unwrap(),
        ModelFormat::DeepCompression
    );
    assert!(detect_format(&shared(V11_BIN)).is_err());
}

#[test]
fn cut_or_padded_ncnn_bin_is_rejected() {
    let param = text(V11_PARAM);
    let bin = read(V11_BIN);
    for cut in [
        0,
        3,
        4,
        5,
        1000,
        bin.len() / 3,
        bin.len() / 2,
        bin.len() - 4001,
        bin.len() - 1,
    ] {
        let e = parse_ncnn(&param, &bin[..cut]).unwrap_err();
        assert!(matches!(e, FormatError::Truncated(_)), "cut at {cut}: {e}");
    }
    let e = parse_ncnn(&param, &[bin.clone(), vec![0; 4]].concat()).unwrap_err();
    assert!(matches!(e, FormatError::Invalid(_)), "{e}");
}

#[test]
fn bad_ncnn_tag_and_lying_sizes_are_rejected() {
    let param = text(V11_PARAM);
    let mut bin = read(V11_BIN);
    bin[..4].copy_from_slice(&0x000D_4B38u32.to_le_bytes());
    let e = parse_ncnn(&param, &bin).unwrap_err();
    assert!(
        matches!(e, FormatError::Unsupported(_)) && e.to_string().contains("0x000d4b38"),
        "{e}"
    );

    let bin = read(V11_BIN);
    let lying = param.replace("6=512000", "6=51200000000000");
    let e = parse_ncnn(&lying, &bin).unwrap_err();
    assert!(matches!(e, FormatError::Truncated(_)), "{e}");
    let e = parse_ncnn(&param.replace("49 57", "50 57"), &bin).unwrap_err();
    assert!(e.to_string().contains("announces 50 layers"), "{e}");
}

#[test]
fn cut_padded_or_lying_net_is_rejected() {
    let prototxt = text(V10_PROTOTXT);
    let net = read(V10_NET);
    for cut in [0, 50, 104, 105, 2000, net.len() / 2, net.len() - 1] {
        let e = parse_deep_compression(&net[..cut], &prototxt).unwrap_err();
        assert!(matches!(e, FormatError::Truncated(_)), "cut at {cut}: {e}");
    }
    assert!(parse_deep_compression(&[net.clone(), vec![0]].concat(), &prototxt).is_err());
    for lie in [1u32, 1 << 20, u32::MAX] {
        let mut lying = net.clone();
        let first = u32::from_le_bytes(lying[..4].try_into().unwrap());
        lying[..4].copy_from_slice(&first.wrapping_add(lie).to_le_bytes());
        assert!(
            parse_deep_compression(&lying, &prototxt).is_err(),
            "nnz + {lie}"
        );
    }
}

#[test]
fn garbage_prototxt_is_rejected_with_a_position() {
    let net = read(V10_NET);
    let prototxt = text(V10_PROTOTXT);
    let cut = prototxt.find("pooling_param").unwrap();
    let e = parse_deep_compression(&net, &prototxt[..cut])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("end of file inside the message opened at"),
        "{e}"
    );
    let e = parse_deep_compression(&net, &prototxt.replacen("layer {", "layer {{", 2))
        .unwrap_err()
        .to_string();
    assert!(e.contains("prototxt 7:8"), "{e}");
    // A definition that does not match the weights: conv_final one output short.
    assert!(parse_deep_compression(
        &net,
        &prototxt.replace("num_output: 1000", "num_output: 999")
    )
    .is_err());
}

#[test]
fn mutated_files_never_panic() {
    let (param, bin) = (text(V11_PARAM), read(V11_BIN));
    let (prototxt, net) = (text(V10_PROTOTXT), read(V10_NET));
    let mut rng = Lcg(7);
    for _ in 0..40 {
        let mut b = bin.clone();
        let at = rng.below(b.len());
        b[at] ^= 1 << rng.below(8);
        let _ = parse_ncnn(&param, &b);
        let mut n = net.clone();
        let at = rng.below(n.len());
        n[at] ^= 1 << rng.below(8);
        let _ = parse_deep_compression(&n, &prototxt);
        let mut p = param.clone().into_bytes();
        let at = rng.below(p.len());
        p[at] = b"0123456789= \n-x"[rng.below(15)];
        let _ = parse_ncnn(&String::from_utf8_lossy(&p), &bin);
        let mut t = prototxt.clone().into_bytes();
        let at = rng.below(t.len());
        t[at] = b"{}<>:\"#0 \n-x"[rng.below(12)];
        let _ = parse_deep_compression(&net, &String::from_utf8_lossy(&t));
    }
}
