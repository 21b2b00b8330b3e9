"""Where ONNX Runtime spends its time, per operator type and per kind of convolution, fp32 against int8, and the two
paths timed alone:

    .venv/bin/python benchmarks/profile_ort.py [--models mobilenet_v2 mobilenet_v3_large ...] [--threads 2]

For each model (untrained, 224 px, batch 1): the fp32 export and its int8 quantization (`mobilenet.bench.latency`'s
own files), both run under ONNX Runtime's profiler (`enable_profiling`, 20 warm-up calls each, then 50 counted calls
each in alternating blocks of 5; kernel time summed per operator type and divided by the calls), then each timed
alone with `mobilenet.bench.latency.time_calls` (no profiler, no other runtime in between; twice, alternating, to
show the drift). The profiler inflates its totals; read the shares, and the untouched medians for speed.

The convolution table attributes each kernel to the Conv node of the fp32 file it came from (ONNX Runtime renames
them: `<tensor>_nchwc` for fp32, `<node>_token_<n>` for int8) and sums by kind: stem, depthwise, pointwise, and the
1x1 convolutions of squeeze-and-excite. Its last line is an estimated ceiling: the fp32 total over the int8
convolutions alone, the int8 speed-up if every other int8 operator took no time. An estimate, not a bound: the
profiler adds a cost to every kernel, which weighs more on the faster path.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import mobilenet
from mobilenet.bench.latency import time_calls
from mobilenet.deploy.artifacts import build_artifact

WARMUP_CALLS = 20
SQUEEZE_EXCITE = "squeeze-excite 1x1"
PROFILED_CALLS = 50
BLOCK = 5


def session(path: Path, threads: int, profile_prefix: str | None = None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


Kernel = tuple[str, str, float]  # node, operator type, milliseconds per call


def profiled_kernels(
    paths: dict[str, Path], feed: dict[str, np.ndarray], threads: int, prefix: str
) -> dict[str, list[Kernel]]:
    """(node, operator type, milliseconds per call) of every kernel ONNX Runtime ran, per file, under its profiler.

    The files are profiled in alternating blocks (a pause, one untimed call, BLOCK counted calls), not one after the
    other: this machine's speed drifts between minutes, and a comparison must not depend on which file ran first."""
    sessions = {tag: session(path, threads, f"{prefix}.{tag}") for tag, path in paths.items()}
    for s in sessions.values():
        for _ in range(WARMUP_CALLS):
            s.run(None, feed)
    blocks = PROFILED_CALLS // BLOCK
    for _ in range(blocks):
        for s in sessions.values():
            time.sleep(0.2)  # let the other session's worker threads stop spinning
            for _ in range(1 + BLOCK):  # the first call of a block re-warms the caches and is not counted
                s.run(None, feed)
    result = {}
    for tag, s in sessions.items():
        events = json.loads(Path(s.end_profiling()).read_text())
        runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
        keep = _counted_runs(runs, blocks)
        micros, ops = collections.Counter(), {}
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and keep(event["ts"]):
                node = event["name"].removesuffix("_kernel_time")
                micros[node] += event["dur"]
                ops[node] = event["args"]["op_name"]
        result[tag] = [(node, ops[node], total / PROFILED_CALLS / 1e3) for node, total in micros.items()]
    return result


def _counted_runs(starts: list[float], blocks: int):
    """A test on a profiler timestamp: inside one of the counted runs? `starts` are every run's start, in order: the
    warm-up, then `blocks` blocks of one uncounted and BLOCK counted runs."""
    assert len(starts) == WARMUP_CALLS + blocks * (BLOCK + 1), "the profile does not match the calls made"
    kept = []
    for block in range(blocks):
        first = WARMUP_CALLS + block * (BLOCK + 1) + 1
        following = first + BLOCK
        kept.append((starts[first], starts[following] if following < len(starts) else float("inf")))
    return lambda ts: any(low <= ts < high for low, high in kept)


def per_operator(kernels: list[Kernel]) -> dict[str, tuple[float, int]]:
    """Milliseconds per call and nodes, by operator type, most expensive first."""
    ms, nodes = collections.Counter(), collections.Counter()
    for _, op, time_ms in kernels:
        ms[op] += time_ms
        nodes[op] += 1
    return {op: (ms[op], nodes[op]) for op, _ in ms.most_common()}


def conv_kinds(fp32_path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The kind of every Conv node of an exported fp32 file, and the Conv node that produced each tensor (through at
    most a chain of activations, which ONNX Runtime fuses into the convolution)."""
    graph = onnx.load(str(fp32_path)).graph
    weights = {i.name: list(i.dims) for i in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    kinds: dict[str, str] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        source = producer.get(node.input[0])  # squeeze-excite: after the pool, or after an SE convolution's ReLU
        before = producer.get(source.input[0]) if source is not None and source.input else None
        pooled = source is not None and (
            source.op_type == "GlobalAveragePool"
            or (before is not None and before.op_type == "Conv" and kinds.get(before.name) == SQUEEZE_EXCITE)
        )
        kh, kw = weights[node.input[1]][2:]
        if node.input[0] == graph.input[0].name:
            kinds[node.name] = f"stem {kh}x{kw}"
        elif group > 1:
            kinds[node.name] = f"depthwise {kh}x{kw}"
        elif pooled:
            kinds[node.name] = SQUEEZE_EXCITE
        else:
            kinds[node.name] = "pointwise 1x1"
    made_by = {}
    for tensor, node in producer.items():
        while node is not None and node.op_type != "Conv":
            node = producer.get(node.input[0]) if node.input else None
        if node is not None:
            made_by[tensor] = node.name
    return kinds, made_by


def conv_node(kernel: str, made_by: dict[str, str]) -> str | None:
    """The fp32 Conv node a profiled convolution kernel came from."""
    if kernel.endswith("_nchwc"):  # fp32: named after the tensor the (fused) convolution writes
        return made_by.get(kernel.removesuffix("_nchwc"))
    return re.sub(r"_token_\d+$", "", kernel)  # int8: the QDQ node group keeps the Conv node's name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for name in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            model = mobilenet.create_model(name).eval()
            fp32, int8 = (build_artifact(model, backend, 224, tmp) for backend in ("onnx", "onnx-int8"))
            feed = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
            print(f"\n{name}, 224 px, batch 1, {args.threads} threads")
            kinds, made_by = conv_kinds(fp32)
            by_kind: dict[str, dict[str, float]] = collections.defaultdict(lambda: {"fp32": 0.0, "int8": 0.0})
            totals = {}
            profiled = profiled_kernels({"fp32": fp32, "int8": int8}, feed, args.threads, str(Path(tmp) / "profile"))
            for tag, kernels in profiled.items():
                rows = per_operator(kernels)
                totals[tag] = sum(ms for ms, _ in rows.values())
                print(f"  {tag} under the profiler: {totals[tag]:.3f} ms a call")
                for op, (ms, count) in rows.items():
                    print(f"    {op:<22}{ms:>8.3f} ms  {count:>3} nodes  {ms / totals[tag]:>6.1%}")
                for kernel, op, ms in kernels:
                    if op in ("Conv", "QLinearConv"):
                        by_kind[kinds.get(conv_node(kernel, made_by) or "", "unattributed")][tag] += ms
            print("  convolutions by kind (profiler ms a call): fp32, int8, fp32/int8")
            for kind, ms in sorted(by_kind.items(), key=lambda item: -item[1]["fp32"]):
                print(f"    {kind:<22}{ms['fp32']:>8.3f}{ms['int8']:>8.3f}{ms['fp32'] / max(ms['int8'], 1e-9):>8.2f}x")
            int8_convs = sum(ms["int8"] for ms in by_kind.values())
            print(
                f"  estimated ceiling: fp32 total / int8 convolutions alone = {totals['fp32']:.3f} / "
                f"{int8_convs:.3f} = {totals['fp32'] / int8_convs:.2f}x"
            )
            sessions = {"fp32": session(fp32, args.threads), "int8": session(int8, args.threads)}
            medians: dict[str, list[float]] = {tag: [] for tag in sessions}
            for _ in range(2):
                for tag, s in sessions.items():
                    time.sleep(0.2)  # let the other session's worker threads stop spinning
                    medians[tag].append(time_calls(lambda s=s, f=feed: s.run(None, f)).median_ms)
            ratios = [f / i for f, i in zip(medians["fp32"], medians["int8"], strict=True)]
            print(
                f"  alone, no profiler (two rounds): fp32 {medians['fp32'][0]:.2f} / {medians['fp32'][1]:.2f} ms, "
                f"int8 {medians['int8'][0]:.2f} / {medians['int8'][1]:.2f} ms, int8 speed-up "
                f"{ratios[0]:.2f}x / {ratios[1]:.2f}x"
            )


if __name__ == "__main__":
    main()
