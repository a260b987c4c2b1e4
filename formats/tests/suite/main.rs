//! Tests of the sqz-formats crate as one test binary: every reader and
//! writer, the `.sqz` container and its codec, and the safetensors hand-off,
//! on hand-made and real models.

mod shared_data;

mod splitmix;

mod caffemodel;
mod coding;
mod gaps;
mod onnx;
mod real_models;
mod safetensors;
mod sqz_container;
mod sqz_model;
