"""onnxruntime's side of scripts/bench-vs-onnxruntime.

Times one ONNX model the way `sqz-compress bench` times the engine: the same
synthetic input of the model's size, the given intra-op thread count,
warm-up runs, then the median of timed runs. Prints one JSON object with
`batch`, `threads` and `images_per_sec` (the median), like `bench --json`.

usage: bench_onnxruntime.py MODEL.onnx BATCH THREADS RUNS WARMUP
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    path, batch, threads, runs, warmup = sys.argv[1], *map(int, sys.argv[2:6])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    start = time.perf_counter()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - start) * 1e3
    spec = session.get_inputs()[0]
    _, channels, height, width = spec.shape
    # The same values as `sqz-compress bench`: ((i * 7919) % 251) / 125 - 1.
    count = batch * channels * height * width
    index = np.arange(count, dtype=np.int64)
    data = (((index * 7919) % 251).astype(np.float32) / np.float32(125.0) - np.float32(1.0))
    feed = {spec.name: data.reshape(batch, channels, height, width)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    times.sort()
    print(json.dumps({
        "model": path,
        "batch": batch,
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "images_per_sec": batch / times[len(times) // 2],
        "images_per_sec_min": batch / times[-1],
        "images_per_sec_max": batch / times[0],
        "load_ms": load_ms,
        "onnxruntime": ort.__version__,
    }))


if __name__ == "__main__":
    main()
