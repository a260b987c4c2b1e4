//! The backward pass of the engine, for fine-tuning a compressed network.
//!
//! [`forward_for_training`] runs a model like [`forward`](super::forward)
//! and keeps what the backward pass needs in a [`Tape`];
//! [`Tape::backward`] takes the gradient of a loss with respect to the
//! output and returns the gradients of every layer's weights and biases and
//! of the input. Every operation the forward pass runs has its backward
//! kernel here, one file per family. Like the forward pass, every kernel is
//! parallel over images or fixed blocks and sums in a fixed order, so
//! gradients are bit-identical whatever the thread count. A training loop
//! passes one [`StepMemory`] to every step so that each step reuses the
//! previous one's buffers instead of allocating fresh pages.
//!
//! Dropout is the identity here as in inference (distillation fine-tunes
//! the network as it runs); the tape holds 560 MB for SqueezeNet v1.1 at
//! batch 32 (224x224).

mod col2im;
mod concat;
mod conv;
mod depthwise;
mod elementwise;
mod lrn;
mod pool;
mod softmax;
mod tape;
#[cfg(test)]
mod tests;

pub use tape::{forward_for_training, Gradients, LayerGradient, StepMemory, Tape};
