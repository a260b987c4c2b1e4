//! The engine against an independent runtime: both real SqueezeNets must
//! reproduce the reference logits that onnxruntime computed for the same
//! preprocessed inputs (`data/reference` in the shared data, see its
//! README), and give bit-identical logits on 1 and 2 threads.
//!
//! The shared data is found through `SQZ_SHARED`, else `../shared` next to
//! this repository; without it these tests fail, they never skip.

use std::path::Path;

use formats::Model;
use sqz::engine::{forward, Tensor};

/// Largest tolerated difference from the reference logits.
const MAX_ABS_ERROR: f32 = 1e-3;
/// Images in each reference input.
const IMAGES: usize = 4;
/// ImageNet classes.
const CLASSES: usize = 1000;

/// One of the two reference models.
struct Reference {
    /// File stem in `data/reference`.
    name: &'static str,
    /// Input side in pixels.
    side: usize,
    load: fn(&Path) -> formats::Result<Model>,
}

const V1_1: Reference = Reference {
    name: "squeezenet_v1.1",
    side: 224,
    load: |shared| {
        formats::ncnn::read_ncnn(&shared.join("models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param"))
    },
};

const V1_0: Reference = Reference {
    name: "squeezenet_v1.0-deep-compression",
    side: 227,
    load: |shared| {
        let dir = shared.join("models/squeezenet_v1.0-deep-compression");
        formats::deep_compression::read_deep_compression(
            &dir.join("compressed_SqueezeNet.net"),
            Some(&dir.join("SqueezeNet_deploy.prototxt")),
        )
    },
};

/// A little-endian float32 file holding exactly `len` values.
fn read_f32(path: &Path, len: usize) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len(),
        len * 4,
        "{}: expected {len} float32 values",
        path.display()
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The model, its reference input batch and its reference logits.
fn load(reference: &Reference) -> (Model, Tensor, Vec<f32>) {
    let shared = crate::common::shared();
    let model = (reference.load)(&shared).unwrap_or_else(|e| panic!("{}: {e}", reference.name));
    let data = shared.join("data/reference");
    let shape = [IMAGES, 3, reference.side, reference.side];
    let input = read_f32(
        &data.join(format!("{}.input.f32", reference.name)),
        shape.iter().product(),
    );
    let logits = read_f32(
        &data.join(format!("{}.logits.f32", reference.name)),
        IMAGES * CLASSES,
    );
    (
        model,
        Tensor::new(shape, input).expect("input matches its shape"),
        logits,
    )
}

fn reproduces_reference_logits(reference: &Reference) {
    let (model, input, expected) = load(reference);
    let output = forward(&model, &input).unwrap_or_else(|e| panic!("{}: {e}", reference.name));
    assert_eq!(
        output.data.len(),
        IMAGES * CLASSES,
        "{}: output shape {:?}",
        reference.name,
        output.shape
    );
    let max_error = output
        .data
        .iter()
        .zip(&expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0f32, f32::max);
    let largest = expected.iter().fold(0.0f32, |m, e| m.max(e.abs()));
    println!(
        "{}: max abs error vs reference logits = {max_error:e} ({:e} of the largest logit, {largest})",
        reference.name,
        max_error / largest
    );
    assert!(
        max_error <= MAX_ABS_ERROR,
        "{}: max abs error {max_error} > {MAX_ABS_ERROR}",
        reference.name
    );
}

#[test]
fn squeezenet_v1_1_reproduces_reference_logits() {
    reproduces_reference_logits(&V1_1);
}

#[test]
fn squeezenet_v1_0_deep_compression_reproduces_reference_logits() {
    reproduces_reference_logits(&V1_0);
}

#[test]
fn one_and_two_threads_give_bit_identical_logits() {
    for reference in [&V1_1, &V1_0] {
        let (model, input, _) = load(reference);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            pool.install(|| forward(&model, &input))
                .unwrap_or_else(|e| panic!("{}: {e}", reference.name))
        };
        let (one, two) = (run(1), run(2));
        assert!(
            one.data
                .iter()
                .zip(&two.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{}: logits differ between 1 and 2 threads",
            reference.name
        );
    }
}
