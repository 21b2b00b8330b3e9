"""Where OpenVINO spends its time, per node type and kernel, at each inference precision:

    .venv/bin/python benchmarks/profile_openvino.py [--models mobilenet_v2 ...] [--precisions f32 bf16] [--threads 2]

For each model (untrained, 224 px, batch 1, the fp32 export `mobilenet.deploy.artifacts.build_artifact` writes for
the `openvino` backends, compiled by the library's `mobilenet.bench.runner.openvino_request`): one compiled model per
precision with OpenVINO's performance counters on (`PERF_COUNT`), 50 warm-up calls, then --calls counted calls, the
precisions in alternating blocks of 10 so that the machine's drift hits them alike. Prints each precision's median
wall time per call, the sum of its nodes' times, and its costliest (node type, kernel) pairs, ms per call. The
counters add a little to every node: read the kernels' shares and their ratios between precisions, and `mobilenet
bench` for speed.
Used for docs/deploy.md's "bf16 without AMX is slower than fp32".
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time

import openvino as ov
from bench_latency_model import cpu_model  # this folder's: run as `python benchmarks/...`

from mobilenet.bench.runner import openvino_request
from mobilenet.deploy.artifacts import build_artifact
from mobilenet.model import build
from mobilenet.resolve import ModelConfig

WARMUP_CALLS = 50
BLOCK = 10


def profile_model(name: str, precisions: list[str], threads: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = build_artifact(build(ModelConfig(name)).eval(), "openvino", 224, tmp)
        requests = {p: openvino_request(path, threads, p, PERF_COUNT=True) for p in precisions}
        for request in requests.values():
            for _ in range(WARMUP_CALLS):
                request.infer()
        wall = {p: [] for p in precisions}
        kernels = {p: collections.Counter() for p in precisions}
        for _ in range(calls // BLOCK):
            for precision, request in requests.items():
                for _ in range(BLOCK):
                    started = time.perf_counter()
                    request.infer()
                    wall[precision].append(time.perf_counter() - started)
                    for node in request.profiling_info:
                        kernels[precision][(node.node_type, node.exec_type)] += node.real_time.total_seconds()
    print(f"{name} 224 px, batch 1, {threads} thread(s), {len(wall[precisions[0]])} counted calls per precision")
    for precision in precisions:
        n = len(wall[precision])
        total = sum(kernels[precision].values()) / n * 1e3
        print(f"  {precision}: median {statistics.median(wall[precision]) * 1e3:.2f} ms a call, nodes {total:.2f} ms")
        for (node_type, kernel), seconds in kernels[precision].most_common(6):
            print(f"    {node_type:<18} {kernel:<28} {seconds / n * 1e3:7.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2"])
    parser.add_argument("--precisions", nargs="+", default=["f32", "bf16"], choices=["f32", "bf16", "f16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200, help="counted calls per precision (a multiple of 10)")
    args = parser.parse_args()
    if args.threads < 1 or args.calls < BLOCK:
        parser.error(f"--threads must be at least 1 and --calls at least {BLOCK}")
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    print(f"{cpu_model()}; OpenVINO {ov.__version__}, capabilities {', '.join(capabilities)}")
    for name in args.models:
        profile_model(name, args.precisions, args.threads, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
