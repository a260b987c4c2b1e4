//! Consistency rules of a `.sqz` file (`SQZ.md`, "Validation"): everything
//! that can be checked without decoding the streams. [`read_sqz`] applies
//! them to every file it reads; writers can apply them before writing.
//!
//! [`read_sqz`]: super::read_sqz

use super::coding::{check_lengths, packed_len, raw_bits};
use super::strings::StringTable;
use super::{
    EncodedLayer, SqzFile, Stream, StreamCoding, WeightStorage, MAX_ALPHABET, MAX_HYPERPARAMETER,
    MAX_LAYERS, MAX_NAME_BYTES, MAX_NODES, MAX_TEXT_BYTES, MAX_WEIGHTS_PER_LAYER,
};
use crate::model::{Graph, Op, Preprocess, Resize};
use crate::{FormatError, Result};

/// A rule violation, before the caller adds where it happened.
type Check = std::result::Result<(), String>;

impl SqzFile {
    /// Check every rule a readable `.sqz` file obeys: limits, unique layer
    /// names, each layer's consistency ([`EncodedLayer::validate`]), the
    /// graph ([`Graph::validate`]) and the preprocessing preset. A file that
    /// passes is written by [`write_sqz`](super::write_sqz) into bytes that
    /// [`read_sqz`](super::read_sqz) reads back equal.
    pub fn validate(&self) -> Result<()> {
        if self.layers.len() > MAX_LAYERS {
            return Err(FormatError::invalid(format!(
                "{} layers exceed the limit {MAX_LAYERS}",
                self.layers.len()
            )));
        }
        let mut names = std::collections::HashSet::new();
        for layer in &self.layers {
            if !names.insert(layer.name.as_str()) {
                return Err(FormatError::invalid(format!(
                    "two layers are named {}",
                    layer.name
                )));
            }
            layer.validate()?;
        }
        check_graph_limits(&self.graph).map_err(|m| FormatError::invalid(format!("graph: {m}")))?;
        let text = StringTable::for_file(self).text_bytes();
        if text > MAX_TEXT_BYTES {
            return Err(FormatError::invalid(format!(
                "the names total {text} bytes, over the limit {MAX_TEXT_BYTES}"
            )));
        }
        self.graph.validate(self.layers.len())?;
        check_preprocess(&self.preprocess)
            .map_err(|m| FormatError::invalid(format!("preprocess: {m}")))
    }
}

impl EncodedLayer {
    /// Check the layer against its shape: name length, weight count within
    /// [`MAX_WEIGHTS_PER_LAYER`], one bias per output channel, value and
    /// stream counts matching the storage kind, codebook size equal to the
    /// code alphabet, and every stream valid ([`Stream::validate`]).
    pub fn validate(&self) -> Result<()> {
        self.check()
            .map_err(|m| FormatError::invalid(format!("layer {}: {m}", self.name)))
    }

    fn check(&self) -> Check {
        check_name(&self.name)?;
        let weights = self
            .shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .filter(|&n| n >= 1 && n <= MAX_WEIGHTS_PER_LAYER as u64)
            .ok_or_else(|| {
                format!(
                    "shape {:?} is empty or over {MAX_WEIGHTS_PER_LAYER} weights",
                    self.shape
                )
            })?;
        if self.bias.len() != self.shape[0] {
            return Err(format!(
                "{} biases for {} output channels",
                self.bias.len(),
                self.shape[0]
            ));
        }
        match &self.weights {
            WeightStorage::Dense(values) => {
                expect_count("dense weights", values.len() as u64, weights)
            }
            WeightStorage::Sparse { positions, values } => {
                check_positions(positions, values.len() as u64, weights)
            }
            WeightStorage::Quantized { codebook, codes } => {
                check_codes(codes, codebook.len())?;
                expect_count("codes", codes.count, weights)
            }
            WeightStorage::SparseQuantized {
                codebook,
                positions,
                codes,
            } => {
                check_codes(codes, codebook.len())?;
                check_positions(positions, codes.count, weights)
            }
        }
    }
}

impl Stream {
    /// Check the stream's self-consistency: alphabet in
    /// `1..=`[`MAX_ALPHABET`]; at most [`MAX_WEIGHTS_PER_LAYER`] symbols
    /// (no layer has more weights, so no stream has more symbols); for raw coding, `bits == ceil(log2(alphabet))`
    /// and a payload of exactly `ceil(count * bits / 8)` bytes with zero
    /// padding; for Huffman coding, one code length per symbol, none over
    /// [`MAX_CODE_LENGTH`](super::MAX_CODE_LENGTH), lengths satisfying Kraft's inequality, and a
    /// payload length between what `count` symbols need at the shortest and
    /// at the longest code length.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(FormatError::invalid)
    }

    fn check(&self) -> Check {
        if self.alphabet == 0 || self.alphabet > MAX_ALPHABET {
            return Err(format!(
                "alphabet {} is outside 1..={MAX_ALPHABET}",
                self.alphabet
            ));
        }
        if self.count > MAX_WEIGHTS_PER_LAYER as u64 {
            return Err(format!(
                "{} symbols exceed the limit {MAX_WEIGHTS_PER_LAYER}",
                self.count
            ));
        }
        match &self.coding {
            StreamCoding::Raw { bits } => self.check_raw(*bits),
            StreamCoding::Huffman { code_lengths } => self.check_huffman(code_lengths),
        }
    }

    fn check_raw(&self, bits: u8) -> Check {
        let needed = u32::from(raw_bits(self.alphabet));
        if u32::from(bits) != needed {
            return Err(format!(
                "{bits}-bit raw symbols for alphabet {} (needs {needed})",
                self.alphabet
            ));
        }
        let expected = packed_len(self.count, needed);
        if self.payload.len() as u128 != expected {
            return Err(format!(
                "{} payload bytes for {} {needed}-bit symbols (needs {expected})",
                self.payload.len(),
                self.count
            ));
        }
        let used_bits = (u128::from(self.count) * u128::from(needed) % 8) as u32;
        let padding_clear = used_bits == 0
            || self
                .payload
                .last()
                .is_none_or(|b| b & (0xFF >> used_bits) == 0);
        if !padding_clear {
            return Err("nonzero padding bits after the last raw symbol".to_string());
        }
        Ok(())
    }

    fn check_huffman(&self, code_lengths: &[u8]) -> Check {
        check_lengths(code_lengths, self.alphabet)?;
        let used = || code_lengths.iter().copied().filter(|&l| l > 0);
        let (Some(shortest), Some(longest)) = (used().min(), used().max()) else {
            return match (self.count, self.payload.len()) {
                (0, 0) => Ok(()),
                _ => Err(format!(
                    "{} symbols and {} payload bytes but no codes",
                    self.count,
                    self.payload.len()
                )),
            };
        };
        let payload_bits = self.payload.len() as u128 * 8;
        let fewest = u128::from(self.count) * u128::from(shortest);
        let most = packed_len(self.count, longest.into());
        if payload_bits < fewest || self.payload.len() as u128 > most {
            return Err(format!(
                "{} payload bytes cannot hold {} symbols of {shortest} to {longest} bits",
                self.payload.len(),
                self.count
            ));
        }
        Ok(())
    }
}

fn expect_count(what: &str, actual: u64, expected: u64) -> Check {
    match actual == expected {
        true => Ok(()),
        false => Err(format!("{actual} {what} for {expected} weights")),
    }
}

/// A code stream indexes a codebook of `codebook_len` entries.
fn check_codes(codes: &Stream, codebook_len: usize) -> Check {
    codes.check().map_err(|m| format!("codes: {m}"))?;
    if codebook_len != codes.alphabet as usize {
        return Err(format!(
            "codebook of {codebook_len} values for a code alphabet of {}",
            codes.alphabet
        ));
    }
    Ok(())
}

/// A gap stream listing `entries` of `weights` positions: `entries` symbols
/// below `alphabet - 1` plus skip symbols, each skip covering
/// `alphabet - 1` positions that lie within the layer.
fn check_positions(positions: &Stream, entries: u64, weights: u64) -> Check {
    positions.check().map_err(|m| format!("positions: {m}"))?;
    if positions.alphabet < 2 {
        return Err(format!(
            "position alphabet {} is below 2",
            positions.alphabet
        ));
    }
    if entries > weights {
        return Err(format!("{entries} nonzero entries for {weights} weights"));
    }
    let max_skips = (weights - entries) / u64::from(positions.alphabet - 1);
    if positions.count < entries || positions.count - entries > max_skips {
        return Err(format!(
            "{} position symbols for {entries} entries (allowed {entries}..={})",
            positions.count,
            entries + max_skips
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Check {
    match name.len() <= MAX_NAME_BYTES {
        true => Ok(()),
        false => Err(format!(
            "a name of {} bytes exceeds {MAX_NAME_BYTES}",
            name.len()
        )),
    }
}

/// The limits the graph encoding imposes on top of [`Graph::validate`].
fn check_graph_limits(graph: &Graph) -> Check {
    if graph.nodes.len() > MAX_NODES {
        return Err(format!(
            "{} nodes exceed the limit {MAX_NODES}",
            graph.nodes.len()
        ));
    }
    let names = || {
        [&graph.input, &graph.output].into_iter().chain(
            graph
                .nodes
                .iter()
                .flat_map(|n| std::iter::once(&n.name).chain(&n.inputs).chain(&n.outputs)),
        )
    };
    names().try_for_each(|n| check_name(n))?;
    let text: usize = names().map(String::len).sum();
    if text > MAX_TEXT_BYTES {
        return Err(format!(
            "names total {text} bytes, over the limit {MAX_TEXT_BYTES}"
        ));
    }
    for node in &graph.nodes {
        let sizes = match &node.op {
            Op::Conv(c) => vec![c.stride_h, c.stride_w, c.pad_h, c.pad_w, c.groups],
            Op::Pool(p) => vec![
                p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
            ],
            _ => vec![],
        };
        if let Some(v) = sizes.iter().find(|&&v| v > MAX_HYPERPARAMETER) {
            return Err(format!(
                "node {}: kernel, stride, padding or group count {v} exceeds {MAX_HYPERPARAMETER}",
                node.name
            ));
        }
    }
    Ok(())
}

fn check_preprocess(p: &Preprocess) -> Check {
    let sides_ok = match p.resize {
        Resize::ShorterSide(side) => side > 0,
        Resize::Exact { width, height } => width > 0 && height > 0,
    };
    if !sides_ok || p.crop == 0 {
        return Err("zero resize or crop size".to_string());
    }
    let numbers_ok = std::iter::once(p.scale)
        .chain(p.mean)
        .chain(p.std)
        .all(f32::is_finite);
    if !numbers_ok || p.std.contains(&0.0) {
        return Err("scale, mean and std must be finite and std nonzero".to_string());
    }
    Ok(())
}
