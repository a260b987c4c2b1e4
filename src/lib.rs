//! sqz-compress: Deep Compression for SqueezeNet. This crate holds the
//! inference engine, image preprocessing, evaluation and the CLI; the
//! algorithms live in `compress` and the file formats in `formats`.

pub mod allocation;
pub mod calibration;
pub mod cli;
pub mod compression;
pub mod engine;
pub mod eval;
pub mod fetch;
pub mod imaging;
pub mod labels;
pub mod report;
pub mod sensitivity;
