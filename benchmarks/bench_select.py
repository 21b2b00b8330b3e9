"""The family sweep behind `mobilenet select` / `report`: its wall time with and without the latency cache, and how
well the fast mode's roofline predictions rank and size the measured latencies, in one run:

    .venv/bin/python benchmarks/bench_select.py [--backends onnx onnx-int8] [--threads 2] [--json FILE]

For each backend: a sweep of every published configuration into an empty cache (exports, quantizes where the
backend is int8, and measures each member), the same sweep again (read from the cache), and the fast mode
(`predict=True`: roofline, nothing measured). The peer of the measured sweep is the prediction: Spearman's rank
correlation says whether the roofline orders the family as this machine does, the median ratio whether it sizes it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from mobilenet.bench.latency import NOISY_SPREAD
from mobilenet.bench.select import LatencyCache, prediction_quality, published_entries, sweep
from mobilenet.cost.roofline import machine_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["onnx", "onnx-int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    entries = published_entries()
    rows = []
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            cache = LatencyCache.open(Path(tmp), machine_id(), backend, args.threads, 1)
            started = time.perf_counter()
            measured = sweep(entries, backend, args.threads, cache=cache)
            cold = time.perf_counter() - started
            started = time.perf_counter()
            again = sweep(
                entries,
                backend,
                args.threads,
                cache=LatencyCache.open(Path(tmp), machine_id(), backend, args.threads, 1),
            )
            warm = time.perf_counter() - started
            assert [c.latency_ms for c in again] == [c.latency_ms for c in measured]
        started = time.perf_counter()
        predicted = sweep(entries, backend, args.threads, predict=True)
        fast = time.perf_counter() - started
        quality = prediction_quality([c.latency_ms for c in measured], [c.latency_ms for c in predicted])
        rows.append(
            {
                "backend": backend,
                "candidates": len(entries),
                "sweep_s": cold,
                "cached_s": warm,
                "predict_s": fast,
                **quality,
                "noisy": sum(c.spread > NOISY_SPREAD for c in measured),
                "members": [
                    {**c.to_dict(), "predicted_ms": p.latency_ms} for c, p in zip(measured, predicted, strict=True)
                ],
            }
        )
    print(f"\nmachine: {machine_id()}; {args.threads} threads; {len(entries)} published configurations\n")
    print(
        "| backend | sweep, empty cache | sweep, cached | fast mode | Spearman (predicted vs measured) | "
        "median |error| | median predicted/measured | noisy members |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        error = f"{100 * r['median_abs_error']:.0f}%"
        print(
            f"| {r['backend']} | {r['sweep_s']:.1f} s | {r['cached_s']:.2f} s | {r['predict_s']:.2f} s | "
            f"{r['spearman']:.3f} | {error} | {r['median_ratio']:.2f} | {r['noisy']} |"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine_id(), "threads": args.threads, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
