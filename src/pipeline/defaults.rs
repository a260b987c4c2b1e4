//! Every default of the compression pipeline, in one place: the library
//! uses these constants and the CLI shows them as its defaults (clap's
//! `default_value_t` / `default_values_t`), so the two never disagree.

use compress::kmeans::Init;

/// Calibration images used for compression when no count is given.
pub const CALIB_COUNT: usize = 256;

/// Inputs per block of the block-diagonal calibration Hessian: a block's
/// Hessian takes 32 MiB. Every SqueezeNet layer fits one block (the full
/// Hessian); VGG-16's widest layer (25,088 inputs) takes 13 blocks.
pub const HESSIAN_BLOCK: u64 = compress::calib::DEFAULT_MAX_BLOCK as u64;

/// Calibration images used for sensitivity analysis when no count is
/// given, for a model as small as SqueezeNet v1.1. The allocation ranks
/// layers by the KL divergence each option causes, and on 32 images that
/// ranking is noisy: at 409,600 bytes on v1.1, 128 images lowered the mean
/// KL divergence from the original on 205 images outside the calibration
/// folder from 0.204 to 0.179 (agreement 76.1 → 81.5 %; 256 images: 0.175),
/// for about 2.3x the CPU time of the run.
pub const SENSITIVITY_CALIB_COUNT: usize = 128;

/// Multiply-adds per image up to which sensitivity analysis uses
/// [`SENSITIVITY_CALIB_COUNT`] images by default; a bigger model gets
/// proportionally fewer ([`super::workload::default_sensitivity_images`]):
/// SqueezeNet v1.1 (0.35 G) 128, v1.0 (0.84 G) 60, ResNet-50 12, VGG-16
/// (15.5 G) the minimum.
pub const SENSITIVITY_REFERENCE_MACS: f64 = 0.4e9;

/// Fewest calibration images sensitivity analysis uses by default.
pub const SENSITIVITY_MIN_CALIB_COUNT: usize = 4;

/// Centroid initialisation of k-means: evenly spaced over [min, max], the
/// paper's choice.
pub const KMEANS_INIT: Init = Init::Linear;

/// Seed of k-means++ initialisation.
pub const KMEANS_SEED: u64 = 0;

/// Lloyd iterations of k-means at most, per layer.
pub const KMEANS_MAX_ITER: usize = 300;

/// Price of a bit of code length in k-means with a fixed bit width, in
/// mean squared errors per weight (entropy-constrained k-means). On Han's
/// v1.0 at 4 bits with `--calib`, 1 made the file 2.5 % smaller (312,945
/// to 305,165 bytes) at the same KL from the original (0.140, 0.131); 2
/// made it 6.6 % smaller but raised the KL to 0.175.
pub const ENTROPY_WEIGHT: f64 = 1.0;

/// Price of a bit of code length when a size budget chooses the bit
/// widths: the allocation turns the bytes saved into wider codebooks, so
/// a higher price pays. v1.1 at 409,600 bytes: KL from the original
/// 0.143 (plain k-means), 0.118 (weight 1), 0.106 (2), 0.088 (3), 0.085
/// (5), 0.097 (8).
pub const TARGET_SIZE_ENTROPY_WEIGHT: f64 = 3.0;

/// Sparsities tried on each layer by sensitivity analysis and allocation:
/// 0.3 to 0.9 in steps of 0.1.
pub const SPARSITY_LADDER: [f64; 7] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Bit widths tried on each layer: 8 down to 2.
pub const BITS_LADDER: [u8; 7] = [8, 7, 6, 5, 4, 3, 2];

/// Builds of the file a target size makes at most before giving up: each
/// retry lowers the planning budget by the previous excess.
pub const MAX_FIT_ATTEMPTS: usize = 4;

/// Fine-tuning steps when neither steps nor epochs are given. On Han's
/// v1.0 at 4 bits, 300 steps gave 61.61 % held-out top-1 and 400 steps
/// 61.39 % (one image apart), so the shorter schedule stays: about 10
/// minutes on 2 idle cores for v1.0, the slowest shipped model to train.
pub const FINETUNE_STEPS: usize = 300;

/// Whether a recipe that both prunes and shares weights also fine-tunes
/// between the two, as Deep Compression retrains. Off: measured once, on
/// v1.1 at 409,600 bytes (`compress --target-size 409600 --calib
/// --finetune`, 461 held-out images), 300 + 150 steps gave 60.09 % top-1,
/// agreement 73.32 %, against 61.61 % / 73.97 % with 400 steps after
/// sharing only (59.87 % / 74.19 % without fine-tuning): training every
/// surviving weight on 256 images overfits them (training loss 0.37 ->
/// 0.14 while agreement on 32 held-back images fell 75.0 -> 71.9 %).
pub const FINETUNE_TWO_STAGE: bool = false;

/// Fine-tuning steps, over both stages, when neither steps nor epochs are
/// given and the recipe both prunes and shares weights, so that it
/// fine-tunes before and after sharing.
pub const FINETUNE_TWO_STAGE_STEPS: usize = 450;

/// Share of a two-stage fine-tuning's steps spent before weight sharing
/// (training every surviving weight), the rest after it (shared values).
pub const FINETUNE_SHARE_BEFORE_SHARING: f64 = 2.0 / 3.0;

/// Peak learning rate of fine-tuning (Adam).
pub const FINETUNE_LR: f32 = 5e-4;

/// Images per fine-tuning step.
pub const FINETUNE_BATCH: usize = 32;

/// Softmax temperature of the distillation loss.
pub const FINETUNE_TEMPERATURE: f64 = 4.0;

/// Seed of fine-tuning's batch order and augmentation.
pub const FINETUNE_SEED: u64 = 0;

/// Images of the calibration folder, outside the calibration set, on which
/// fine-tuning shows its agreement with the teacher.
pub const FINETUNE_HELD_BACK: usize = 32;

/// Whether fine-tuning blends the images of each batch (mixup). Measured
/// within about two held-out images of no mixup everywhere (Han's v1.0 at
/// 4 bits, 60 steps: 60.95 % vs 60.52 % top-1; v1.1 at 409,600 bytes, 400
/// steps: 61.61 % both, agreement 74.40 % vs 73.97 %), so it stays off.
pub const FINETUNE_MIXUP: bool = false;

/// Largest [`exact_refit_work`](super::workload::exact_refit_work) (`rows · Σ block³`) of a
/// layer whose sensitivity trials refit the survivors of pruning exactly,
/// as compression does; a wider layer's trials keep SparseGPT's
/// sweep-compensated weights instead (`compress::calib::Refit::Sweep`),
/// which costs no more than choosing the mask. No SqueezeNet layer comes
/// near it (the largest, `conv10`: 1000 · 512³ = 1.3·10¹¹), so their trials
/// are unchanged; VGG-16's `conv4_1` to `fc8` and ResNet-50's widest
/// layers are above it (VGG-16's `fc6`: 4096 · 13 · 1930³ = 3.8·10¹⁴).
pub const SENSITIVITY_EXACT_REFIT_WORK: f64 = 1e12;
