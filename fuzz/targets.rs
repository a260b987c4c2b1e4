//! What each fuzz target does with its input, shared by the cargo-fuzz
#![allow(dead_code)] // each fuzz binary uses one target; the replay test uses them all
//! binaries in `fuzz_targets/` and by the regression replay in
//! `tests/end_to_end/hostile_inputs.rs`, so a saved crash input is replayed exactly
//! as the fuzzer ran it.
//!
//! Every function must return (an `Ok` or an `Err`, ignored here) for any
//! input: a panic, a hang or a huge allocation is a finding.
//!
//! Targets that need two files take one input and split it at its first
//! NUL byte: text part first (`.param`, prototxt), binary part after it.

use formats::sqz::coding::{decode_positions, decode_stream};
use formats::sqz::{Stream, StreamCoding};

#[path = "../tests/end_to_end/common/crc32.rs"]
mod crc32;
use crc32::crc32;

/// Target names, in the order of `fuzz/Cargo.toml`; each has a folder
/// under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: [&str; 9] = [
    "sqz_reader",
    "ncnn_reader",
    "deep_compression_reader",
    "onnx_reader",
    "caffemodel_reader",
    "huffman_decode",
    "gap_decode",
    "jpeg_decoder",
    "safetensors_reader",
];

/// Runs target `name` on `data`; `false` when there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "sqz_reader" => sqz_reader(data),
        "ncnn_reader" => ncnn_reader(data),
        "deep_compression_reader" => deep_compression_reader(data),
        "onnx_reader" => onnx_reader(data),
        "caffemodel_reader" => caffemodel_reader(data),
        "huffman_decode" => huffman_decode(data),
        "gap_decode" => gap_decode(data),
        "jpeg_decoder" => jpeg_decoder(data),
        "safetensors_reader" => safetensors_reader(data),
        _ => return false,
    }
    true
}

/// The text before the first NUL (lossily UTF-8) and the bytes after it.
fn split_text_binary(data: &[u8]) -> (String, &[u8]) {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let text = String::from_utf8_lossy(&data[..cut]).into_owned();
    (text, data.get(cut + 1..).unwrap_or(&[]))
}

/// A `.sqz` container, read and decoded to a model (streams included), as
/// `sqz-compress` loads it: once as given, once with its checksums made
/// valid so that mutations also reach the section parsers.
pub fn sqz_reader(data: &[u8]) {
    read_sqz_model(data);
    read_sqz_model(&with_valid_checksums(data));
}

/// `read_sqz`, then `decode_model` on success.
fn read_sqz_model(data: &[u8]) {
    if let Ok(file) = formats::sqz::read_sqz(data) {
        let _ = formats::sqz::decode_model(&file);
    }
}

/// `data` with the CRCs of the `.sqz` layout (`formats/SQZ.md`, section 2)
/// recomputed: every section body the directory locates, then the
/// directory, then the header. Parts too short to hold a CRC stay as they
/// are.
pub fn with_valid_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if out.len() < 20 {
        return out;
    }
    let directory_len = u32::from_le_bytes([out[8], out[9], out[10], out[11]]) as usize;
    let directory = 20..20usize.saturating_add(directory_len).min(out.len());
    fix_body_checksums(&mut out, directory.clone());
    let directory_crc = crc32(&out[directory]);
    out[12..16].copy_from_slice(&directory_crc.to_le_bytes());
    let header_crc = crc32(&out[..16]);
    out[16..20].copy_from_slice(&header_crc.to_le_bytes());
    out
}

/// Rewrites the body CRCs stored in the directory at `directory`, for as
/// many entries as can be parsed and whose bodies are in `out`.
fn fix_body_checksums(out: &mut [u8], directory: std::ops::Range<usize>) -> Option<()> {
    let mut at = directory.start;
    let mut body_start = directory.end;
    let sections = read_varint(out, &mut at)?;
    for _ in 0..sections.min(4097) {
        at += 1; // section kind
        let len = usize::try_from(read_varint(out, &mut at)?).ok()?;
        let body_end = body_start.checked_add(len)?;
        let crc = crc32(out.get(body_start..body_end)?);
        out.get_mut(at..at + 4)?.copy_from_slice(&crc.to_le_bytes());
        at += 4;
        body_start = body_end;
    }
    Some(())
}

/// An unsigned LEB128 varint at `*at` (advanced past it); `None` past the
/// end of `bytes` or beyond 64 bits.
fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7F).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// An ncnn `.param` text, NUL, its `.bin` bytes.
pub fn ncnn_reader(data: &[u8]) {
    let (param, bin) = split_text_binary(data);
    let _ = formats::ncnn::parse_ncnn(&param, bin);
}

/// A Caffe prototxt, NUL, a Deep Compression `.net`.
pub fn deep_compression_reader(data: &[u8]) {
    let (prototxt, net) = split_text_binary(data);
    let _ = formats::deep_compression::parse_deep_compression(net, &prototxt);
}

/// An ONNX model, with torchvision preprocessing as the fallback preset
/// so that models without `sqz.preprocess` metadata are read to the end.
pub fn onnx_reader(data: &[u8]) {
    let _ = formats::onnx::read_onnx(data, Some(formats::Preprocess::torchvision()));
}

/// Safetensors weights, read onto the graph of the tiny ONNX seed model
/// (one layer `conv`, 2x3x3x3), as `--graph seeds/models/tiny.onnx` would.
pub fn safetensors_reader(data: &[u8]) {
    let graph = include_bytes!("seeds/models/tiny.onnx");
    let (graph, _) = formats::onnx::read_onnx(graph, Some(formats::Preprocess::torchvision()))
        .expect("the tiny ONNX seed reads");
    let _ = formats::safetensors::read_safetensors(data, graph);
}

/// A Caffe prototxt, NUL, a `.caffemodel`.
pub fn caffemodel_reader(data: &[u8]) {
    let (prototxt, model) = split_text_binary(data);
    let _ = formats::caffemodel::read_caffemodel(model, &prototxt);
}

/// Header bytes then payload: byte 0 picks raw (even) or Huffman (odd),
/// bytes 1–2 the alphabet (LE u16), bytes 3–4 the symbol count (LE u16);
/// raw streams take their bit width from byte 5, Huffman streams take
/// `alphabet` code lengths; the rest is the payload.
fn stream_from(data: &[u8]) -> Option<Stream> {
    let (header, rest) = data.split_at_checked(5)?;
    let alphabet = u32::from(u16::from_le_bytes([header[1], header[2]]));
    let count = u64::from(u16::from_le_bytes([header[3], header[4]]));
    let (coding, payload) = if header[0] % 2 == 0 {
        let (&bits, payload) = rest.split_first()?;
        (StreamCoding::Raw { bits }, payload)
    } else {
        let (lengths, payload) = rest.split_at_checked(alphabet as usize)?;
        (
            StreamCoding::Huffman {
                code_lengths: lengths.to_vec(),
            },
            payload,
        )
    };
    Some(Stream {
        count,
        alphabet,
        coding,
        payload: payload.to_vec(),
    })
}

/// A raw or Huffman coded symbol stream (see [`stream_from`]).
pub fn huffman_decode(data: &[u8]) {
    if let Some(stream) = stream_from(data) {
        let _ = decode_stream(&stream);
    }
}

/// A coded gap stream (as [`huffman_decode`]) followed by the layer length
/// as a trailing LE u32, turned into positions.
pub fn gap_decode(data: &[u8]) {
    let Some((stream, len)) = data.split_last_chunk::<4>() else {
        return;
    };
    let len = u32::from_le_bytes(*len) as usize;
    if let Some(stream) = stream_from(stream) {
        let _ = decode_positions(&stream, len);
    }
}

/// A JPEG file, decoded by sqz's own libjpeg-turbo-compatible decoder
/// (`sqz::imaging::jpeg::decode`), then as the CLI loads an image
/// (`sqz::imaging::decode_rgb`: size check, own decoder, `image` crate as
/// the fallback for what the own decoder leaves).
pub fn jpeg_decoder(data: &[u8]) {
    let _ = sqz::imaging::jpeg::decode(data);
    let _ = sqz::imaging::decode_rgb(data, std::path::Path::new("fuzz.jpg"));
}
