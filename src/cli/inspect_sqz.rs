//! The storage part of `inspect` for `.sqz` files: per layer, how the
//! weights are stored and where the bytes go, and the whole file's size
//! breakdown.

use std::io::Write;

use formats::read::SqzStorage;
use formats::sqz::{SizeBreakdown, SqzFile, StreamCoding, WeightStorage};
use serde::Serialize;

/// One layer's storage facts.
struct StorageRow<'a> {
    name: &'a str,
    kind: &'static str,
    /// Index width implied by the codebook size, for quantized kinds.
    bits: Option<u32>,
    /// Entropy coding of the code and position streams.
    coding: String,
    nonzeros: usize,
    codes: usize,
    positions: usize,
    codebook: usize,
    bias: usize,
    total: usize,
}

fn rows<'a>(
    file: &'a SqzFile,
    breakdown: &SizeBreakdown,
    nonzeros: &[usize],
) -> Vec<StorageRow<'a>> {
    file.layers
        .iter()
        .zip(&breakdown.layers)
        .zip(nonzeros)
        .map(|((layer, bytes), &nonzeros)| {
            let (kind, codebook_len, streams): (_, Option<usize>, Vec<&StreamCoding>) =
                match &layer.weights {
                    WeightStorage::Dense(_) => ("dense", None, vec![]),
                    WeightStorage::Sparse { positions, .. } => {
                        ("sparse", None, vec![&positions.coding])
                    }
                    WeightStorage::Quantized { codebook, codes } => {
                        ("quantized", Some(codebook.len()), vec![&codes.coding])
                    }
                    WeightStorage::SparseQuantized {
                        codebook,
                        positions,
                        codes,
                    } => (
                        "sparse+quantized",
                        Some(codebook.len() + 1),
                        vec![&codes.coding, &positions.coding],
                    ),
                };
            let coding = streams
                .iter()
                .map(|c| match c {
                    StreamCoding::Raw { .. } => "raw",
                    StreamCoding::Huffman { .. } => "huffman",
                })
                .collect::<Vec<_>>()
                .join("/");
            StorageRow {
                name: &layer.name,
                kind,
                bits: codebook_len.map(|n| (n.max(2) - 1).ilog2() + 1),
                coding,
                nonzeros,
                codes: bytes.codes.total(),
                positions: bytes.positions.total(),
                codebook: bytes.values,
                bias: bytes.bias,
                total: bytes.total(),
            }
        })
        .collect()
}

/// Bits the layer's stored bytes cost per nonzero weight.
fn bits_per_nonzero(total: usize, nonzeros: usize) -> f64 {
    8.0 * total as f64 / nonzeros.max(1) as f64
}

/// Print the storage table and the file's size breakdown. `nonzeros` is
/// the decoded model's nonzero count per layer.
pub fn print(out: &mut impl Write, sqz: &SqzStorage, nonzeros: &[usize]) -> std::io::Result<()> {
    let (file, breakdown) = (&sqz.file, &sqz.breakdown);
    writeln!(out)?;
    writeln!(
        out,
        "{:<28} {:>16} {:>4} {:>11} {:>8} {:>9} {:>8} {:>7} {:>8} {:>9}",
        "layer",
        "storage",
        "bits",
        "coding",
        "codes",
        "positions",
        "values",
        "bias",
        "total",
        "bits/nz"
    )?;
    for r in rows(file, breakdown, nonzeros) {
        writeln!(
            out,
            "{:<28} {:>16} {:>4} {:>11} {:>8} {:>9} {:>8} {:>7} {:>8} {:>9.2}",
            r.name,
            r.kind,
            r.bits.map(|b| b.to_string()).unwrap_or_default(),
            r.coding,
            r.codes,
            r.positions,
            r.codebook,
            r.bias,
            r.total,
            bits_per_nonzero(r.total, r.nonzeros)
        )?;
    }
    let layers: usize = breakdown.layers.iter().map(|l| l.total()).sum();
    writeln!(
        out,
        "file: {} bytes = container {} + names {} + graph {} + preprocessing {} + layers {}",
        breakdown.total(),
        breakdown.container,
        breakdown.strings,
        breakdown.graph,
        breakdown.preprocess,
        layers
    )?;
    let sum =
        |f: fn(&formats::sqz::LayerBytes) -> usize| breakdown.layers.iter().map(f).sum::<usize>();
    writeln!(
        out,
        "layers: codes {} + positions {} + values/codebooks {} + biases {} + headers {} bytes",
        sum(|l| l.codes.total()),
        sum(|l| l.positions.total()),
        sum(|l| l.values),
        sum(|l| l.bias),
        sum(|l| l.header)
    )
}

/// The JSON form of one layer's storage row.
#[derive(Serialize)]
pub struct LayerStorageJson<'a> {
    name: &'a str,
    storage: &'static str,
    bits: Option<u32>,
    coding: String,
    codes_bytes: usize,
    positions_bytes: usize,
    values_bytes: usize,
    bias_bytes: usize,
    bytes: usize,
    bits_per_nonzero: f64,
}

/// The JSON form of a `.sqz` file's storage: the size breakdown and the
/// per-layer rows.
#[derive(Serialize)]
pub struct StorageJson<'a> {
    file_bytes: usize,
    container_bytes: usize,
    names_bytes: usize,
    graph_bytes: usize,
    preprocess_bytes: usize,
    layers: Vec<LayerStorageJson<'a>>,
}

/// The same as JSON.
pub fn to_json<'a>(sqz: &'a SqzStorage, nonzeros: &[usize]) -> StorageJson<'a> {
    let (file, breakdown) = (&sqz.file, &sqz.breakdown);
    let layers = rows(file, breakdown, nonzeros)
        .into_iter()
        .map(|r| LayerStorageJson {
            name: r.name,
            storage: r.kind,
            bits: r.bits,
            bits_per_nonzero: bits_per_nonzero(r.total, r.nonzeros),
            coding: r.coding,
            codes_bytes: r.codes,
            positions_bytes: r.positions,
            values_bytes: r.codebook,
            bias_bytes: r.bias,
            bytes: r.total,
        })
        .collect();
    StorageJson {
        file_bytes: breakdown.total(),
        container_bytes: breakdown.container,
        names_bytes: breakdown.strings,
        graph_bytes: breakdown.graph,
        preprocess_bytes: breakdown.preprocess,
        layers,
    }
}
