//! Helpers shared by the benches: where the shared data is, its reference
//! images as batches, and timing.
#![allow(dead_code)] // each bench uses its own subset

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use formats::Model;
use sqz::engine::Tensor;

/// The shared data folder (`SQZ_SHARED`, default `../shared`); panics
/// saying where it looked when it is missing.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("SQZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("data/reference").is_dir(),
        "shared data not found at {}: set SQZ_SHARED",
        dir.display()
    );
    dir
}

/// The preprocessed reference images of `name`, one `Vec` per image.
pub fn reference_images(shared: &Path, name: &str, side: usize) -> Vec<Vec<f32>> {
    let path = shared.join(format!("data/reference/{name}.input.f32"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    values
        .chunks_exact(3 * side * side)
        .map(<[f32]>::to_vec)
        .collect()
}

/// A batch of `batch` images cycling through `images`.
pub fn batch_of(images: &[Vec<f32>], batch: usize, side: usize) -> Tensor {
    let data = images
        .iter()
        .cycle()
        .take(batch)
        .flatten()
        .copied()
        .collect();
    Tensor::new([batch, 3, side, side], data).expect("batch matches its shape")
}

pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Reads one shipped model from the shared folder.
pub type Loader = fn(&Path) -> Model;

/// Name (file stem of the reference data), input side and loader of each
/// shipped model.
pub fn models() -> [(&'static str, usize, Loader); 2] {
    [
        ("squeezenet_v1.1", 224, |shared| {
            let param = shared.join("models/squeezenet_v1.1/squeezenet_v1.1.ncnn.param");
            formats::ncnn::read_ncnn(&param).unwrap_or_else(|e| panic!("{e}"))
        }),
        ("squeezenet_v1.0-deep-compression", 227, |shared| {
            let dir = shared.join("models/squeezenet_v1.0-deep-compression");
            formats::deep_compression::read_deep_compression(
                &dir.join("compressed_SqueezeNet.net"),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}"))
        }),
    ]
}
