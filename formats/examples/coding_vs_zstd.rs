//! Our stream coding against zstd level 19 on real Deep Compression
//! streams: the 8-bit codebook indices and 4-bit relative indices of Han et
//! al.'s compressed SqueezeNet v1.0 (`compressed_SqueezeNet.net`, found via
//! `SQZ_SHARED`, default `../shared` next to the repository).
//!
//! For each layer the filler entries (code 0, bridging gaps over 15) are
//! dropped, leaving the true nonzeros; their codes are coded with
//! [`encode_stream`] and their positions with [`encode_positions`]. zstd -19
//! gets the same symbols one byte each, and Han's stored bytes. Our sizes
//! are what each stream takes in a `.sqz` file ([`Stream::stored_bytes`]:
//! header and code length table included).
//!
//! Run: `cargo run --release -p sqz-formats --example coding_vs_zstd`.

use formats::sqz::coding::{encode_positions, encode_stream, positions_to_gaps};
use formats::sqz::{Stream, StreamCoding as Coding};
use std::error::Error;
use std::path::PathBuf;

const ZSTD_LEVEL: i32 = 19;

/// One convolution layer's streams as Han's file stores them.
struct HanLayer {
    /// Codebook index per stored entry (0 = filler).
    codes: Vec<u8>,
    /// Relative indices, two 4-bit values per byte, low nibble first.
    gap_bytes: Vec<u8>,
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = shared_dir().join("models/squeezenet_v1.0-deep-compression");
    let prototxt =
        std::fs::read_to_string(dir.join("SqueezeNet_deploy.prototxt")).map_err(|e| {
            format!(
                "{}: {e} (set SQZ_SHARED to the shared data directory)",
                dir.display()
            )
        })?;
    let net = std::fs::read(dir.join("compressed_SqueezeNet.net"))?;
    let layers = parse_han(&net, &num_outputs(&prototxt)?)?;

    println!(
        "{:<4} {:>7} {:>7} | {:>6} {:>6} | {:>6} {:>6} {:>3} | {:>6} {:>6} {:>6}",
        "", "stored", "nonzero", "Han", "Han", "our", "our", "A", "zstd", "zstd", "zstd"
    );
    println!(
        "{:<4} {:>7} {:>7} | {:>6} {:>6} | {:>6} {:>6} {:>3} | {:>6} {:>6} {:>6}",
        "layer",
        "entries",
        "entries",
        "codes",
        "gaps",
        "codes",
        "pos",
        "",
        "codes",
        "Han gp",
        "our gp"
    );
    let mut totals = [0usize; 9];
    let (mut all_codes, mut all_han_gaps, mut all_our_gaps) = (Vec::new(), Vec::new(), Vec::new());
    for (i, layer) in layers.iter().enumerate() {
        let (positions, codes) = true_entries(layer);
        let symbols: Vec<u32> = codes.iter().map(|&c| u32::from(c)).collect();
        let coded_codes = encode_stream(&symbols, 256);
        let len = positions.last().map_or(0, |p| p + 1);
        let coded_positions = encode_positions(&positions, len);
        let alphabet = coded_positions.alphabet;
        let gap_symbols: Vec<u8> = positions_to_gaps(&positions, alphabet)
            .iter()
            .map(|&g| g as u8)
            .collect();
        let row = [
            layer.codes.len(),
            positions.len(),
            layer.codes.len(),
            layer.gap_bytes.len(),
            stored_bytes(&coded_codes),
            stored_bytes(&coded_positions),
            zstd19(&codes)?,
            zstd19(&layer.gap_bytes)?,
            zstd19(&gap_symbols)?,
        ];
        let kind = |c: &Coding| {
            if matches!(c, Coding::Huffman { .. }) {
                "H"
            } else {
                "R"
            }
        };
        println!(
            "{:<5} {:>7} {:>7} | {:>6} {:>6} | {:>5}{} {:>5}{} {:>3} | {:>6} {:>6} {:>6}",
            i,
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            kind(&coded_codes.coding),
            row[5],
            kind(&coded_positions.coding),
            alphabet,
            row[6],
            row[7],
            row[8]
        );
        for (t, r) in totals.iter_mut().zip(row) {
            *t += r;
        }
        all_codes.extend_from_slice(&codes);
        all_han_gaps.extend_from_slice(&layer.gap_bytes);
        all_our_gaps.extend_from_slice(&gap_symbols);
    }
    let [stored, nonzero, han_codes, han_gaps, our_codes, our_positions, z_codes, z_han_gaps, z_our_gaps] =
        totals;
    println!(
        "{:<5} {:>7} {:>7} | {:>6} {:>6} | {:>6} {:>6} {:>3} | {:>6} {:>6} {:>6}",
        "sum",
        stored,
        nonzero,
        han_codes,
        han_gaps,
        our_codes,
        our_positions,
        "",
        z_codes,
        z_han_gaps,
        z_our_gaps
    );
    println!();
    println!("Index streams of all layers, in bytes (H = Huffman, R = raw; our sizes include Huffman tables;");
    println!("A = chosen gap alphabet; zstd columns: level {ZSTD_LEVEL}, one frame per layer and stream):");
    println!(
        "  Han et al. as stored (codes + 4-bit gaps, with fillers): {:>7}",
        han_codes + han_gaps
    );
    println!(
        "  ours: codes {our_codes} + positions {our_positions} = {:>7}",
        our_codes + our_positions
    );
    println!(
        "  zstd: nonzero codes {z_codes} + our gap symbols {z_our_gaps} = {:>7}",
        z_codes + z_our_gaps
    );
    println!(
        "  zstd: nonzero codes {z_codes} + Han's gap bytes {z_han_gaps} = {:>7}",
        z_codes + z_han_gaps
    );
    println!(
        "  zstd on the concatenated streams of all layers: nonzero codes {}, Han's gap bytes {}, our gap symbols {}",
        zstd19(&all_codes)?,
        zstd19(&all_han_gaps)?,
        zstd19(&all_our_gaps)?
    );
    println!(
        "  zstd on the whole .net file: {} of {} bytes",
        zstd19(&net)?,
        net.len()
    );
    Ok(())
}

/// Size of `bytes` compressed by zstd at [`ZSTD_LEVEL`].
/// Bytes `stream` takes in a `.sqz` file.
fn stored_bytes(stream: &Stream) -> usize {
    stream.stored_bytes().total()
}

fn zstd19(bytes: &[u8]) -> Result<usize, Box<dyn Error>> {
    Ok(zstd::bulk::compress(bytes, ZSTD_LEVEL)?.len())
}

/// The shared data directory: `SQZ_SHARED`, or `../shared` beside the
/// repository.
fn shared_dir() -> PathBuf {
    std::env::var_os("SQZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")))
}

/// `num_output` of every convolution, in prototxt order (the network has
/// no other layer with that field).
fn num_outputs(prototxt: &str) -> Result<Vec<usize>, Box<dyn Error>> {
    prototxt
        .lines()
        .filter_map(|l| l.trim().strip_prefix("num_output:"))
        .map(|v| Ok(v.trim().parse()?))
        .collect()
}

/// Splits Han's `.net` into per-layer streams: `uint32 nnz[L]`, then per
/// layer `float32 codebook[256]`, `float32 bias[num_output]`,
/// `uint8 codes[nnz]`, `uint8 gaps[ceil(nnz/2)]`.
fn parse_han(net: &[u8], num_outputs: &[usize]) -> Result<Vec<HanLayer>, Box<dyn Error>> {
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], Box<dyn Error>> {
        let bytes = net
            .get(at..at + n)
            .ok_or("compressed_SqueezeNet.net is truncated")?;
        at += n;
        Ok(bytes)
    };
    let mut counts = Vec::with_capacity(num_outputs.len());
    for _ in num_outputs {
        let word: [u8; 4] = take(4)?.try_into()?;
        counts.push(u32::from_le_bytes(word) as usize);
    }
    let mut layers = Vec::with_capacity(num_outputs.len());
    for (&nnz, &outputs) in counts.iter().zip(num_outputs) {
        take(4 * 256 + 4 * outputs)?;
        let codes = take(nnz)?.to_vec();
        let gap_bytes = take(nnz.div_ceil(2))?.to_vec();
        layers.push(HanLayer { codes, gap_bytes });
    }
    if at != net.len() {
        return Err(format!(
            "compressed_SqueezeNet.net has {} unexplained bytes",
            net.len() - at
        )
        .into());
    }
    Ok(layers)
}

/// Positions and codes of the true nonzero entries (fillers dropped).
fn true_entries(layer: &HanLayer) -> (Vec<usize>, Vec<u8>) {
    let mut position: i64 = -1;
    let mut positions = Vec::new();
    let mut codes = Vec::new();
    for (i, &code) in layer.codes.iter().enumerate() {
        let gap = (layer.gap_bytes[i / 2] >> (4 * (i % 2))) & 0x0F;
        position += i64::from(gap) + 1;
        if code != 0 {
            positions.push(position as usize);
            codes.push(code);
        }
    }
    (positions, codes)
}
