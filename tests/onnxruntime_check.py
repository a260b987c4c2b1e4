#!/usr/bin/env python3
"""Run an ONNX model in onnxruntime and compare its output to given logits.

Usage: onnxruntime_check.py MODEL.onnx INPUT.f32 N C H W LOGITS.f32

INPUT.f32 holds the N x C x H x W input batch and LOGITS.f32 the expected
outputs (N x classes), both raw little-endian float32. Prints the names of
the model's input and output and the output's shape, then the largest
absolute difference between onnxruntime's output and LOGITS.f32 and exits
with status 1 if it exceeds 1e-3 (2 for bad arguments or sizes).

Needs the `onnxruntime` and `numpy` packages: `.ci/install-test-deps` makes
a virtual environment with them and prints its Python.
The session runs single-threaded with graph optimizations off, so the
result does not depend on the machine's core count.
"""

import sys

TOLERANCE = 1e-3


def fail(message):
    print(f"onnxruntime_check: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
    import onnxruntime as ort
except ImportError as error:
    fail(f"{error} in {sys.executable}; run .ci/install-test-deps and use the Python it prints")


def main(argv):
    if len(argv) != 8:
        fail("usage: onnxruntime_check.py MODEL.onnx INPUT.f32 N C H W LOGITS.f32")
    model, input_path, *dims, logits_path = argv[1:]
    try:
        shape = [int(d) for d in dims]
    except ValueError:
        fail(f"N C H W must be integers, got {' '.join(dims)}")
    inputs = np.fromfile(input_path, dtype="<f4")
    if inputs.size != np.prod(shape):
        fail(f"{input_path} holds {inputs.size} floats, not {'x'.join(dims)}")
    expected = np.fromfile(logits_path, dtype="<f4")

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (raw,) = session.run([session.get_outputs()[0].name], {name: inputs.reshape(shape)})
    output = raw.astype(np.float32).ravel()
    if output.size != expected.size:
        fail(f"the model gives {output.size} values, {logits_path} holds {expected.size}")

    difference = float(np.max(np.abs(output - expected)))
    print(f"input {name}, output {session.get_outputs()[0].name} of shape {list(raw.shape)}")
    print(f"max abs difference: {difference:.3g}")
    return 0 if difference <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
