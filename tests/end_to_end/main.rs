//! End-to-end tests of sqz-compress as one test binary (one link instead
//! of one per file keeps CI fast). Each module covers one area; `common`
//! runs the `sqz-compress` binary, builds synthetic models and images, and
//! finds the shared data (`SQZ_SHARED`, default `../shared`).

#[macro_use]
mod common;

mod classic_cnns;
mod cli_bench;
mod cli_compress;
mod cli_eval;
mod cli_sensitivity;
mod determinism;
mod engine_reference;
mod export;
mod fetch;
mod finetune;
mod hostile_inputs;
mod jpeg_differential;
mod pipeline;
mod preprocess_reference;
mod report;
mod safetensors_handoff;
mod scale;
mod synthetic_end_to_end;
