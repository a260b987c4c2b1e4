//! Fuzz target `safetensors_reader`; what it does with its input is in `../targets.rs`.
#![no_main]

#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::safetensors_reader(data));
