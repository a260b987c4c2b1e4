//! The algorithms of Deep Compression, on plain slices: magnitude pruning,
//! 1-D k-means weight sharing and calibration-based reconstruction. No file
//! I/O and no CLI: callers hand in weights and activations and get numbers
//! back. (Huffman and sparse-index coding belong to the `.sqz` format and
//! live in `formats::sqz::coding`.)
//!
//! - [`prune`]: zero the smallest weights, per layer or by a global threshold.
//! - [`kmeans`]: share weights by clustering them in one dimension.
//! - [`rng`]: the seeded generator behind k-means++ and synthetic data.
//! - [`calib`]: minimise each layer's output error on calibration inputs
//!   (OBS/SparseGPT pruning with least-squares refit, GPTQ quantization,
//!   bias correction).
//! - [`optim`]: Adam and SGD steps and the cosine learning-rate schedule
//!   for fine-tuning.
//! - [`distill`]: the distillation loss of a student against a teacher.
//! - [`trained_quantization`]: gradients that keep pruned weights zero and
//!   train only the shared values.

pub mod calib;
pub mod distill;
pub mod kmeans;
pub mod optim;
pub mod prune;
pub mod rng;
pub mod trained_quantization;
