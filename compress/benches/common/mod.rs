//! Synthetic SqueezeNet-like weights shared by the benchmarks.

use compress::rng::SplitMix64;

/// The 26 convolution weight shapes `[out, in, kh, kw]` of SqueezeNet v1.1
/// (torchvision `squeezenet1_1`, in network order; 1,231,552 weights).
pub const SQUEEZENET_V1_1_SHAPES: [[usize; 4]; 26] = [
    [64, 3, 3, 3],
    [16, 64, 1, 1],
    [64, 16, 1, 1],
    [64, 16, 3, 3],
    [16, 128, 1, 1],
    [64, 16, 1, 1],
    [64, 16, 3, 3],
    [32, 128, 1, 1],
    [128, 32, 1, 1],
    [128, 32, 3, 3],
    [32, 256, 1, 1],
    [128, 32, 1, 1],
    [128, 32, 3, 3],
    [48, 256, 1, 1],
    [192, 48, 1, 1],
    [192, 48, 3, 3],
    [48, 384, 1, 1],
    [192, 48, 1, 1],
    [192, 48, 3, 3],
    [64, 384, 1, 1],
    [256, 64, 1, 1],
    [256, 64, 3, 3],
    [64, 512, 1, 1],
    [256, 64, 1, 1],
    [256, 64, 3, 3],
    [1000, 512, 1, 1],
];

/// One layer of Gaussian weights per SqueezeNet v1.1 shape, with He
/// scaling (standard deviation `sqrt(2 / fan_in)`) like trained conv layers.
pub fn squeezenet_like_layers(seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64::new(seed);
    SQUEEZENET_V1_1_SHAPES
        .iter()
        .map(|&[out, inp, kh, kw]| {
            let sigma = (2.0 / (inp * kh * kw) as f64).sqrt();
            (0..out * inp * kh * kw)
                .map(|_| (rng.gaussian() * sigma) as f32)
                .collect()
        })
        .collect()
}
