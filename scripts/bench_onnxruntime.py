"""onnxruntime's side of scripts/bench-vs-onnxruntime.

Times one ONNX model the way `sqz-compress bench` times the engine: the same
synthetic input of the model's size, the given intra-op thread count,
warm-up runs, then the median of timed runs. Prints one JSON object with
`batch`, `threads` and `images_per_sec` (the median), like `bench --json`.
With `--per-node`, also `node_ms`: each node's mean kernel time over RUNS
more runs of a session with onnxruntime's profiler on (so the profiler
does not slow the timed runs), in execution order, like `bench --per-node`.

usage: bench_onnxruntime.py MODEL.onnx BATCH THREADS RUNS WARMUP [--per-node]
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def session_options(threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def node_ms(path, threads, feed, runs, warmup):
    """Mean kernel time of each node, in ms, from onnxruntime's profiler."""
    options = session_options(threads)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = os.path.join(folder, "profile")
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        for _ in range(warmup + runs):
            session.run(None, feed)
        with open(session.end_profiling()) as events:
            events = json.load(events)
    totals, ops = {}, {}
    suffix = "_kernel_time"
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith(suffix):
            name = event["name"][: -len(suffix)]
            totals.setdefault(name, []).append(event["dur"])
            ops[name] = event["args"].get("op_name", "")
    # The last RUNS calls of each node: the warm-up ones are profiled too.
    return [
        {"name": name, "op": ops[name], "ms": sum(durs[-runs:]) / len(durs[-runs:]) / 1e3}
        for name, durs in totals.items()
    ]


def main():
    path, batch, threads, runs, warmup = sys.argv[1], *map(int, sys.argv[2:6])
    per_node = sys.argv[6:] == ["--per-node"]
    if sys.argv[6:] and not per_node:
        sys.exit(f"unknown arguments {sys.argv[6:]}; usage: {__doc__.split('usage: ')[1]}")
    start = time.perf_counter()
    session = ort.InferenceSession(
        path, session_options(threads), providers=["CPUExecutionProvider"]
    )
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
    report = {
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
    }
    if per_node:
        report["node_ms"] = node_ms(path, threads, feed, runs, warmup)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
