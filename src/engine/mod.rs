//! The inference engine: runs a [`formats::Model`] on NCHW float32 batches.
