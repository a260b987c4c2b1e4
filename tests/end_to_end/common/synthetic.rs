//! A tiny synthetic SqueezeNet-like model (ncnn `.param` + `.bin`) and a
//! folder of small synthetic PNG images with `labels.tsv`, written by the
//! hermetic tests themselves so that they need no shared data folder.

use std::path::{Path, PathBuf};

/// The model: input 3x32x32; a 3x3 convolution with padding and fused
/// ReLU; a 2x2 max pool; a fire module (1x1 squeeze, then 1x1 and 3x3
/// padded expands concatenated, the 3x3 one with a separate ReLU layer);
/// a 1x1 classifier over 10 classes; global average pool; softmax.
pub const PARAM: &str = "7767517
12 13
Input data 0 1 data 0=32 1=32 2=3
Convolution conv1 1 1 data conv1 0=8 1=3 11=3 3=1 4=1 5=1 6=216 9=1
Pooling pool1 1 1 conv1 pool1 0=0 1=2 2=2 5=0
Convolution squeeze 1 1 pool1 squeeze 0=4 1=1 11=1 5=1 6=32 9=1
Split split 1 2 squeeze s1 s3
Convolution expand1x1 1 1 s1 expand1x1 0=8 1=1 11=1 5=1 6=32 9=1
Convolution expand3x3 1 1 s3 e3 0=8 1=3 11=3 4=1 5=1 6=288
ReLU relu3x3 1 1 e3 expand3x3
Concat concat 2 1 expand1x1 expand3x3 concat 0=0
Convolution classifier 1 1 concat classifier 0=10 1=1 11=1 5=1 6=160
Pooling gap 1 1 classifier gap 0=1 4=1
Softmax prob 1 1 gap prob 0=0
";

/// `(weights, biases)` of each convolution, in `.param` order.
pub const CONVOLUTIONS: [(usize, usize); 5] = [(216, 8), (32, 4), (32, 8), (288, 8), (160, 10)];

/// Classes the model predicts.
pub const CLASSES: usize = 10;

/// Synthetic images in the evaluation folder.
pub const IMAGES: usize = 12;

/// A deterministic pseudo-random value in `[-1, 1)` (SplitMix64).
fn pseudo_random(state: &mut u64) -> f32 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Writes `model.param` and `model.bin` (float32 weights then biases per
/// convolution) into `dir`; returns the `.param` path.
pub fn write_model(dir: &Path) -> PathBuf {
    let mut state = 2024;
    let mut bin = Vec::new();
    for (weights, biases) in CONVOLUTIONS {
        bin.extend_from_slice(&0u32.to_le_bytes()); // float32 tag
        for _ in 0..weights + biases {
            bin.extend_from_slice(&pseudo_random(&mut state).to_le_bytes());
        }
    }
    let param = dir.join("model.param");
    std::fs::write(&param, PARAM).expect("write .param");
    std::fs::write(dir.join("model.bin"), bin).expect("write .bin");
    param
}

/// Writes [`IMAGES`] small PNG pictures (stripes and gradients, different
/// for each image) and their `labels.tsv` into `dir/images`; returns the
/// folder.
pub fn write_images(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir(&images).expect("create the image folder");
    let mut labels = String::from("file\tclass_index\twnid\tname\n");
    for i in 0..IMAGES as u32 {
        let picture = image::RgbImage::from_fn(40 + i, 36, |x, y| {
            let stripe = if (x / (1 + i % 4) + y / 3) % 2 == 0 {
                220
            } else {
                30
            };
            image::Rgb([stripe, (x * 6 + i * 20) as u8, (y * 7 + i * 35) as u8])
        });
        let file = format!("image{i}.png");
        picture.save(images.join(&file)).expect("write a PNG");
        let class = i as usize % CLASSES;
        labels.push_str(&format!("{file}\t{class}\tn{class:08}\tclass {class}\n"));
    }
    std::fs::write(images.join("labels.tsv"), labels).expect("write labels.tsv");
    images
}
