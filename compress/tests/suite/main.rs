//! Tests of the sqz-algos crate as one test binary: pruning, k-means,
//! calibration math, optimizers, the distillation loss and trained
//! quantization.

mod calib;
mod distill;
mod kmeans;
mod optim;
mod prune;
mod retarget;
mod trained_quantization;
