#!/usr/bin/env python3
"""Run an ONNX model in onnxruntime and compare its output to given logits.

Usage: onnxruntime_check.py [--relative TOL] [--top1] [--blob NAME]
                            MODEL.onnx INPUT.f32 N C H W LOGITS.f32

INPUT.f32 holds the N x C x H x W input batch and LOGITS.f32 the expected
outputs (N x classes), both raw little-endian float32. Prints the names of
the model's input and output and the output's shape, then the largest
absolute difference between onnxruntime's output and LOGITS.f32 and exits
with status 1 if it exceeds 1e-3 (2 for bad arguments or sizes).

--relative TOL compares instead the largest absolute difference divided by
the largest absolute value of onnxruntime's output with TOL. --top1 also
requires the highest value of each image to be at the same class.
--blob NAME compares the intermediate tensor NAME instead of the model's
output (it is made an extra output, which needs the `onnx` package), e.g.
the logits before a final Softmax; the names printed stay the model's.

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


def parse(argv):
    """Options and the seven positional arguments."""
    options = {"relative": None, "top1": False, "blob": None}
    args = list(argv[1:])
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag == "--top1":
            options["top1"] = True
        elif flag in ("--relative", "--blob") and args:
            value = args.pop(0)
            options[flag[2:]] = value
        else:
            fail(f"unknown option or missing value: {flag}")
    if len(args) != 7:
        fail(
            "usage: onnxruntime_check.py [--relative TOL] [--top1] [--blob NAME] "
            "MODEL.onnx INPUT.f32 N C H W LOGITS.f32"
        )
    if options["relative"] is not None:
        try:
            options["relative"] = float(options["relative"])
        except ValueError:
            fail(f"--relative needs a number, got {options['relative']}")
    return options, args


def session_for(model, blob):
    """An onnxruntime session of MODEL, with BLOB as an extra last output."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model
    if blob is not None:
        try:
            import onnx
        except ImportError as error:
            fail(f"--blob needs the onnx package: {error}")
        proto = onnx.load(model)
        if blob not in [o.name for o in proto.graph.output]:
            proto.graph.output.append(onnx.ValueInfoProto(name=blob))
        source = proto.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def main(argv):
    options, args = parse(argv)
    model, input_path, *dims, logits_path = args
    try:
        shape = [int(d) for d in dims]
    except ValueError:
        fail(f"N C H W must be integers, got {' '.join(dims)}")
    inputs = np.fromfile(input_path, dtype="<f4")
    if inputs.size != np.prod(shape):
        fail(f"{input_path} holds {inputs.size} floats, not {'x'.join(dims)}")
    expected = np.fromfile(logits_path, dtype="<f4")

    session = session_for(model, options["blob"])
    name = session.get_inputs()[0].name
    outputs = [o.name for o in session.get_outputs()]
    results = session.run(outputs, {name: inputs.reshape(shape)})
    raw = results[0]
    blob = options["blob"]
    compared = results[outputs.index(blob) if blob else 0]
    compared = compared.astype(np.float32).reshape(shape[0], -1)
    if compared.size != expected.size:
        fail(f"the model gives {compared.size} values, {logits_path} holds {expected.size}")
    expected = expected.reshape(shape[0], -1)

    difference = float(np.max(np.abs(compared - expected)))
    print(f"input {name}, output {outputs[0]} of shape {list(raw.shape)}")
    print(f"max abs difference: {difference:.3g}")
    ok = difference <= TOLERANCE
    if options["relative"] is not None:
        relative = difference / max(float(np.max(np.abs(compared))), 1e-30)
        print(f"relative difference: {relative:.3g}")
        ok = relative <= options["relative"]
    if options["top1"]:
        agree = np.argmax(compared, axis=1) == np.argmax(expected, axis=1)
        print(f"top-1 agreement: {int(agree.sum())}/{agree.size}")
        ok = ok and bool(agree.all())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
