//! The whole SqueezeNet v1.1 (the real model from the shared data) on a
//! 64x64 crop of a real image: gradients at a sample of every layer's
//! weights and biases and of the input against finite differences, and
//! bit-identical gradients on 1 and 2 threads.

use std::path::{Path, PathBuf};

use formats::Model;

use super::determinism::gradients_on;
use super::{GradientCheck, Target};
use crate::engine::tests::Values;
use crate::engine::Tensor;

/// Side of the crop: the smallest round size that all of SqueezeNet's
/// pools and convolutions accept with room to spare (final maps are 3x3).
const SIDE: usize = 64;

/// The shared data folder (`$SQZ_SHARED`, else `../shared` beside the
/// repository); panics saying where it looked when a file is missing.
fn shared_file(relative: &str) -> PathBuf {
    let dir = std::env::var_os("SQZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "shared data not found: {} is missing (set SQZ_SHARED to the shared data folder)",
        path.display()
    );
    path
}

/// SqueezeNet v1.1 taking `SIDE x SIDE` images, and the top-left crop of
/// the first preprocessed reference image.
fn squeezenet_on_a_crop() -> (Model, Tensor) {
    let param = shared_file("models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param");
    let mut model = formats::ncnn::read_ncnn(&param).unwrap_or_else(|e| panic!("{e}"));
    model.preprocess.crop = SIDE as u32;
    let path = shared_file("data/reference/squeezenet_v1.1.input.f32");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let image: Vec<f32> = bytes
        .chunks_exact(4)
        .take(3 * 224 * 224)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(
        image.len(),
        3 * 224 * 224,
        "{} is truncated",
        path.display()
    );
    let crop = image
        .chunks(224)
        .enumerate()
        .filter(|(row, _)| row % 224 < SIDE)
        .flat_map(|(_, row)| &row[..SIDE])
        .copied()
        .collect();
    (model, Tensor::new([1, 3, SIDE, SIDE], crop).unwrap())
}

/// The entry with the largest engine gradient and `random` entries drawn
/// with `values`, of a tensor of `len` entries.
fn sample(gradient: &[f32], random: usize, values: &mut Values) -> Vec<usize> {
    let largest = (0..gradient.len())
        .max_by(|&a, &b| gradient[a].abs().total_cmp(&gradient[b].abs()))
        .unwrap();
    let draws = (0..random).map(|_| ((values.next() + 1.0) / 2.0 * gradient.len() as f32) as usize);
    std::iter::once(largest)
        .chain(draws)
        .map(|i| i.min(gradient.len() - 1))
        .collect()
}

#[test]
fn squeezenet_gradients_match_finite_differences() {
    let (model, input) = squeezenet_on_a_crop();
    let check = GradientCheck::new(&model, &input, 51);
    let mut values = Values::new(52);
    let mut targets: Vec<(Target, usize)> = (0..model.layers.len())
        .flat_map(|l| [(Target::Weights(l), 2), (Target::Bias(l), 1)])
        .collect();
    targets.push((Target::Input, 3));
    for (target, random) in targets {
        let indices = sample(check.analytic(target), random, &mut values);
        let scale = check.compare(target, &indices);
        assert!(
            scale > 0.0,
            "{target:?}: the sampled gradients are all zero"
        );
    }
}

#[test]
fn squeezenet_gradients_are_bit_identical_on_1_and_2_threads() {
    let (model, crop) = squeezenet_on_a_crop();
    // Three images: the crop, mirrored, and negated.
    let mut data = crop.data.clone();
    data.extend(crop.data.chunks(SIDE).flat_map(|row| row.iter().rev()));
    data.extend(crop.data.iter().map(|v| -v));
    let batch = Tensor::new([3, 3, SIDE, SIDE], data).unwrap();
    let one = gradients_on(1, &model, &batch, 53);
    assert!(gradients_on(2, &model, &batch, 53) == one);
}
