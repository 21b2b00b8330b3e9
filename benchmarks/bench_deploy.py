"""Inference latency of each deployment path, batch 1, 224 px, in one run:

    .venv/bin/python benchmarks/bench_deploy.py [--threads 2 --runs 100] [--json docs/bench_deploy.json]

For mobilenet_v2 1.0, mobilenet_v3_large and mobilenet_v3_small: eager PyTorch (NCHW, fp32), our fused
channels_last PyTorch, ONNX Runtime fp32, ONNX Runtime int8 (QDQ, per-channel weights, uint8 activations, h-swish and
h-sigmoid lowered to int8 operators) and the same int8 file kept to standard ONNX operators (`portable`), which shows
in the same run what the lowering buys.
Each figure is the median of `--runs` timed calls after 20 warm-up calls, all paths on `--threads` threads; the
paths are timed in rotating blocks of 10 calls (a pause and one untimed call before each block), so that machine
noise falls on all alike while no path runs beside another's still-spinning threads. "of peak" is the model's MACs
over the time, as a fraction of the peak measured by `mobilenet.cost.roofline.probe()` on the same threads. Weights
are untrained (latency does not depend on their values); int8 calibration uses 32 random images
(`mobilenet.bench.latency.make_runner`, which builds every path).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mobilenet
from mobilenet.bench.latency import make_runner
from mobilenet.cost import profile
from mobilenet.cost.roofline import machine_id, probe

MODELS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
PATHS = {
    "eager NCHW": "torch",
    "fused channels_last": "torch-fused",
    "ORT fp32": "onnx",
    "ORT int8": "onnx-int8",
    "ORT int8 portable": "onnx-int8-portable",
}
# Paths are timed in rotating blocks of BLOCK runs. Not single runs in rotation: each runtime keeps its own worker
# threads spinning for a while after a call (OpenMP's and ONNX Runtime's pools), and on 2 cores they steal time from
# whichever path runs next — that made a one-run rotation report V2's int8 path 3x slower than it runs alone.
BLOCK = 10
PAUSE_S = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hardware = probe(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = mobilenet.create_model(name).eval()
            runners, sizes = {}, {}
            for path, backend in PATHS.items():
                workdir = Path(tmp) / f"{name}.{backend}"
                workdir.mkdir()
                runners[path], facts = make_runner(model, backend, 224, threads=args.threads, workdir=str(workdir))
                if "size_mb" in facts:
                    sizes[backend] = facts["size_mb"]
            for run in runners.values():
                for _ in range(20):
                    run()
            times: dict[str, list[float]] = {path: [] for path in runners}
            for _ in range(max(1, args.runs // BLOCK)):
                for path, run in runners.items():
                    time.sleep(PAUSE_S)  # let the last path's spinning worker threads go to sleep
                    run()  # re-warm this path's caches; not timed
                    for _ in range(BLOCK):
                        start = time.perf_counter()
                        run()
                        times[path].append(time.perf_counter() - start)
            macs = profile(name).macs
            medians = {path: statistics.median(values) * 1e3 for path, values in times.items()}
            rows.append(
                {
                    "model": name,
                    "macs": macs,
                    "ms": medians,
                    "p10_ms": {path: float(np.percentile(values, 10)) * 1e3 for path, values in times.items()},
                    "p90_ms": {path: float(np.percentile(values, 90)) * 1e3 for path, values in times.items()},
                    "of_peak": {path: macs / (ms / 1e3) / hardware.peak_macs_per_s for path, ms in medians.items()},
                    "size_mb": {
                        "fp32": sizes["onnx"],
                        "int8": sizes["onnx-int8"],
                        "int8 portable": sizes["onnx-int8-portable"],
                    },
                }
            )

    print(
        f"machine: {machine_id()}; {args.threads} threads; peak {hardware.peak_macs_per_s / 1e9:.1f} GMAC/s, "
        f"{hardware.bandwidth_bytes_per_s / 1e9:.1f} GB/s; median of {args.runs}, batch 1, 224 px\n"
    )
    paths = list(rows[0]["ms"])
    print(
        "| model | "
        + " | ".join(f"{p} ms (of peak)" for p in paths)
        + " | fp32 ONNX / eager | int8 / fp32 ONNX | portable int8 / fp32 ONNX |"
    )
    print("|---|" + "---:|" * (len(paths) + 3))
    for r in rows:
        cells = " | ".join(f"{r['ms'][p]:.2f} ({r['of_peak'][p]:.1%})" for p in paths)
        speedup_onnx = r["ms"]["eager NCHW"] / r["ms"]["ORT fp32"]
        speedup_int8 = r["ms"]["ORT fp32"] / r["ms"]["ORT int8"]
        speedup_portable = r["ms"]["ORT fp32"] / r["ms"]["ORT int8 portable"]
        print(f"| {r['model']} | {cells} | {speedup_onnx:.2f}x | {speedup_int8:.2f}x | {speedup_portable:.2f}x |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"machine": machine_id(), "threads": args.threads, "rows": rows, "hardware": hardware.to_dict()},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
