#!/usr/bin/env python3
"""Check an sqz safetensors export the way a PyTorch job would read it.

Usage: safetensors_check.py WEIGHTS.safetensors EXPECTED.f32 [SCALE OUT.safetensors]

Loads WEIGHTS with `safetensors.numpy.load_file`, rebuilds every layer's
dense weights from `<layer>.mask`, `<layer>.codes` and
`<layer>.shared_values` (`where(mask, shared_values[codes], 0)`), or takes
`<layer>.weight` masked by `<layer>.mask` for layers without codes, and
compares them, in the layer order of the `sqz` metadata, with EXPECTED.f32
(every layer's weights, raw little-endian float32, concatenated). Exits 1
on any difference, 2 on bad arguments or a malformed file.

With SCALE and OUT, it then hands a file back as a fine-tuning job would:
shared values multiplied by SCALE (float32), codes, masks and biases
unchanged, no weight tensor for layers with codes, no metadata.

Needs `numpy` and `safetensors` (`.ci/install-test-deps` installs them).
"""

import json
import sys


def fail(message):
    print(f"safetensors_check: {message}", file=sys.stderr)
    sys.exit(2)


try:
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file
except ImportError as error:
    fail(f"{error} in {sys.executable}; run .ci/install-test-deps and use the Python it prints")


def main(argv):
    if len(argv) not in (3, 5):
        fail("usage: safetensors_check.py WEIGHTS.safetensors EXPECTED.f32 [SCALE OUT.safetensors]")
    path, expected_path = argv[1], argv[2]
    tensors = load_file(path)
    with safe_open(path, "np") as f:
        metadata = f.metadata() or {}
    if "sqz" not in metadata:
        fail(f"{path} has no sqz metadata")
    layers = json.loads(metadata["sqz"])["layers"]
    expected = np.fromfile(expected_path, dtype="<f4")
    offset = 0
    shared_layers = 0
    for name in layers:
        mask = tensors[f"{name}.mask"].astype(bool)
        if f"{name}.codes" in tensors:
            codes = tensors[f"{name}.codes"].astype(np.int64)
            shared = tensors[f"{name}.shared_values"]
            rebuilt = np.where(mask, shared[codes], np.float32(0))
            shared_layers += 1
        else:
            rebuilt = np.where(mask, tensors[f"{name}.weight"], np.float32(0))
        if rebuilt.dtype != np.float32:
            fail(f"{name}: rebuilt weights are {rebuilt.dtype}")
        want = expected[offset : offset + rebuilt.size]
        offset += rebuilt.size
        if want.size != rebuilt.size or not np.array_equal(rebuilt.ravel(), want):
            print(f"{name}: rebuilt weights differ from the decoded model")
            return 1
    if offset != expected.size:
        print(f"{expected_path} holds {expected.size} weights, the file {offset}")
        return 1
    print(f"{len(layers)} layers ({shared_layers} with codes), {offset} weights match")

    if len(argv) == 5:
        scale = np.float32(float(argv[3]))
        back = {}
        for name in layers:
            for suffix in ("bias", "mask", "codes"):
                if f"{name}.{suffix}" in tensors:
                    back[f"{name}.{suffix}"] = tensors[f"{name}.{suffix}"]
            if f"{name}.codes" in tensors:
                back[f"{name}.shared_values"] = tensors[f"{name}.shared_values"] * scale
            else:
                back[f"{name}.weight"] = tensors[f"{name}.weight"]
        save_file(back, argv[4])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
