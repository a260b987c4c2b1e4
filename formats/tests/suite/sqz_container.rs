//! Tests of the `.sqz` container (`formats/SQZ.md`): the writer matches the
//! byte layout of the spec, every storage kind, float width, operation and
//! preprocessing variant round-trips, and corrupt, truncated or lying files
//! are rejected quickly without large allocations.

use crate::splitmix::SplitMix;
use formats::sqz::{
    read_sqz, size_breakdown, write_sqz, EncodedLayer, FloatVec, SqzFile, Stream, StreamCoding,
    WeightStorage, MAX_TEXT_BYTES,
};
use formats::{
    ChannelOrder, Clip, Conv, FormatError, Graph, Lrn, Node, Op, Pool, PoolKind, Preprocess, Resize,
};
use half::f16;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---------------------------------------------------------------------------
// Allocation tracking: the peak of live heap bytes on the current thread.

struct TrackingAllocator;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

/// Run `f` and return its result with the peak extra heap bytes it held.
fn peak_heap<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    (out, (PEAK.with(Cell::get) - start).max(0) as usize)
}

// ---------------------------------------------------------------------------
// Independent encoders, written from SQZ.md.

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let low = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

fn varint_bytes(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, v);
    out
}

/// Frame section bodies `(kind, body)` into a file as SQZ.md's "File layout" says.
fn frame(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut directory = varint_bytes(sections.len() as u64);
    for (kind, body) in sections {
        directory.push(*kind);
        varint(&mut directory, body.len() as u64);
        directory.extend(crc32fast::hash(body).to_le_bytes());
    }
    let mut file = b"SQZ\0".to_vec();
    file.extend(1u16.to_le_bytes());
    file.extend(0u16.to_le_bytes());
    file.extend((directory.len() as u32).to_le_bytes());
    file.extend(crc32fast::hash(&directory).to_le_bytes());
    let header_crc = crc32fast::hash(&file);
    file.extend(header_crc.to_le_bytes());
    file.extend(directory);
    for (_, body) in sections {
        file.extend(body);
    }
    file
}

/// The `(kind, body)` sections of a well-formed file, parsed as SQZ.md's
/// "File layout" says (the inverse of [`frame`]).
fn sections(file: &[u8]) -> Vec<(u8, Vec<u8>)> {
    fn varint(file: &[u8], at: &mut usize) -> u64 {
        let (mut value, mut shift) = (0u64, 0);
        loop {
            let byte = file[*at];
            *at += 1;
            value |= u64::from(byte & 0x7F) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                return value;
            }
        }
    }
    let directory_len = u32::from_le_bytes(file[8..12].try_into().expect("4 bytes")) as usize;
    let mut at = 20;
    let count = varint(file, &mut at);
    let mut body_start = 20 + directory_len;
    let mut out = Vec::new();
    for _ in 0..count {
        let kind = file[at];
        at += 1;
        let len = varint(file, &mut at) as usize;
        at += 4; // the body's CRC
        out.push((kind, file[body_start..body_start + len].to_vec()));
        body_start += len;
    }
    out
}

/// Pack `values` as `width`-bit numbers, most significant bit first.
fn pack_msb_first(values: &[u32], width: u32) -> Vec<u8> {
    let bits: Vec<u8> = values
        .iter()
        .flat_map(|&v| (0..width).rev().map(move |i| (v >> i) as u8 & 1))
        .collect();
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &bit)| b | bit << (7 - i))
        })
        .collect()
}

/// String table of the tiny reference file: "conv", "data", "data_out".
fn tiny_strings() -> Vec<u8> {
    let mut b = vec![3];
    b.extend([0, 4]);
    b.extend(b"conv");
    b.extend([0, 4]);
    b.extend(b"data");
    b.extend([4, 4]); // shares "data" with its predecessor
    b.extend(b"_out");
    b
}

/// The node of the tiny reference file: a ReLU-fused 1x1 conv.
fn tiny_node() -> Vec<u8> {
    // Head: Conv (tag 0), chained to the graph input "data". Name "conv",
    // outputs ["data_out"]. Conv flags: square, relu, next layer (0);
    // stride 1, pad 0.
    vec![0x10, 0, 1, 2, 0x07, 1, 0]
}

/// The Caffe preset as SQZ.md encodes it.
fn caffe_preprocess() -> Vec<u8> {
    let mut b = vec![1]; // Exact resize
    b.extend([0x80, 0x02, 0x80, 0x02, 0xE3, 0x01]); // 256 x 256, crop 227
    b.push(1); // BGR
    for v in [1.0f32, 104.0, 117.0, 123.0, 1.0, 1.0, 1.0] {
        b.extend(v.to_le_bytes());
    }
    b
}

/// Model section of the tiny reference file: graph input "data", output
/// "data_out", one node, the Caffe preset.
fn tiny_model_body() -> Vec<u8> {
    [
        tiny_strings(),
        vec![1, 2, 1],
        tiny_node(),
        caffe_preprocess(),
    ]
    .concat()
}

/// Layer section of the tiny reference file: shape [2,3,1,1], float32
/// bias, float16 codebook, nonzeros at positions 1 and 4 (raw gaps 1, 2
/// over alphabet 4), codes 1, 0 Huffman-coded with lengths [1, 1].
fn tiny_layer_body() -> Vec<u8> {
    let mut b = vec![0, 2, 3, 1, 1, 0x0B, 2];
    b.extend(0.5f32.to_le_bytes());
    b.extend((-1.0f32).to_le_bytes());
    b.push(2);
    b.extend(f16::from_f32(0.5).to_le_bytes());
    b.extend(f16::from_f32(-0.25).to_le_bytes());
    b.extend([2, 4, 2, 1]); // positions: 2 symbols, alphabet 4, raw 2 bits, 1 payload byte
    b.extend(pack_msb_first(&[1, 2], 2));
    b.extend([2, 2, 0x81]); // codes: 2 symbols, alphabet 2, Huffman with 1-bit table entries
    b.extend(pack_msb_first(&[1, 1], 1));
    b.push(1);
    b.extend(pack_msb_first(&[1, 0], 1)); // canonical codes: symbol 0 = "0", symbol 1 = "1"
    b
}

fn tiny_file_bytes() -> Vec<u8> {
    frame(&[(1, tiny_model_body()), (2, tiny_layer_body())])
}

fn tiny_file() -> SqzFile {
    SqzFile {
        graph: Graph {
            nodes: vec![node("conv", conv_op(0, 1, 0, true), &["data"], "data_out")],
            input: "data".into(),
            output: "data_out".into(),
        },
        preprocess: Preprocess::caffe(),
        layers: vec![EncodedLayer {
            name: "conv".into(),
            shape: [2, 3, 1, 1],
            bias: FloatVec::F32(vec![0.5, -1.0]),
            weights: WeightStorage::SparseQuantized {
                codebook: FloatVec::F16(vec![f16::from_f32(0.5), f16::from_f32(-0.25)]),
                positions: Stream {
                    count: 2,
                    alphabet: 4,
                    coding: StreamCoding::Raw { bits: 2 },
                    payload: pack_msb_first(&[1, 2], 2),
                },
                codes: Stream {
                    count: 2,
                    alphabet: 2,
                    coding: StreamCoding::Huffman {
                        code_lengths: vec![1, 1],
                    },
                    payload: pack_msb_first(&[1, 0], 1),
                },
            },
        }],
    }
}

// ---------------------------------------------------------------------------
// In-memory builders.

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    }
}

fn conv_op(layer: usize, stride: usize, pad: usize, relu: bool) -> Op {
    Op::Conv(Conv {
        layer,
        stride_h: stride,
        stride_w: stride,
        pad_h: pad,
        pad_w: pad,
        groups: 1,
        relu,
    })
}

fn pool_op(kind: PoolKind, kernel: usize, stride: usize, pad: usize, ceil_mode: bool) -> Op {
    Op::Pool(Pool::square(kind, kernel, stride, pad, ceil_mode))
}

/// Raw stream of `symbols`, packed at `ceil(log2(alphabet))` bits.
fn raw_stream(symbols: &[u32], alphabet: u32) -> Stream {
    let bits = (1..=16)
        .find(|&b| 1u32 << b >= alphabet)
        .filter(|_| alphabet > 1)
        .unwrap_or(0);
    Stream {
        count: symbols.len() as u64,
        alphabet,
        coding: StreamCoding::Raw { bits: bits as u8 },
        payload: pack_msb_first(symbols, bits),
    }
}

/// Huffman stream of `count` symbols whose codes all have the longest
/// length in `code_lengths` (the payload is `count * max` bits).
fn huffman_stream(count: u64, code_lengths: Vec<u8>, fill: u8) -> Stream {
    let longest = u64::from(code_lengths.iter().copied().max().unwrap_or(0));
    Stream {
        count,
        alphabet: code_lengths.len() as u32,
        coding: StreamCoding::Huffman { code_lengths },
        payload: vec![fill; (count * longest).div_ceil(8) as usize],
    }
}

fn f16s(values: &[f32]) -> FloatVec {
    FloatVec::F16(values.iter().map(|&v| f16::from_f32(v)).collect())
}

/// One small layer of every storage kind, float width and coding.
fn layers_of_every_kind() -> Vec<EncodedLayer> {
    let layer = |name: &str, shape: [usize; 4], bias: FloatVec, weights| EncodedLayer {
        name: name.into(),
        shape,
        bias,
        weights,
    };
    vec![
        layer(
            "dense32",
            [2, 1, 2, 1],
            FloatVec::F32(vec![0.25, -3.5]),
            WeightStorage::Dense(FloatVec::F32(vec![1.0, -2.0, 0.0, 3.25])),
        ),
        layer(
            "dense16",
            [1, 3, 1, 1],
            f16s(&[7.0]),
            WeightStorage::Dense(f16s(&[0.5, 0.0, -0.125])),
        ),
        layer(
            // 3x2x2x2 = 24 weights; gaps over alphabet 4: symbol 3 skips 3
            // positions, so [3, 3, 0, 1, 2] lists positions 6, 8, 11.
            "sparse",
            [3, 2, 2, 2],
            f16s(&[1.0, 2.0, 3.0]),
            WeightStorage::Sparse {
                positions: raw_stream(&[3, 3, 0, 1, 2], 4),
                values: FloatVec::F32(vec![0.1, 0.2, 0.3]),
            },
        ),
        layer(
            "quant",
            [2, 2, 3, 3],
            FloatVec::F32(vec![0.0, 1.0]),
            WeightStorage::Quantized {
                codebook: f16s(&[-1.0, 0.0, 1.0]),
                codes: huffman_stream(36, vec![1, 2, 2], 0xA5),
            },
        ),
        layer(
            "sparse_quant",
            [4, 4, 1, 1],
            FloatVec::F32(vec![1.0, 2.0, 3.0, 4.0]),
            WeightStorage::SparseQuantized {
                codebook: FloatVec::F32(vec![-0.5, 0.5, 1.5]),
                positions: huffman_stream(6, vec![2, 0, 2, 2, 3, 3], 0x3C),
                codes: raw_stream(&[0, 1, 2, 2, 1], 3),
            },
        ),
        layer(
            "empty_sparse",
            [1, 1, 1, 1],
            FloatVec::F32(vec![0.0]),
            WeightStorage::SparseQuantized {
                codebook: FloatVec::F16(vec![f16::from_f32(2.0)]),
                positions: huffman_stream(0, vec![0, 0], 0),
                codes: raw_stream(&[], 1),
            },
        ),
    ]
}

/// A graph using every operation, both pool kinds and both ceil modes.
fn graph_of_every_op() -> Graph {
    Graph {
        nodes: vec![
            node("c0", conv_op(0, 1, 0, true), &["data"], "a"),
            node("relu", Op::Relu, &["a"], "b"),
            node(
                "maxpool",
                pool_op(PoolKind::Max, 3, 2, 0, true),
                &["b"],
                "c",
            ),
            node("c1", conv_op(1, 2, 1, false), &["c"], "d"),
            node(
                "avgpool",
                pool_op(PoolKind::Avg, 2, 1, 1, false),
                &["c"],
                "e",
            ),
            node("cat", Op::Concat, &["d", "e"], "f"),
            node("add", Op::Add, &["f", "f"], "g"),
            node("drop", Op::Dropout, &["g"], "h"),
            node("c2", conv_op(2, 1, 0, true), &["h"], "i"),
            node("c3", conv_op(3, 1, 0, true), &["i"], "j"),
            node("c4", conv_op(4, 1, 0, true), &["j"], "k"),
            node("c5", conv_op(5, 1, 0, true), &["k"], "k2"),
            node("gap", Op::GlobalAvgPool, &["k2"], "l"),
            node("flat", Op::Flatten, &["l"], "m"),
            node("prob", Op::Softmax, &["m"], "prob"),
        ],
        input: "data".into(),
        output: "prob".into(),
    }
}

fn file_of_every_kind(preprocess: Preprocess) -> SqzFile {
    SqzFile {
        graph: graph_of_every_op(),
        preprocess,
        layers: layers_of_every_kind(),
    }
}

/// SqueezeNet v1.0 as the Deep Compression release's
/// `SqueezeNet_deploy.prototxt` describes it (same layer names, 26
/// convolutions), with blobs named as the Caffe readers name them (an
/// in-place layer writes `blob/layer`), each layer stored as Deep
/// Compression stores it: 8-bit codes over a 255-entry nonzero codebook,
/// 4-bit position gaps, both Huffman-coded, one nonzero in three.
fn squeezenet_v10() -> SqzFile {
    let mut nodes = Vec::new();
    let mut shapes: Vec<(String, [usize; 4])> = Vec::new();
    // A conv layer and its in-place ReLU; returns the ReLU's output blob.
    let mut add_conv = |nodes: &mut Vec<Node>, name: &str, input: &str, shape, stride, pad| {
        nodes.push(node(
            name,
            conv_op(shapes.len(), stride, pad, false),
            &[input],
            name,
        ));
        shapes.push((name.to_string(), shape));
        let relu = match name.rsplit_once('/') {
            Some((fire, conv)) => format!("{fire}/relu_{conv}"),
            None => format!("relu_{name}"),
        };
        let output = format!("{name}/{relu}");
        nodes.push(node(&relu, Op::Relu, &[name], &output));
        output
    };
    let conv1 = add_conv(&mut nodes, "conv1", "data", [96, 3, 7, 7], 2, 0);
    let max_pool = || pool_op(PoolKind::Max, 3, 2, 0, true);
    nodes.push(node("pool1", max_pool(), &[&conv1], "pool1"));
    let mut blob = "pool1".to_string();
    let mut channels = 96;
    for fire in 2..=9 {
        let squeeze = [16, 16, 32, 32, 48, 48, 64, 64][fire - 2];
        let expand = 4 * squeeze;
        let s = format!("fire{fire}/conv1x1_1");
        let e1 = format!("fire{fire}/conv1x1_2");
        let e3 = format!("fire{fire}/conv3x3_2");
        let cat = format!("fire{fire}/concat");
        let s_out = add_conv(&mut nodes, &s, &blob, [squeeze, channels, 1, 1], 1, 0);
        let e1_out = add_conv(&mut nodes, &e1, &s_out, [expand, squeeze, 1, 1], 1, 0);
        let e3_out = add_conv(&mut nodes, &e3, &s_out, [expand, squeeze, 3, 3], 1, 1);
        nodes.push(node(&cat, Op::Concat, &[&e1_out, &e3_out], &cat));
        blob = cat;
        channels = 2 * expand;
        if fire == 4 || fire == 8 {
            let pool = format!("pool{fire}");
            nodes.push(node(&pool, max_pool(), &[&blob], &pool));
            blob = pool;
        }
    }
    let dropped = format!("{blob}/drop9");
    nodes.push(node("drop9", Op::Dropout, &[&blob], &dropped));
    let logits = add_conv(
        &mut nodes,
        "conv_final",
        &dropped,
        [1000, channels, 1, 1],
        1,
        1,
    );
    nodes.push(node(
        "pool_final",
        Op::GlobalAvgPool,
        &[&logits],
        "pool_final",
    ));
    let graph = Graph {
        nodes,
        input: "data".into(),
        output: "pool_final".into(),
    };
    let layers = shapes
        .into_iter()
        .map(|(name, shape)| {
            let nonzeros = shape.iter().product::<usize>() as u64 / 3;
            EncodedLayer {
                name,
                shape,
                bias: FloatVec::F32(vec![0.0; shape[0]]),
                weights: WeightStorage::SparseQuantized {
                    codebook: FloatVec::F32((1..=255).map(|i| i as f32 / 256.0).collect()),
                    positions: huffman_stream(nonzeros, vec![4; 16], 0x5A),
                    codes: huffman_stream(nonzeros, vec![8; 255], 0x96),
                },
            }
        })
        .collect();
    SqzFile {
        graph,
        preprocess: Preprocess::caffe(),
        layers,
    }
}

// ---------------------------------------------------------------------------
// Random valid files (for the property test).

impl SplitMix {
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn floats(&mut self, n: usize, half: bool) -> FloatVec {
        let mut value = || (self.next() % 20_001) as f32 / 100.0 - 100.0;
        match half {
            true => FloatVec::F16((0..n).map(|_| f16::from_f32(value())).collect()),
            false => FloatVec::F32((0..n).map(|_| value()).collect()),
        }
    }
    /// A valid stream of `count` symbols over `alphabet`, raw or Huffman.
    fn stream(&mut self, count: u64, alphabet: u32) -> Stream {
        if self.coin() {
            let symbols: Vec<u32> = (0..count)
                .map(|_| self.range(0, u64::from(alphabet) - 1) as u32)
                .collect();
            return raw_stream(&symbols, alphabet);
        }
        // A fixed-length code with some symbols absent (Kraft sum <= 1).
        let length = (1..=16).find(|&b| 1u32 << b >= alphabet).unwrap_or(1) as u8;
        let mut lengths: Vec<u8> = (0..alphabet)
            .map(|_| if self.coin() { length } else { 0 })
            .collect();
        lengths[self.range(0, u64::from(alphabet) - 1) as usize] = length;
        let fill = self.next() as u8;
        huffman_stream(count, lengths, fill)
    }
    fn name(&mut self, prefix: &str) -> String {
        let pieces = ["fire", "/", "conv", "é", "_", "1x1", "猫", "", "3"];
        let n = self.range(0, 3);
        let mut s = prefix.to_string();
        for _ in 0..n {
            s.push_str(pieces[self.range(0, pieces.len() as u64 - 1) as usize]);
        }
        s
    }
}

fn random_layer(rng: &mut SplitMix, name: String) -> EncodedLayer {
    let shape = [
        rng.range(1, 5),
        rng.range(1, 5),
        rng.range(1, 3),
        rng.range(1, 3),
    ]
    .map(|d| d as usize);
    let n: u64 = shape.iter().product::<usize>() as u64;
    let half = rng.coin();
    let bias_half = rng.coin();
    let bias = rng.floats(shape[0], bias_half);
    let positions = |rng: &mut SplitMix, entries: u64| {
        let alphabet = rng.range(2, 20) as u32;
        let skips = rng.range(0, (n - entries) / u64::from(alphabet - 1));
        rng.stream(entries + skips, alphabet)
    };
    let weights = match rng.range(0, 3) {
        0 => WeightStorage::Dense(rng.floats(n as usize, half)),
        1 => {
            let entries = rng.range(0, n);
            WeightStorage::Sparse {
                positions: positions(rng, entries),
                values: rng.floats(entries as usize, half),
            }
        }
        2 => {
            let size = rng.range(1, 12);
            WeightStorage::Quantized {
                codebook: rng.floats(size as usize, half),
                codes: rng.stream(n, size as u32),
            }
        }
        _ => {
            let size = rng.range(1, 12);
            let entries = rng.range(0, n);
            WeightStorage::SparseQuantized {
                codebook: rng.floats(size as usize, half),
                positions: positions(rng, entries),
                codes: rng.stream(entries, size as u32),
            }
        }
    };
    EncodedLayer {
        name,
        shape,
        bias,
        weights,
    }
}

fn random_op(rng: &mut SplitMix, layers: usize) -> Op {
    let small = |rng: &mut SplitMix| rng.range(1, 4) as usize;
    match rng.range(0, 8) {
        0 => Op::Conv(Conv {
            layer: rng.range(0, layers as u64 - 1) as usize,
            stride_h: small(rng),
            stride_w: small(rng),
            pad_h: small(rng) - 1,
            pad_w: small(rng) - 1,
            groups: 1,
            relu: rng.coin(),
        }),
        1 => Op::Relu,
        2 => Op::Pool(Pool {
            kind: if rng.coin() {
                PoolKind::Max
            } else {
                PoolKind::Avg
            },
            kernel_h: small(rng),
            kernel_w: small(rng),
            stride_h: small(rng),
            stride_w: small(rng),
            pad_h: small(rng) - 1,
            pad_w: small(rng) - 1,
            ceil_mode: rng.coin(),
            count_include_pad: true,
        }),
        3 => Op::GlobalAvgPool,
        4 => Op::Concat,
        5 => Op::Dropout,
        6 => Op::Add,
        7 => Op::Softmax,
        _ => Op::Flatten,
    }
}

fn random_file(seed: u64) -> SqzFile {
    let rng = &mut SplitMix(seed);
    let mut layers = Vec::new();
    for i in 0..rng.range(1, 6) {
        let name = rng.name(&format!("L{i}"));
        layers.push(random_layer(rng, name));
    }
    let input = rng.name("in");
    let mut blobs = vec![input.clone()];
    let mut nodes = Vec::new();
    for i in 0..rng.range(1, 12) {
        let op = random_op(rng, layers.len());
        let arity = if matches!(op, Op::Concat | Op::Add) {
            rng.range(1, 3)
        } else {
            1
        };
        // The previous output often, else any earlier blob.
        let mut pick = || match rng.coin() {
            true => blobs[blobs.len() - 1].clone(),
            false => blobs[rng.range(0, blobs.len() as u64 - 1) as usize].clone(),
        };
        let inputs: Vec<String> = (0..arity).map(|_| pick()).collect();
        let name = rng.name(&format!("n{i}"));
        let output = match rng.range(0, 3) {
            0 => rng.name(&format!("b{i}")),
            1 => inputs[0].clone(),
            2 => name.clone(),
            _ => format!("{}/{name}", inputs[0]),
        };
        nodes.push(Node {
            name,
            op,
            inputs,
            outputs: vec![output.clone()],
        });
        blobs.push(output);
    }
    let output = blobs[rng.range(0, blobs.len() as u64 - 1) as usize].clone();
    let preprocess = match rng.range(0, 2) {
        0 => Preprocess::torchvision(),
        1 => Preprocess::caffe(),
        _ => Preprocess {
            resize: Resize::Exact {
                width: rng.range(1, 5000) as u32,
                height: rng.range(1, 5000) as u32,
            },
            crop: rng.range(1, 5000) as u32,
            channel_order: ChannelOrder::Rgb,
            scale: 0.5,
            mean: [rng.range(0, 255) as f32, 1.5, -2.0],
            std: [rng.range(1, 255) as f32, 0.25, 3.0],
        },
    };
    SqzFile {
        graph: Graph {
            nodes,
            input,
            output,
        },
        preprocess,
        layers,
    }
}

// ---------------------------------------------------------------------------
// Assertions.

fn expect_invalid(file: &SqzFile, needle: &str) {
    assert!(
        file.validate().is_err(),
        "validate accepted a file that should fail with {needle:?}"
    );
    match read_sqz(&write_sqz(file)) {
        Err(FormatError::Invalid(message)) => {
            assert!(
                message.contains(needle),
                "message {message:?} does not mention {needle:?}"
            )
        }
        other => panic!("expected an invalid-file error mentioning {needle:?}, got {other:?}"),
    }
}

/// Reading `bytes` fails, quickly and within `max_heap` extra bytes.
fn expect_rejected_cheaply(bytes: &[u8], max_heap: usize) -> FormatError {
    let start = std::time::Instant::now();
    let (result, heap) = peak_heap(|| read_sqz(bytes));
    let error = result.expect_err("a lying file was accepted");
    assert!(heap <= max_heap, "rejecting {error} used {heap} heap bytes");
    assert!(
        start.elapsed().as_secs_f64() < 2.0,
        "rejecting {error} took {:?}",
        start.elapsed()
    );
    error
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn writer_matches_the_byte_layout_of_the_spec() {
    assert_eq!(tiny_file().validate().ok(), Some(()));
    assert_eq!(write_sqz(&tiny_file()), tiny_file_bytes());
    assert_eq!(
        read_sqz(&tiny_file_bytes()).expect("the spec's example reads"),
        tiny_file()
    );
}

#[test]
fn delta_code_length_tables_match_the_spec() {
    // 16 symbols of length 4: fixed width takes 16 x 3 bits = 6 bytes,
    // gamma-coded deltas 7 + 15 x 1 bits = 3 bytes, so the writer picks
    // deltas. First delta 4 -> zigzag 8 -> gamma(9) = 0001001; then fifteen
    // zero deltas -> gamma(1) = 1 each; two zero padding bits.
    let mut file = tiny_file();
    file.layers[0] = EncodedLayer {
        name: "conv".into(),
        shape: [2, 1, 4, 2],
        bias: FloatVec::F32(vec![0.0, 0.0]),
        weights: WeightStorage::Quantized {
            codebook: FloatVec::F32((0..16).map(|i| i as f32).collect()),
            codes: huffman_stream(16, vec![4; 16], 0x77),
        },
    };
    let bytes = write_sqz(&file);
    let expected_stream = [
        &[16u8, 16, 0xC0, 0b0001_0011, 0xFF, 0b1111_1100, 8][..],
        &[0x77; 8],
    ]
    .concat();
    assert!(
        bytes.ends_with(&expected_stream),
        "the code stream is not laid out as SQZ.md says"
    );
    assert_eq!(read_sqz(&bytes).expect("reads back"), file);
}

#[test]
fn every_storage_kind_float_width_op_and_preprocess_round_trips() {
    let exact_rgb = Preprocess {
        resize: Resize::Exact {
            width: 300,
            height: 200,
        },
        channel_order: ChannelOrder::Rgb,
        ..Preprocess::caffe()
    };
    for preprocess in [Preprocess::torchvision(), Preprocess::caffe(), exact_rgb] {
        let file = file_of_every_kind(preprocess);
        file.validate().expect("the test file is valid");
        let bytes = write_sqz(&file);
        assert_eq!(read_sqz(&bytes).expect("a written file reads back"), file);
        assert_eq!(write_sqz(&file), bytes, "writing is deterministic");
    }
}

/// `graph_of_every_op` with the version-2 features: a grouped convolution,
/// average pooling that ignores padding, LRN and Clip.
fn graph_of_version_2() -> Graph {
    let mut graph = graph_of_every_op();
    for node in &mut graph.nodes {
        match &mut node.op {
            Op::Conv(c) if node.name == "c1" => c.groups = 2,
            Op::Pool(p) if p.kind == PoolKind::Avg => p.count_include_pad = false,
            Op::Relu => node.op = Op::Clip(Clip { min: 0.0, max: 6.0 }),
            Op::Dropout => {
                node.op = Op::Lrn(Lrn {
                    size: 5,
                    alpha: 1e-4,
                    beta: 0.75,
                    bias: 1.0,
                })
            }
            _ => {}
        }
    }
    graph
}

#[test]
fn version_2_operations_round_trip_and_only_they_raise_the_version() {
    let v1 = file_of_every_kind(Preprocess::caffe());
    assert_eq!(
        write_sqz(&v1)[4..6],
        [1, 0],
        "a version-1 graph is written as version 1"
    );
    let v2 = SqzFile {
        graph: graph_of_version_2(),
        ..v1
    };
    let bytes = write_sqz(&v2);
    assert_eq!(bytes[4..6], [2, 0]);
    assert_eq!(read_sqz(&bytes).expect("a version-2 file reads back"), v2);
    // The same bytes labelled version 1 use flags and tags version 1 lacks.
    let mut relabelled = bytes.clone();
    relabelled[4..6].copy_from_slice(&1u16.to_le_bytes());
    let header_crc = crc32fast::hash(&relabelled[..16]);
    relabelled[16..20].copy_from_slice(&header_crc.to_le_bytes());
    match read_sqz(&relabelled) {
        Err(FormatError::Invalid(m)) => assert!(m.contains("unknown"), "{m}"),
        other => panic!("a version-1 file with version-2 content gave {other:?}"),
    }
}

#[test]
fn size_breakdown_adds_up_to_the_file_length() {
    for file in [
        file_of_every_kind(Preprocess::caffe()),
        tiny_file(),
        squeezenet_v10(),
    ] {
        let sizes = size_breakdown(&file);
        assert_eq!(sizes.total(), write_sqz(&file).len());
        assert_eq!(sizes.layers.len(), file.layers.len());
        for (bytes, layer) in sizes.layers.iter().zip(&file.layers) {
            assert_eq!(bytes.name, layer.name);
            let (values, positions, codes) = match &layer.weights {
                WeightStorage::Dense(v) => (v, None, None),
                WeightStorage::Sparse { positions, values } => (values, Some(positions), None),
                WeightStorage::Quantized { codebook, codes } => (codebook, None, Some(codes)),
                WeightStorage::SparseQuantized {
                    codebook,
                    positions,
                    codes,
                } => (codebook, Some(positions), Some(codes)),
            };
            // Each float vector is its count varint plus its stored values.
            assert_eq!(
                bytes.bias,
                varint_bytes(layer.bias.len() as u64).len() + layer.bias.stored_bytes()
            );
            assert_eq!(
                bytes.values,
                varint_bytes(values.len() as u64).len() + values.stored_bytes()
            );
            assert_eq!(
                bytes.positions,
                positions.map(Stream::stored_bytes).unwrap_or_default()
            );
            assert_eq!(
                bytes.codes,
                codes.map(Stream::stored_bytes).unwrap_or_default()
            );
            assert_eq!(
                bytes.positions.payload,
                positions.map_or(0, |s| s.payload.len())
            );
            assert_eq!(bytes.codes.payload, codes.map_or(0, |s| s.payload.len()));
        }
    }
}

#[test]
fn squeezenet_graph_overhead() {
    let file = squeezenet_v10();
    // The shapes follow the prototxt; the release's README gives the count.
    let parameters: usize = file
        .layers
        .iter()
        .map(|l| l.shape.iter().product::<usize>() + l.shape[0])
        .sum();
    assert_eq!((file.layers.len(), parameters), (26, 1_248_424));
    file.validate().expect("the SqueezeNet file is valid");
    let bytes = write_sqz(&file);
    assert_eq!(read_sqz(&bytes).expect("reads back"), file);
    let sizes = size_breakdown(&file);
    let layer_headers: usize = sizes.layers.iter().map(|l| l.header).sum();
    println!(
        "SqueezeNet v1.0 ({} nodes): container {} B, string table {} B, graph {} B, preprocess {} B, \
         layer headers (directory entry, name, shape, flags) {} B",
        file.graph.nodes.len(),
        sizes.container,
        sizes.strings,
        sizes.graph,
        sizes.preprocess,
        layer_headers,
    );
    // The brief's budget: the model section (names, graph, preprocessing)
    // of a 26-layer network costs at most about a kilobyte.
    assert!(sizes.strings + sizes.graph + sizes.preprocess < 1024);
}

#[test]
fn every_single_bit_flip_is_detected() {
    let bytes = write_sqz(&file_of_every_kind(Preprocess::torchvision()));
    for bit in 0..bytes.len() * 8 {
        let mut corrupt = bytes.clone();
        corrupt[bit / 8] ^= 1 << (bit % 8);
        match read_sqz(&corrupt) {
            Err(FormatError::Invalid(_)) if bit < 32 => {} // magic
            Err(FormatError::Unsupported(_)) if bit < 48 => {} // version
            Err(FormatError::Checksum(_)) => {}
            other => panic!("flipping bit {bit} gave {other:?}"),
        }
    }
}

#[test]
fn checksum_errors_name_the_section() {
    let file = file_of_every_kind(Preprocess::caffe());
    let mut bytes = write_sqz(&file);
    let sizes = size_breakdown(&file);
    // The last layer's body ends the file.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x10;
    let expected = format!(
        "section {} (layer {})",
        sizes.layers.len(),
        sizes.layers.len() - 1
    );
    match read_sqz(&bytes) {
        Err(FormatError::Checksum(section)) => assert_eq!(section, expected),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    let mut bytes = write_sqz(&file);
    bytes[17] ^= 1;
    assert!(matches!(read_sqz(&bytes), Err(FormatError::Checksum(s)) if s == "header"));
}

#[test]
fn truncation_at_every_length_is_rejected() {
    let bytes = write_sqz(&file_of_every_kind(Preprocess::torchvision()));
    for len in 0..bytes.len() {
        match read_sqz(&bytes[..len]) {
            Err(FormatError::Truncated(_)) => {}
            other => panic!(
                "truncating to {len} of {} bytes gave {other:?}",
                bytes.len()
            ),
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = write_sqz(&tiny_file());
    bytes.push(0);
    assert!(matches!(read_sqz(&bytes), Err(FormatError::Invalid(m)) if m.contains("trailing")));
}

#[test]
fn wrong_magic_and_unknown_versions_are_rejected() {
    let bytes = write_sqz(&tiny_file());
    let mut wrong_magic = bytes.clone();
    wrong_magic[..4].copy_from_slice(b"\x89PNG");
    assert!(matches!(read_sqz(&wrong_magic), Err(FormatError::Invalid(m)) if m.contains("magic")));
    for version in [0u16, 3, 513] {
        let mut other = bytes.clone();
        other[4..6].copy_from_slice(&version.to_le_bytes());
        match read_sqz(&other) {
            Err(FormatError::Unsupported(m)) => {
                assert!(m.contains(&format!("version {version}")), "{m}")
            }
            result => panic!("version {version} gave {result:?}"),
        }
    }
    let mut flags = bytes.clone();
    flags[6] = 1;
    let header_crc = crc32fast::hash(&flags[..16]);
    flags[16..20].copy_from_slice(&header_crc.to_le_bytes());
    assert!(matches!(read_sqz(&flags), Err(FormatError::Unsupported(m)) if m.contains("flags")));
}

/// A file of the tiny model section and the layer body `prefix` + `tail`.
fn layer_with(prefix: &[u8], tail: &[u8]) -> Vec<u8> {
    frame(&[(1, tiny_model_body()), (2, [prefix, tail].concat())])
}

#[test]
fn lying_layer_headers_are_rejected_without_large_allocations() {
    const SMALL: usize = 1 << 20;
    let huge = |v: u64| varint_bytes(v);
    // 2^20 x 2^20 x 1 x 1 = 2^40 weights, stored dense with no values.
    let shape_2_40 = [&[0u8][..], &huge(1 << 20), &huge(1 << 20), &[1, 1, 0, 0, 0]].concat();
    let e = expect_rejected_cheaply(&layer_with(&shape_2_40, &[]), SMALL);
    assert!(
        matches!(&e, FormatError::Invalid(m) if m.contains("weights")),
        "{e}"
    );
    // A dense layer announcing 2^60 float32 values.
    let dense_lie = [&[0u8, 2, 3, 1, 1, 0, 2][..], &[0; 8], &huge(1 << 60)].concat();
    let e = expect_rejected_cheaply(&layer_with(&dense_lie, &[0; 16]), SMALL);
    assert!(matches!(e, FormatError::Truncated(_)), "{e}");
    // The reference layer with its 5-byte position stream (at 20..25)
    // replaced by lying ones.
    let body = tiny_layer_body();
    let (head, codes) = (&body[..20], &body[25..]);
    let lies = [
        // 2^40 raw positions in one payload byte.
        [&huge(1 << 40)[..], &[4, 2, 1, 0x60]].concat(),
        // Alphabet 2^32 - 1 with a 0-bit code length table.
        [&[2][..], &huge(u32::MAX.into()), &[0x80, 1, 0x60]].concat(),
        // A 2^62-byte payload.
        [&[2, 4, 2][..], &huge(1 << 62), &[0x60]].concat(),
        // 2^50 Huffman symbols over 65536 symbols that all lack a code.
        [&huge(1 << 50)[..], &huge(65536), &[0x80, 1, 0]].concat(),
    ];
    for (stream, truncated) in lies.iter().zip([false, false, true, false]) {
        let e = expect_rejected_cheaply(&layer_with(head, &[&stream[..], codes].concat()), SMALL);
        assert_eq!(matches!(e, FormatError::Truncated(_)), truncated, "{e}");
        assert!(
            matches!(e, FormatError::Truncated(_) | FormatError::Invalid(_)),
            "{e}"
        );
    }
    // Non-canonical varints and a varint past 64 bits.
    for bad in [&[0x82, 0x00][..], &[0xFF; 10], &[0xFF; 11]] {
        let e =
            expect_rejected_cheaply(&layer_with(&[0], &[bad, &[3, 1, 1, 0x0B]].concat()), SMALL);
        assert!(matches!(e, FormatError::Invalid(_)), "{e}");
    }
}

#[test]
fn lying_container_and_graph_headers_are_rejected_without_large_allocations() {
    const SMALL: usize = 1 << 20;
    let huge = |v: u64| varint_bytes(v);
    let layer = tiny_layer_body();
    let model = tiny_model_body();
    // Section count 2^40.
    let mut bytes = frame(&[(1, model.clone()), (2, layer.clone())]);
    let directory = [huge(1 << 40), vec![1, 0, 0, 0, 0, 0]].concat();
    let mut header = bytes[..8].to_vec();
    header.extend((directory.len() as u32).to_le_bytes());
    header.extend(crc32fast::hash(&directory).to_le_bytes());
    let header_crc = crc32fast::hash(&header);
    header.extend(header_crc.to_le_bytes());
    let e = expect_rejected_cheaply(&[header, directory].concat(), SMALL);
    assert!(
        matches!(&e, FormatError::Invalid(m) if m.contains("section count")),
        "{e}"
    );
    // Directory length 2^32 - 1.
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let header_crc = crc32fast::hash(&bytes[..16]);
    bytes[16..20].copy_from_slice(&header_crc.to_le_bytes());
    assert!(matches!(
        expect_rejected_cheaply(&bytes, SMALL),
        FormatError::Truncated(_)
    ));
    // A section announcing 2^62 bytes.
    let directory = [
        vec![1, 1],
        huge(1 << 62),
        crc32fast::hash(&model).to_le_bytes().to_vec(),
    ]
    .concat();
    let mut lying = tiny_file_bytes()[..8].to_vec();
    lying.extend((directory.len() as u32).to_le_bytes());
    lying.extend(crc32fast::hash(&directory).to_le_bytes());
    let header_crc = crc32fast::hash(&lying);
    lying.extend(header_crc.to_le_bytes());
    lying.extend(directory);
    lying.extend(&model);
    assert!(matches!(
        expect_rejected_cheaply(&lying, SMALL),
        FormatError::Truncated(_)
    ));
    // 2^62 strings; 2^40 nodes; a node with 2^40 inputs.
    let (strings, node, preprocess) = (tiny_strings(), tiny_node(), caffe_preprocess());
    let graph_lies = [
        [huge(1 << 62), model[1..].to_vec()].concat(),
        [&strings[..], &[1, 2], &huge(1 << 40), &node, &preprocess].concat(),
        [
            &strings[..],
            &[1, 2, 1, 0, 0],
            &huge(1 << 40),
            &node[2..],
            &preprocess,
        ]
        .concat(),
    ];
    for body in graph_lies {
        let e = expect_rejected_cheaply(&frame(&[(1, body), (2, layer.clone())]), SMALL);
        assert!(
            matches!(e, FormatError::Truncated(_) | FormatError::Invalid(_)),
            "{e}"
        );
    }
}

#[test]
fn repeated_long_names_cannot_expand_without_bound() {
    // One 1024-byte name referenced by a Concat of 20,000 inputs: 20 MB of
    // names from a 20 kB file.
    let name = vec![b'a'; 1024];
    let mut body = vec![1, 0];
    body.extend(varint_bytes(1024));
    body.extend(&name);
    body.extend([0, 0, 1, 4, 0]); // input, output = the name; one Concat node named it
    body.extend(varint_bytes(20_000));
    body.extend(vec![0; 20_000]);
    body.extend([1, 0]);
    body.extend(caffe_preprocess());
    let e = expect_rejected_cheaply(&frame(&[(1, body)]), 2 * MAX_TEXT_BYTES + (1 << 20));
    assert!(
        matches!(&e, FormatError::Invalid(m) if m.contains("names")),
        "{e}"
    );
}

/// The position stream of a sparse layer.
fn positions_of(layer: &mut EncodedLayer) -> &mut Stream {
    match &mut layer.weights {
        WeightStorage::Sparse { positions, .. }
        | WeightStorage::SparseQuantized { positions, .. } => positions,
        _ => panic!("layer {} is not sparse", layer.name),
    }
}

/// The code stream of a quantized layer.
fn codes_of(layer: &mut EncodedLayer) -> &mut Stream {
    match &mut layer.weights {
        WeightStorage::Quantized { codes, .. } | WeightStorage::SparseQuantized { codes, .. } => {
            codes
        }
        _ => panic!("layer {} is not quantized", layer.name),
    }
}

#[test]
fn inconsistent_files_are_rejected() {
    let base = file_of_every_kind(Preprocess::caffe());
    let with_layer = |index: usize, edit: &dyn Fn(&mut EncodedLayer)| {
        let mut file = base.clone();
        edit(&mut file.layers[index]);
        file
    };
    let huffman = |lengths: &[u8]| StreamCoding::Huffman {
        code_lengths: lengths.to_vec(),
    };
    // Layer indices: 0 dense32, 1 dense16, 2 sparse (24 weights, 3
    // entries, raw gaps over 4), 3 quant (36 codes, Huffman over 3),
    // 4 sparse_quant (5 raw 2-bit codes over 3), 5 empty_sparse.
    expect_invalid(
        &with_layer(0, &|l| l.bias = FloatVec::F32(vec![1.0])),
        "biases",
    );
    expect_invalid(&with_layer(1, &|l| l.shape = [1, 4, 1, 1]), "dense weights");
    expect_invalid(&with_layer(1, &|l| l.shape = [1, 3, 0, 1]), "shape");
    expect_invalid(
        &with_layer(3, &|l| {
            if let WeightStorage::Quantized { codebook, .. } = &mut l.weights {
                *codebook = FloatVec::F32(vec![1.0; 4]);
            }
        }),
        "codebook",
    );
    expect_invalid(&with_layer(3, &|l| codes_of(l).count = 35), "codes");
    expect_invalid(
        &with_layer(4, &|l| codes_of(l).coding = StreamCoding::Raw { bits: 3 }),
        "raw symbols",
    );
    expect_invalid(&with_layer(4, &|l| codes_of(l).payload.push(0)), "payload");
    expect_invalid(&with_layer(4, &|l| codes_of(l).payload[1] |= 1), "padding");
    expect_invalid(
        &with_layer(3, &|l| codes_of(l).coding = huffman(&[1, 2])),
        "code length",
    );
    expect_invalid(
        &with_layer(3, &|l| codes_of(l).coding = huffman(&[1, 1, 2])),
        "Kraft",
    );
    expect_invalid(
        &with_layer(3, &|l| codes_of(l).coding = huffman(&[25, 1, 2])),
        "exceeds",
    );
    expect_invalid(
        &with_layer(3, &|l| codes_of(l).payload.truncate(4)),
        "payload",
    );
    // 24 weights, 3 entries, alphabet 4: at most (24 - 3) / 3 = 7 skips.
    expect_invalid(
        &with_layer(2, &|l| *positions_of(l) = raw_stream(&[3; 11], 4)),
        "position symbols",
    );
    expect_invalid(
        &with_layer(2, &|l| *positions_of(l) = raw_stream(&[0, 1], 4)),
        "position symbols",
    );
    expect_invalid(
        &with_layer(2, &|l| *positions_of(l) = raw_stream(&[0, 0, 0], 1)),
        "below 2",
    );
    expect_invalid(&with_layer(5, &|l| l.name = "dense32".into()), "two layers");
    let mut missing_layer = base.clone();
    missing_layer.layers.pop();
    expect_invalid(&missing_layer, "missing layer");
    let mut bad_preprocess = base.clone();
    bad_preprocess.preprocess.std[1] = 0.0;
    expect_invalid(&bad_preprocess, "std");
    let mut bad_pool = base.clone();
    bad_pool.graph.nodes[2].op = pool_op(PoolKind::Max, 70_000, 1, 0, false);
    expect_invalid(&bad_pool, "exceeds");
    let mut long_name = base;
    long_name.layers[0].name = "x".repeat(2000);
    expect_invalid(&long_name, "name");
}

#[test]
fn seeded_random_files_round_trip() {
    for seed in 0..300 {
        let file = random_file(seed);
        file.validate()
            .unwrap_or_else(|e| panic!("seed {seed} made an invalid file: {e}"));
        let bytes = write_sqz(&file);
        assert_eq!(
            read_sqz(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}")),
            file,
            "seed {seed}"
        );
    }
}

proptest! {
    #[test]
    fn any_valid_file_round_trips(seed in any::<u64>()) {
        let file = random_file(seed);
        prop_assert!(file.validate().is_ok());
        let bytes = write_sqz(&file);
        prop_assert_eq!(size_breakdown(&file).total(), bytes.len());
        prop_assert_eq!(read_sqz(&bytes).ok(), Some(file));
    }

    #[test]
    fn corrupt_bodies_with_valid_checksums_never_panic(seed in any::<u64>(), at in any::<usize>(), flip in 1u8..) {
        // Checksums stop random corruption at the door; this reaches the
        // parsers behind them by fixing the checksums up.
        let file = random_file(seed);
        let mut bodies = sections(&write_sqz(&file));
        prop_assert_eq!(frame(&bodies), write_sqz(&file));
        let total: usize = bodies.iter().map(|(_, b)| b.len()).sum();
        let mut at = at % total;
        for (_, body) in &mut bodies {
            if at < body.len() {
                body[at] ^= flip;
                break;
            }
            at -= body.len();
        }
        if let Ok(decoded) = read_sqz(&frame(&bodies)) {
            prop_assert!(decoded.validate().is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..400) {
        // Valid framing around garbage bodies, and garbage after a valid
        // prefix: the reader must return an error, never panic.
        let garbage = frame(&[(1, tail.clone()), (2, tail.clone())]);
        prop_assert!(read_sqz(&garbage).is_err());
        let mut spliced = tiny_file_bytes();
        spliced.truncate(cut.min(spliced.len()));
        spliced.extend(&tail);
        let _ = read_sqz(&spliced);
    }
}
