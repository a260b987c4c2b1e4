//! Preprocessing reproduces the reference input tensors of
//! `$SQZ_SHARED/data/reference`, which an independent Python runtime made
//! with PIL (decode, `convert("RGB")`, `resize(..., BILINEAR)`) and
//! torchvision-style cropping and normalisation, bit for bit.

use std::path::Path;

use formats::Preprocess;

/// Little-endian float32 file.
fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len() % 4,
        0,
        "{}: not a whole number of float32",
        path.display()
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// How far preprocessed values are from the reference, in units of one
/// 8-bit pixel step (`scale / std` after normalisation).
#[derive(Debug, Default)]
struct Differences {
    values: usize,
    /// `by_steps[k]`: values that differ by k pixel steps (k = 0: bit-identical).
    by_steps: [usize; 4],
    /// Values with the same pixel but different float bits.
    float_only: usize,
}

/// Preprocess the reference images of `model` and compare with its `.input.f32`.
fn compare(model: &str, preset: &Preprocess) -> Differences {
    let shared = crate::common::shared();
    let reference = shared.join("data/reference");
    let list =
        std::fs::read_to_string(reference.join(format!("{model}.images.txt"))).expect("image list");
    let files: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    let expected = read_f32(&reference.join(format!("{model}.input.f32")));
    let per_image = 3 * (preset.crop as usize).pow(2);
    assert_eq!(
        expected.len(),
        files.len() * per_image,
        "{model}: reference size"
    );

    let plane = per_image / 3;
    let mut d = Differences {
        values: expected.len(),
        ..Differences::default()
    };
    for (i, file) in files.iter().enumerate() {
        let img = sqz::imaging::load_rgb(&shared.join("data/imagenet-sample").join(file))
            .expect("decode");
        let got = sqz::imaging::preprocess(&img, preset);
        assert_eq!(got.len(), per_image);
        let want = &expected[i * per_image..][..per_image];
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            let c = k / plane;
            let steps = ((g - w).abs() * preset.std[c] / preset.scale).round() as usize;
            d.by_steps[steps.min(3)] += 1;
            if steps == 0 && g != w {
                d.float_only += 1;
            }
        }
    }
    println!("{model}: {d:?}");
    d
}

/// The bound both models must meet: none. Every step reproduces the
/// reference pipeline exactly — JPEG decoding as libjpeg-turbo (which PIL
/// uses), Pillow's fixed-point resize, torchvision's crop offsets and
/// float32 normalisation — and all of it is integer arithmetic or a single
/// f32 operation per value, so the tensors must be bit-identical.
fn assert_exact(model: &str, d: &Differences) {
    assert_eq!(
        d.float_only, 0,
        "{model}: same pixel but different floats: normalisation differs"
    );
    assert_eq!(
        d.by_steps[0], d.values,
        "{model}: preprocessed values differ from the reference: {d:?}"
    );
}

#[test]
fn squeezenet_v1_1_torchvision_preprocessing() {
    let model = "squeezenet_v1.1";
    assert_exact(model, &compare(model, &Preprocess::torchvision()));
}

#[test]
fn squeezenet_v1_0_caffe_preprocessing() {
    let model = "squeezenet_v1.0-deep-compression";
    assert_exact(model, &compare(model, &Preprocess::caffe()));
}
