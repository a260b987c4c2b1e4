//! The inference engine: runs a [`formats::Model`] on NCHW float32 batches.
//!
//! [`forward`] shape-checks the whole graph ([`infer_shapes`]) and then runs
//! its nodes in order. Convolutions run on a packed micro-kernel or as
//! im2col + GEMM (faer), grouped ones group by group, depthwise ones on a
//! direct kernel. Every operation is parallel with rayon over images and
//! fixed-size blocks of work, so the output is bit-identical whatever the
//! number of threads (and whatever the batch an image is part of). Each intermediate blob is freed right after
//! its last reader. [`forward_hooked`] lets a caller see every node's inputs
//! and substitute a convolution's weights on the fly.
//! [`forward_for_training`] and [`Tape::backward`] compute gradients for
//! fine-tuning (see the `grad` module).

mod blocked;
mod buffers;
mod concat;
mod conv;
mod depthwise;
mod elementwise;
mod error;
mod executor;
mod fusion;
mod gemm;
mod grad;
mod im2col;
mod kernel;
mod lrn;
mod packed;
mod packed_conv;
mod patches;
mod plan;
mod pool;
mod shapes;
mod softmax;
mod tensor;
#[cfg(test)]
mod tests;
mod value;

pub use error::EngineError;
pub use executor::{forward, forward_hooked, ForwardHook, Session};
pub use grad::{forward_for_training, Gradients, LayerGradient, StepMemory, Tape};
pub use patches::conv_patches;
pub use shapes::{infer_shapes, Shapes};
pub use tensor::Tensor;
