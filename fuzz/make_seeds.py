#!/usr/bin/env python3
"""Writes the small hand-made seed corpus of every fuzz target into
seeds/<target>/ (no real model is copied). Run from fuzz/: python3 make_seeds.py
The .sqz seed is made by the CLI from the tiny ncnn model (see README.md)."""
import os
import struct

def put(target, name, data):
    os.makedirs(f"seeds/{target}", exist_ok=True)
    with open(f"seeds/{target}/{name}", "wb") as f:
        f.write(data)

def f32(values):
    return b"".join(struct.pack("<f", v) for v in values)

# --- ncnn: input 1x3x4x4 -> conv 2x3x3x3 (ReLU) -> max pool -> conv 4x2x1x1 -> global avg pool
NCNN_PARAM = """7767517
6 6
Input in0 0 1 in0
Convolution conv0 1 1 in0 c0 0=2 1=3 11=3 3=1 4=1 5=1 6=54 9=1
Pooling pool0 1 1 c0 p0 0=0 1=2 2=2 5=0
Convolution conv1 1 1 p0 c1 0=4 1=1 11=1 3=1 4=0 5=1 6=8
Pooling gap 1 1 c1 g0 0=1 4=1
Flatten flat 1 1 g0 out0
"""
w0 = [((i * 7) % 11 - 5) / 8 for i in range(54)]
w1 = [((i * 5) % 9 - 4) / 4 for i in range(8)]
NCNN_BIN = (struct.pack("<I", 0) + f32(w0) + f32([0.5, -0.25])
            + struct.pack("<I", 0) + f32(w1) + f32([0.0, 1.0, -1.0, 2.0]))
os.makedirs("seeds/models", exist_ok=True)
open("seeds/models/tiny.ncnn.param", "w").write(NCNN_PARAM)
open("seeds/models/tiny.ncnn.bin", "wb").write(NCNN_BIN)
put("ncnn_reader", "tiny_fp32", NCNN_PARAM.encode() + b"\0" + NCNN_BIN)
fp16 = struct.pack("<I", 0x01306B47) + b"".join(struct.pack("<e", v) for v in w0)
put("ncnn_reader", "tiny_fp16", NCNN_PARAM.encode() + b"\0" + fp16 + f32([0.5, -0.25])
    + struct.pack("<I", 0) + f32(w1) + f32([0.0, 1.0, -1.0, 2.0]))

# --- Caffe prototxt shared by the .net and .caffemodel seeds
PROTOTXT = """name: "tiny"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 8
input_dim: 8
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 2 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "prob" type: "Softmax" bottom: "pool2" top: "prob" }
"""
# conv1: 2*3*3*3 = 54 weights, conv2: 3*2 = 6 weights.

# --- Deep Compression .net: nnz per layer, then codebook[256], bias, codes, 4-bit gaps
def net_layer(codebook, bias, entries):
    """entries: (gap, code) pairs; gaps packed two per byte, low nibble first."""
    codes = bytes(c for _, c in entries)
    gaps = [g for g, _ in entries] + [0] * (len(entries) % 2)
    packed = bytes(gaps[i] | (gaps[i + 1] << 4) for i in range(0, len(gaps), 2))
    return f32(codebook + [0.0] * (256 - len(codebook))) + f32(bias) + codes + packed
l1 = [(0, 1), (3, 2), (15, 0), (2, 3), (0, 1)]
l2 = [(1, 2), (0, 1), (2, 3)]
NET = struct.pack("<2I", len(l1), len(l2)) + net_layer([0.0, 0.5, -0.5, 1.0], [0.1, -0.1], l1) \
    + net_layer([0.0, 2.0, -1.0, 0.25], [0.0, 0.5, 1.0], l2)
put("deep_compression_reader", "tiny", PROTOTXT.encode() + b"\0" + NET)
os.makedirs("seeds/models/net", exist_ok=True)
open("seeds/models/net/tiny.prototxt", "w").write(PROTOTXT)
open("seeds/models/net/tiny.net", "wb").write(NET)

# --- protobuf wire encoding for the ONNX and .caffemodel seeds
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
def key(field, wire):
    return varint(field << 3 | wire)
def vint(field, n):
    return key(field, 0) + varint(n & 0xFFFFFFFFFFFFFFFF)
def ld(field, data):
    data = data.encode() if isinstance(data, str) else data
    return key(field, 2) + varint(len(data)) + data
def packed_ints(field, values):
    return ld(field, b"".join(varint(v & 0xFFFFFFFFFFFFFFFF) for v in values))

# .caffemodel: NetParameter{name=1, layer=100 LayerParameter{name=1, type=2, blobs=7 BlobProto{
#   data=5 packed float, shape=7 BlobShape{dim=1 packed int64}}}}
def blob(shape, values):
    return ld(5, f32(values)) + ld(7, packed_ints(1, shape))
wc1 = [((i * 3) % 7 - 3) / 4 for i in range(54)]
wc2 = [((i * 5) % 7 - 3) / 2 for i in range(6)]
CAFFEMODEL = ld(1, "tiny") \
    + ld(100, ld(1, "conv1") + ld(2, "Convolution") + ld(7, blob([2, 3, 3, 3], wc1)) + ld(7, blob([2], [0.5, -0.5]))) \
    + ld(100, ld(1, "conv2") + ld(2, "Convolution") + ld(7, blob([3, 2, 1, 1], wc2)) + ld(7, blob([3], [0.0, 1.0, 2.0])))
put("caffemodel_reader", "tiny", PROTOTXT.encode() + b"\0" + CAFFEMODEL)
open("seeds/models/net/tiny.caffemodel", "wb").write(CAFFEMODEL)

# ONNX: ModelProto{ir_version=1, graph=7, opset_import=8{version=2}}; GraphProto{node=1,
# name=2, initializer=5, input=11, output=12}; NodeProto{input=1, output=2, name=3, op_type=4,
# attribute=5}; AttributeProto{name=1, i=3, ints=8, type=20}; TensorProto{dims=1, data_type=2,
# name=8, raw_data=9}; ValueInfoProto{name=1, type=2{tensor_type=1{elem_type=1, shape=2{dim=1{dim_value=1}}}}}
def tensor(name, dims, values):
    return b"".join(vint(1, d) for d in dims) + vint(2, 1) + ld(8, name) + ld(9, f32(values))
def value_info(name, dims):
    shape = b"".join(ld(1, vint(1, d)) for d in dims)
    return ld(1, name) + ld(2, ld(1, vint(1, 1) + ld(2, shape)))
def node(op, inputs, outputs, name, attrs=b""):
    return b"".join(ld(1, i) for i in inputs) + b"".join(ld(2, o) for o in outputs) + ld(3, name) + ld(4, op) + attrs
def ints_attr(name, values):
    return ld(5, ld(1, name) + b"".join(vint(8, v) for v in values) + vint(20, 7))
GRAPH = ld(1, node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], "conv",
                   ints_attr("kernel_shape", [3, 3]) + ints_attr("pads", [1, 1, 1, 1]) + ints_attr("strides", [1, 1]))) \
    + ld(1, node("Relu", ["c"], ["r"], "relu")) \
    + ld(1, node("MaxPool", ["r"], ["p"], "pool", ints_attr("kernel_shape", [2, 2]) + ints_attr("strides", [2, 2]))) \
    + ld(1, node("GlobalAveragePool", ["p"], ["g"], "gap")) \
    + ld(1, node("Flatten", ["g"], ["y"], "flat")) \
    + ld(2, "tiny") \
    + ld(5, tensor("conv.weight", [2, 3, 3, 3], w0)) + ld(5, tensor("conv.bias", [2], [0.5, -0.25])) \
    + ld(11, value_info("x", [1, 3, 8, 8])) + ld(12, value_info("y", [1, 2]))
ONNX = vint(1, 7) + ld(7, GRAPH) + ld(8, vint(2, 13))
put("onnx_reader", "tiny", ONNX)
open("seeds/models/tiny.onnx", "wb").write(ONNX)

# --- coded streams (layout in targets.rs): kind, alphabet u16, count u16, then
# raw: bit width + payload; Huffman: one code length per symbol + payload.
put("huffman_decode", "raw2", bytes([0]) + struct.pack("<HH", 4, 6) + bytes([2, 0b00011011, 0b11000000]))
put("huffman_decode", "huffman4", bytes([1]) + struct.pack("<HH", 4, 5) + bytes([1, 2, 3, 3]) + bytes([0b01011011, 0b10000000]))
put("huffman_decode", "huffman_empty", bytes([1]) + struct.pack("<HH", 3, 0) + bytes([0, 0, 0]))
# gap streams: same header, then the layer length as a trailing LE u32.
put("gap_decode", "raw_gaps", bytes([0]) + struct.pack("<HH", 4, 5) + bytes([2, 0b00111100, 0b01000000]) + struct.pack("<I", 20))
put("gap_decode", "huffman_gaps", bytes([1]) + struct.pack("<HH", 4, 4) + bytes([1, 2, 3, 3]) + bytes([0b01011000]) + struct.pack("<I", 9))
