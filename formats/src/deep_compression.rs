//! Reader for Han et al.'s Deep Compression `.net` files, with the Caffe
//! prototxt that defines the network.
//!
//! Layout (little-endian): `u32 nnz[L]` for the L convolution layers in
//! prototxt order, then per layer `f32 codebook[256]` (entry 0 is 0.0),
//! `f32 bias[num_output]`, `u8 codes[nnz]` and `u8 gaps[ceil(nnz/2)]`: 4-bit
//! relative indices, two per byte, low nibble first. Entry i lands at
//! `p_i = p_{i-1} + gap_i + 1` (with `p_{-1} = -1`) in the flattened
//! `[out][in][kh][kw]` weights; gaps longer than 15 are bridged by filler
//! entries whose code is 0, and positions never reached hold 0.

use crate::byte_cursor::ByteCursor;
use crate::caffe_net::{self, LayerShape};
use crate::{FormatError, Model, Result};
use std::path::{Path, PathBuf};

/// Codebook entries per layer: 8-bit codes.
pub const CODEBOOK_SIZE: usize = 256;

/// One layer of a `.net` file, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedLayer {
    /// Stored entries, filler entries included.
    pub nnz: usize,
    /// The layer's shared weight values; entry 0 is 0.0.
    pub codebook: Vec<f32>,
    /// Dense weights in `[out][in][kh][kw]` order.
    pub weights: Vec<f32>,
    /// One bias per output channel.
    pub bias: Vec<f32>,
}

/// Read a `.net` file with its network definition: `prototxt` when given,
/// otherwise the only `*.prototxt` in the `.net`'s folder.
pub fn read_deep_compression(net_path: &Path, prototxt: Option<&Path>) -> Result<Model> {
    let prototxt_path = match prototxt {
        Some(p) => p.to_path_buf(),
        None => prototxt_beside(net_path)?,
    };
    let net = std::fs::read(net_path).map_err(|e| FormatError::io(net_path, e))?;
    let text =
        std::fs::read_to_string(&prototxt_path).map_err(|e| FormatError::io(&prototxt_path, e))?;
    parse_deep_compression(&net, &text)
}

/// Build a [`Model`] from `.net` bytes and prototxt text.
pub fn parse_deep_compression(net: &[u8], prototxt_text: &str) -> Result<Model> {
    let definition = caffe_net::parse_net_text(prototxt_text)?;
    let decoded = decode_net(net, &definition.layers)?;
    definition.into_model(decoded.into_iter().map(|l| (l.weights, l.bias)).collect())
}

/// The single `*.prototxt` in the folder of `net_path` (also used for
/// `.caffemodel` weights, which need their definition the same way).
pub(crate) fn prototxt_beside(net_path: &Path) -> Result<PathBuf> {
    let folder = match net_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = std::fs::read_dir(folder).map_err(|e| FormatError::io(folder, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| FormatError::io(folder, e))?.path();
        if path.extension().is_some_and(|e| e == "prototxt") {
            found.push(path);
        }
    }
    found.sort();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(FormatError::invalid(format!(
            "no .prototxt beside {}; give the network definition explicitly",
            net_path.display()
        ))),
        several => Err(FormatError::invalid(format!(
            "{} .prototxt files beside {} ({}); give the network definition explicitly",
            several.len(),
            net_path.display(),
            several
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Decode the weights of `layers` (the learned layers of the prototxt, in
/// order) from `.net` bytes. Every count is checked against the layer
/// shapes and the bytes present before anything is allocated, and the
/// bytes must be used up exactly.
pub fn decode_net(net: &[u8], layers: &[LayerShape]) -> Result<Vec<DecodedLayer>> {
    if let Some(affine) = layers.iter().find(|l| l.kind.is_affine()) {
        return Err(FormatError::unsupported(format!(
            "layer {}: a Deep Compression .net stores convolution and fully connected layers only",
            affine.name
        )));
    }
    let mut cursor = ByteCursor::new(net, "Deep Compression .net");
    let header = layers
        .len()
        .checked_mul(4)
        .ok_or_else(|| FormatError::invalid("absurd layer count"))?;
    let counts = cursor.take(header, "the nnz table")?;
    let nnz: Vec<usize> = counts
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let mut needed = 0usize;
    for (layer, &n) in layers.iter().zip(&nnz) {
        if n > layer.weight_count() {
            return Err(FormatError::invalid(format!(
                "layer {}: {n} stored entries for only {} weights",
                layer.name,
                layer.weight_count()
            )));
        }
        let layer_bytes = (4 * CODEBOOK_SIZE + n + n.div_ceil(2))
            .saturating_add(layer.shape[0].saturating_mul(4));
        needed = needed.saturating_add(layer_bytes);
    }
    if needed > cursor.remaining() {
        return Err(FormatError::truncated(format!(
            "Deep Compression .net: the layers need {needed} bytes after the nnz table but only {} remain",
            cursor.remaining()
        )));
    }
    let decoded = layers
        .iter()
        .zip(nnz)
        .map(|(layer, n)| decode_layer(&mut cursor, layer, n))
        .collect::<Result<Vec<_>>>()?;
    cursor.finish()?;
    Ok(decoded)
}

fn decode_layer(cursor: &mut ByteCursor, layer: &LayerShape, nnz: usize) -> Result<DecodedLayer> {
    let name = &layer.name;
    let codebook = cursor.f32s(CODEBOOK_SIZE, &format!("codebook of {name}"))?;
    if codebook[0] != 0.0 {
        return Err(FormatError::invalid(format!(
            "layer {name}: codebook entry 0 is {} instead of 0",
            codebook[0]
        )));
    }
    let bias = cursor.f32s(layer.shape[0], &format!("biases of {name}"))?;
    let codes = cursor.take(nnz, &format!("codes of {name}"))?;
    let gaps = cursor.take(nnz.div_ceil(2), &format!("index gaps of {name}"))?;
    let count = layer.weight_count();
    let mut weights = vec![0.0f32; count];
    let mut next = 0usize;
    for (i, &code) in codes.iter().enumerate() {
        let packed = gaps[i / 2];
        let gap = if i % 2 == 0 {
            packed & 0x0f
        } else {
            packed >> 4
        };
        let position = next + gap as usize;
        if position >= count {
            return Err(FormatError::invalid(format!(
                "layer {name}: entry {i} lands at position {position}, past its {count} weights"
            )));
        }
        weights[position] = codebook[code as usize];
        next = position + 1;
    }
    Ok(DecodedLayer {
        nnz,
        codebook,
        weights,
        bias,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROTOTXT: &str = r#"
        input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 2 kernel_size: 3 } }
    "#;

    /// A `.net` for the 2x3x3x3 (54 weights) layer of [`PROTOTXT`]:
    /// codebook[k] = k/2, biases 1 and -1, and the given codes and gaps.
    fn net_bytes(codes: &[u8], gaps: &[u8]) -> Vec<u8> {
        let mut bytes = (codes.len() as u32).to_le_bytes().to_vec();
        for k in 0..CODEBOOK_SIZE {
            bytes.extend((k as f32 / 2.0).to_le_bytes());
        }
        bytes.extend(1.0f32.to_le_bytes());
        bytes.extend((-1.0f32).to_le_bytes());
        bytes.extend(codes);
        bytes.extend(gaps);
        bytes
    }

    #[test]
    fn gaps_fillers_and_nibble_order() {
        // Gaps 0, 2 | 15, 15 | 1 (odd count: high nibble unused).
        // Positions: 0, 3, 19, 35, 37. Entry at 19 is a filler (code 0).
        let net = net_bytes(&[2, 4, 0, 6, 8], &[0x20, 0xff, 0x01]);
        let m = parse_deep_compression(&net, PROTOTXT).unwrap();
        let w = &m.layers[0].weights;
        assert_eq!(w.len(), 54);
        let nonzero: Vec<(usize, f32)> = w
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, v)| *v != 0.0)
            .collect();
        assert_eq!(nonzero, [(0, 1.0), (3, 2.0), (35, 3.0), (37, 4.0)]);
        assert_eq!(m.layers[0].bias, [1.0, -1.0]);
        assert_eq!(m.preprocess.crop, 8);
        let decoded =
            decode_net(&net, &caffe_net::parse_net_text(PROTOTXT).unwrap().layers).unwrap();
        assert_eq!(decoded[0].nnz, 5);
        assert_eq!(decoded[0].codebook[3], 1.5);
    }

    #[test]
    fn the_prototxt_is_the_only_one_beside_the_net() {
        let dir = std::env::temp_dir().join(format!("sqz-dc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let net_path = dir.join("model.net");
        std::fs::write(&net_path, net_bytes(&[1], &[0])).unwrap();
        let e = read_deep_compression(&net_path, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no .prototxt beside"), "{e}");
        std::fs::write(dir.join("deploy.prototxt"), PROTOTXT).unwrap();
        let found = read_deep_compression(&net_path, None).unwrap();
        assert_eq!(
            found,
            read_deep_compression(&net_path, Some(&dir.join("deploy.prototxt"))).unwrap()
        );
        std::fs::write(dir.join("train.prototxt"), "").unwrap();
        let e = read_deep_compression(&net_path, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 .prototxt files") && e.contains("train.prototxt"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_rejected() {
        let good = net_bytes(&[1, 1], &[0x11]);
        assert!(parse_deep_compression(&good, PROTOTXT).is_ok());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (good[..good.len() - 1].to_vec(), "truncated"),
            (good[..2].to_vec(), "nnz table"),
            ([good.clone(), vec![0]].concat(), "unexpected bytes"),
            (
                net_bytes(&[1; 55], &[0; 28]),
                "55 stored entries for only 54",
            ),
            (
                net_bytes(&[1, 1, 1, 1, 1], &[0xff, 0xff, 0x0f]),
                "past its 54 weights",
            ),
            (
                [&u32::MAX.to_le_bytes()[..], &good[4..]].concat(),
                "stored entries",
            ),
            ([&40u32.to_le_bytes()[..], &good[4..]].concat(), "need"),
        ];
        for (bytes, expected) in cases {
            let e = parse_deep_compression(&bytes, PROTOTXT)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{expected}: {e}");
        }
        let mut bad_codebook = good.clone();
        bad_codebook[4..8].copy_from_slice(&0.25f32.to_le_bytes());
        assert!(parse_deep_compression(&bad_codebook, PROTOTXT)
            .unwrap_err()
            .to_string()
            .contains("entry 0"));
    }
}
