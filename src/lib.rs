//! sqz-compress: Deep Compression for SqueezeNet. This crate holds the
//! inference engine, image preprocessing, evaluation, the compression
//! pipeline and the CLI; the algorithms live in `compress` and the file
//! formats in `formats`. Errors follow the policy of [`error`].

pub mod cli;
pub mod engine;
pub mod error;
pub mod eval;
pub mod fetch;
pub mod imaging;
pub mod labels;
pub mod pipeline;
pub mod report;
