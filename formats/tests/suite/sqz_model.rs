//! The lossless `Model` ↔ `.sqz` codec and the one model reader: models
//! come back bit for bit, the encoder's cost is the file's real bytes, and
//! `read_model` reads every format from a path, `.sqz` included.

use crate::shared_data::{shared, squeezenet_v1_0, synthetic_model, Lcg, V10_PROTOTXT};
use formats::detect::ModelFormat;
use formats::read::{input_files, model_bytes, model_files, read_sqz_path, MAX_FILE_BYTES};
use formats::sqz::coding::raw_bits;
use formats::sqz::{
    decode_model, encode_layer, encode_model, encode_model_dense, size_breakdown, write_sqz,
    EncodedLayer, Stream, StreamCoding, WeightStorage,
};
use formats::{
    read_model, read_model_detailed, FormatError, Layer, Model, Preprocess, ReadOptions,
};
use std::path::{Path, PathBuf};

/// A fresh, empty folder for this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sqz-model-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Bit patterns of every weight and bias, so that -0.0 and NaN payloads count.
fn bits(model: &Model) -> Vec<Vec<u32>> {
    model
        .layers
        .iter()
        .flat_map(|l| [&l.weights, &l.bias])
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// `layer` with most weights zeroed and the rest on `levels` shared values.
fn pruned_and_shared(layer: &Layer, keep_one_in: usize, levels: u32, rng: &mut Lcg) -> Layer {
    let weights = layer
        .weights
        .iter()
        .map(|_| match rng.below(keep_one_in) {
            0 => (rng.below(levels as usize) as f32 - levels as f32 / 2.0) / 8.0 + 0.0625,
            _ => 0.0,
        })
        .collect();
    Layer {
        weights,
        ..layer.clone()
    }
}

/// Weights of every kind: dense with special values, sparse, shared, both.
fn model_of_every_storage() -> Model {
    let mut model = synthetic_model(1);
    let mut rng = Lcg(5);
    model.layers[1] = pruned_and_shared(&model.layers[1], 1, 3, &mut rng);
    model.layers[2] = pruned_and_shared(&model.layers[2], 6, 4, &mut rng);
    model
}

#[test]
fn models_come_back_bit_for_bit() {
    for model in [model_of_every_storage(), squeezenet_v1_0()] {
        let file = encode_model(&model);
        let back = decode_model(&file).expect("an encoded model decodes");
        assert_eq!(bits(&back), bits(&model));
        assert_eq!(back.graph, model.graph);
        assert_eq!(back.preprocess, model.preprocess);
        let dense = decode_model(&encode_model_dense(&model)).expect("dense decodes");
        assert_eq!(bits(&dense), bits(&model));
    }
}

#[test]
fn han_layers_are_stored_quantized_and_the_sparse_ones_sparse() {
    let han = squeezenet_v1_0();
    let file = encode_model(&han);
    // Han's model is shared onto 8-bit codebooks: every layer has one, and
    // the layers pruned to a third or less store positions.
    for (layer, stored) in han.layers.iter().zip(&file.layers) {
        let density = layer.nonzeros() as f64 / layer.weights.len() as f64;
        match &stored.weights {
            WeightStorage::SparseQuantized { .. } => {}
            WeightStorage::Quantized { .. } if density > 0.4 => {}
            other => panic!(
                "{} (density {density:.2}) stored as {}",
                layer.name,
                match other {
                    WeightStorage::Dense(_) => "dense",
                    WeightStorage::Sparse { .. } => "sparse",
                    _ => "quantized",
                }
            ),
        }
    }
}

/// The cost the encoder minimises is what the file stores: per layer,
/// [`EncodedLayer::stored_bytes`] equals the layer's share of the written
/// file, up to the name reference (counted as one byte).
#[test]
fn the_encoder_cost_is_the_bytes_of_the_file() {
    for model in [model_of_every_storage(), squeezenet_v1_0()] {
        let file = encode_model(&model);
        let sizes = size_breakdown(&file);
        assert_eq!(sizes.total(), write_sqz(&file).len());
        for (layer, bytes) in file.layers.iter().zip(&sizes.layers) {
            let cost = layer.stored_bytes();
            assert!(
                (0..=2).contains(&(bytes.total() - cost)),
                "{}: file {} vs cost {cost}",
                layer.name,
                bytes.total()
            );
            for stream in [&bytes.positions, &bytes.codes] {
                assert!(stream.total() <= cost);
            }
        }
    }
}

/// Each layer's chosen storage is no larger than any other the encoder
/// could have written: dense, and (for shared weights) the same kind
/// with its streams recoded raw.
#[test]
fn each_layer_takes_its_smallest_storage() {
    for model in [model_of_every_storage(), squeezenet_v1_0()] {
        let dense = encode_model_dense(&model);
        for (layer, dense) in model.layers.iter().zip(&dense.layers) {
            let chosen = encode_layer(layer);
            assert!(
                chosen.stored_bytes() <= dense.stored_bytes(),
                "{}: {} > dense {}",
                layer.name,
                chosen.stored_bytes(),
                dense.stored_bytes()
            );
            for stream in streams(&chosen) {
                assert!(stream.stored_bytes().total() <= raw_stored_bytes(stream));
            }
        }
    }
}

/// Bytes `stream`'s symbols would take in the file coded raw.
fn raw_stored_bytes(stream: &Stream) -> usize {
    let bits = raw_bits(stream.alphabet);
    Stream {
        coding: StreamCoding::Raw { bits },
        payload: vec![0; (stream.count * u64::from(bits)).div_ceil(8) as usize],
        ..stream.clone()
    }
    .stored_bytes()
    .total()
}

fn streams(layer: &EncodedLayer) -> Vec<&Stream> {
    match &layer.weights {
        WeightStorage::Dense(_) => vec![],
        WeightStorage::Sparse { positions, .. } => vec![positions],
        WeightStorage::Quantized { codes, .. } => vec![codes],
        WeightStorage::SparseQuantized {
            positions, codes, ..
        } => vec![positions, codes],
    }
}

#[test]
fn read_model_reads_every_format_from_a_path() {
    let dir = scratch("formats");
    let han = squeezenet_v1_0();
    let net = shared("models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net");
    let param = shared("models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param");
    let none = ReadOptions::default();

    // .net with the prototxt beside it, or given explicitly.
    assert_eq!(bits(&read_model(&net, &none).unwrap()), bits(&han));
    let explicit = ReadOptions {
        prototxt: Some(shared(V10_PROTOTXT)),
        ..ReadOptions::default()
    };
    assert_eq!(bits(&read_model(&net, &explicit).unwrap()), bits(&han));

    // ncnn with the .bin beside the .param.
    let v11 = read_model_detailed(&param, &none).unwrap();
    assert_eq!(v11.format, ModelFormat::Ncnn);
    assert_eq!(v11.model.layers.len(), 26);
    assert_eq!(
        model_files(&param),
        [param.clone(), param.with_extension("bin")]
    );
    assert_eq!(
        model_bytes(&param),
        model_files(&param)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum::<u64>()
    );

    // .sqz, decoded, with its stored form and size breakdown.
    let sqz = dir.join("han.sqz");
    let bytes = write_sqz(&encode_model(&han));
    std::fs::write(&sqz, &bytes).unwrap();
    let read = read_model_detailed(&sqz, &none).unwrap();
    assert_eq!(read.format, ModelFormat::Sqz);
    assert_eq!(bits(&read.model), bits(&han));
    let storage = read.sqz.expect("a .sqz reports its storage");
    assert_eq!(storage.breakdown.total(), bytes.len());
    assert_eq!(storage.file, read_sqz_path(&sqz).unwrap());
    assert!(read_model_detailed(&net, &none).unwrap().sqz.is_none());

    // ONNX: no preprocessing recorded means torchvision's, assumed, unless
    // the options give one; the options' preset overrides any format's.
    let onnx = dir.join("han.onnx");
    std::fs::write(&onnx, formats::onnx::write_onnx(&han).unwrap()).unwrap();
    let read = read_model_detailed(&onnx, &none).unwrap();
    assert_eq!(read.format, ModelFormat::Onnx);
    assert_eq!(bits(&read.model), bits(&han));
    let caffe = ReadOptions {
        preprocess: Some(Preprocess::caffe()),
        ..ReadOptions::default()
    };
    for path in [&onnx, &sqz, &net, &param] {
        let read = read_model_detailed(path, &caffe).unwrap();
        assert_eq!(
            read.model.preprocess,
            Preprocess::caffe(),
            "{}",
            path.display()
        );
        assert!(!read.preprocess_assumed);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_prototxt_is_refused_for_formats_without_one() {
    let param = shared("models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param");
    let options = ReadOptions {
        prototxt: Some(shared(V10_PROTOTXT)),
        ..ReadOptions::default()
    };
    let e = read_model(&param, &options).unwrap_err().to_string();
    assert!(e.contains("prototxt only applies"), "{e}");
}

#[test]
fn input_files_include_every_prototxt_a_caffe_model_may_use() {
    let net = shared("models/squeezenet_v1.0-deep-compression/compressed_SqueezeNet.net");
    let files = input_files(&net, &ReadOptions::default());
    assert!(files.contains(&net));
    assert!(files.contains(&shared(V10_PROTOTXT)));
    let given = Path::new("/elsewhere/net.prototxt");
    let options = ReadOptions {
        prototxt: Some(given.to_path_buf()),
        ..ReadOptions::default()
    };
    assert!(input_files(&net, &options).contains(&given.to_path_buf()));
    // Safetensors weights read onto a graph: the graph model's files too.
    let weights = Path::new("/elsewhere/w.safetensors");
    let options = ReadOptions {
        graph: Some(net.clone()),
        ..ReadOptions::default()
    };
    let files = input_files(weights, &options);
    assert!(files.contains(&net) && files.contains(&shared(V10_PROTOTXT)));
}

#[test]
fn oversized_and_corrupt_sqz_files_are_refused() {
    let dir = scratch("bad");
    // A sparse file: the size check must come before any read.
    let huge = dir.join("huge.sqz");
    let file = std::fs::File::create(&huge).unwrap();
    std::io::Write::write_all(&mut &file, &formats::sqz::MAGIC).unwrap();
    file.set_len(MAX_FILE_BYTES + 1).unwrap();
    let e = read_model(&huge, &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("more than any model file"), "{e}");

    let cut = dir.join("cut.sqz");
    let bytes = write_sqz(&encode_model(&model_of_every_storage()));
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let e = read_model(&cut, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, FormatError::Truncated(_)), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
