//! Fuzz target `jpeg_decoder`; what it does with its input is in `../targets.rs`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::jpeg_decoder(data));
