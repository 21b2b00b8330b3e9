"""Where ONNX Runtime spends its time, per operator type, fp32 against int8, and the two paths timed alone:

    .venv/bin/python benchmarks/profile_ort.py [--models mobilenet_v2 mobilenet_v3_small] [--threads 2]

For each model (untrained, 224 px, batch 1): the fp32 export and its int8 quantization (`mobilenet.bench.latency`'s
own files), each run under ONNX Runtime's profiler (`enable_profiling`, 20 warm-up and 50 profiled calls, kernel time
summed per operator type and divided by the calls), then each timed alone with `mobilenet.bench.latency.time_calls`
(no profiler, no other runtime in between; twice, alternating, to show the drift). The profiler inflates its totals;
read the shares, and the untouched medians for speed.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import mobilenet
from mobilenet.bench.latency import onnx_files, time_calls

PROFILED_CALLS = 50


def session(path: Path, threads: int, profile_prefix: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def per_operator(path: Path, feed: dict[str, np.ndarray], threads: int, prefix: str) -> dict[str, tuple[float, int]]:
    """Milliseconds per call and nodes per call, by operator type, under ONNX Runtime's profiler."""
    s = session(path, threads, prefix)
    for _ in range(20):
        s.run(None, feed)
    s.end_profiling()  # drop the warm-up from the trace: start a fresh one
    s = session(path, threads, prefix)
    for _ in range(PROFILED_CALLS):
        s.run(None, feed)
    events = json.loads(Path(s.end_profiling()).read_text())
    micros, nodes = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            micros[event["args"]["op_name"]] += event["dur"]
            nodes[event["args"]["op_name"]] += 1
    return {op: (micros[op] / PROFILED_CALLS / 1e3, nodes[op] // PROFILED_CALLS) for op, _ in micros.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "mobilenet_v3_small"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            fp32, int8 = onnx_files(mobilenet.create_model(name).eval(), 224, tmp, int8=True)
            feed = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
            print(f"\n{name}, 224 px, batch 1, {args.threads} threads")
            for tag, path in (("fp32", fp32), ("int8", int8)):
                rows = per_operator(path, feed, args.threads, str(Path(tmp) / tag))
                total = sum(ms for ms, _ in rows.values())
                print(f"  {tag} under the profiler: {total:.3f} ms a call")
                for op, (ms, count) in rows.items():
                    print(f"    {op:<22}{ms:>8.3f} ms  {count:>3} nodes  {ms / total:>6.1%}")
            sessions = {"fp32": session(fp32, args.threads), "int8": session(int8, args.threads)}
            medians: dict[str, list[float]] = {tag: [] for tag in sessions}
            for _ in range(2):
                for tag, s in sessions.items():
                    time.sleep(0.2)  # let the other session's worker threads stop spinning
                    medians[tag].append(time_calls(lambda s=s, f=feed: s.run(None, f)).median_ms)
            ratios = [f / i for f, i in zip(medians["fp32"], medians["int8"], strict=True)]
            print(f"  alone, no profiler (two rounds): fp32 {medians['fp32'][0]:.2f} / {medians['fp32'][1]:.2f} ms, "
                  f"int8 {medians['int8'][0]:.2f} / {medians['int8'][1]:.2f} ms, int8 speed-up "
                  f"{ratios[0]:.2f}x / {ratios[1]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
