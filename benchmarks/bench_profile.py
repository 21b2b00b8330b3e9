"""Time `mobilenet.cost.profile` against ptflops (aten backend) and fvcore on the same models, in the same run.

    .venv/bin/pip install -e ".[bench]"
    .venv/bin/python benchmarks/bench_profile.py [--repeats 15] [--json docs/bench_profile.json]

Every tool counts an already-built CPU model (eval mode, batch 1, 224 px). Per model and tool: the median of
`--repeats` timed calls after one untimed warm-up. Ours is timed twice: "warm" reuses the model's meta twin (built
once per config and cached, as when a member is profiled at several resolutions), "cold" clears that cache before
every call so each call also builds the twin. The ratio is the fastest peer's median over ours.
Also printed: each tool's count against our exact one (the peers count differently: see docs/cost.md).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import platform
import statistics
import time
import warnings

import torch

import mobilenet
from mobilenet.cost import profile
from mobilenet.cost.count import _meta_twin
from mobilenet.cost.roofline import machine_id


def median_ms(fn, repeats: int, before=None) -> float:
    fn() if before is None else (before(), fn())
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def ptflops_macs(model) -> int:
    from ptflops import get_model_complexity_info

    with contextlib.redirect_stdout(io.StringIO()):
        macs, _ = get_model_complexity_info(
            model, (3, 224, 224), backend="aten", as_strings=False, print_per_layer_stat=False, verbose=False
        )
    return int(macs)


def fvcore_macs(model) -> int:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return int(analysis.total())  # fvcore counts one "flop" per multiply-add


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    rows = []
    for name in mobilenet.list_models():
        model = mobilenet.create_model(name).eval()
        ours = profile(model).macs
        peers = {"ptflops": ptflops_macs, "fvcore": fvcore_macs}
        timings = {
            "ours_warm": median_ms(lambda m=model: profile(m), args.repeats),
            "ours_cold": median_ms(lambda m=model: profile(m), args.repeats, before=_meta_twin.cache_clear),
        }
        counts = {}
        for peer, fn in peers.items():
            timings[peer] = median_ms(lambda m=model, f=fn: f(m), args.repeats)
            counts[peer] = fn(model)
        fastest = min(timings[peer] for peer in peers)
        rows.append(
            {
                "model": name,
                "macs": ours,
                **{f"{k}_ms": v for k, v in timings.items()},
                **{f"{peer}_count": c for peer, c in counts.items()},
                "speedup_warm": fastest / timings["ours_warm"],
                "speedup_cold": fastest / timings["ours_cold"],
            }
        )

    print(f"machine: {machine_id()}; python {platform.python_version()}; threads {torch.get_num_threads()}")
    print(f"median of {args.repeats} calls, ms\n")
    print("| model | ours warm | ours cold | ptflops (aten) | fvcore | fastest peer / ours warm | ... / ours cold |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['ours_warm_ms']:.2f} | {r['ours_cold_ms']:.2f} | {r['ptflops_ms']:.2f} | "
            f"{r['fvcore_ms']:.2f} | {r['speedup_warm']:.1f}x | {r['speedup_cold']:.1f}x |"
        )
    print("\n| model | ours (exact MACs) | ptflops - ours | fvcore - ours |")
    print("|---|---:|---:|---:|")
    for r in rows:
        deltas = " | ".join(f"{r[f'{peer}_count'] - r['macs']:+,}" for peer in ("ptflops", "fvcore"))
        print(f"| {r['model']} | {r['macs']:,} | {deltas} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine_id(), "repeats": args.repeats, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
