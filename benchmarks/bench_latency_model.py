"""The latency models against measurement: every published member in every backend, in one run.

Each run calibrates every backend's latency model (timing the calibration members, off the published grid), then
times the 45 published members in each backend in interleaved rounds (`mobilenet.bench.timing.time_pairs`, scaled
to the reference's calibrated level as `select` does) and compares: the error of each member, the fraction within
10% and 20%, Spearman's rank correlation, and what calibrating cost. With --agreement, it also runs
`mobilenet select --refresh --backend onnx --measure-all` twice back to back and compares their figures. With
--precision-check, it times the published members in ONNX Runtime four times, alternating a fixed five rounds with
the runner's rule (members re-timed until their median is known to `PRECISION`), and compares each rule's two sweeps.

    python benchmarks/bench_latency_model.py --runs 3 --agreement --out docs/bench_latency_model.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from mobilenet.bench.latency_model import member_key
from mobilenet.bench.runner import PRECISION, ROUNDS, cpu_model
from mobilenet.bench.select import published_entries
from mobilenet.bench.timing import calibrate, time_pairs
from mobilenet.deploy.backends import deploy_backends, runtime_version


def one_run(backends: list[str], threads: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as files:  # each run builds its files afresh: calibration_s is a cold one's
        started = time.perf_counter()
        models = calibrate(backends, threads, progress=False, workdir=files)
        calibration_s = time.perf_counter() - started
        entries = published_entries()
        pairs = [(e.config, e.resolution, b) for b in backends for e in entries]
        started = time.perf_counter()
        levels = {b: m.reference_ms for b, m in models.items()}
        rows = time_pairs(pairs, threads, files, progress=False, levels=levels)
        sweep_s = time.perf_counter() - started
    out = {"calibration_s": round(calibration_s, 1), "sweep_s": round(sweep_s, 1), "backends": {}}
    for backend in backends:
        model = models[backend]

        def row(entry, measured_ms, predicted_ms, backend=backend):
            spread = rows[(member_key(entry.config, entry.resolution), backend)]["spread"]
            return {
                "member": entry.key(),
                "measured_ms": float(measured_ms),
                "predicted_ms": float(predicted_ms),
                "error": float(predicted_ms / measured_ms - 1),
                "spread": float(spread),
            }

        measured = np.array([rows[(member_key(e.config, e.resolution), backend)]["median_ms"] for e in entries])
        predicted = np.array([model.predict(e.config, e.resolution) for e in entries])
        error = predicted / measured - 1
        worst = np.argsort(-np.abs(error))[:5]
        out["backends"][backend] = {
            "runtime": runtime_version(backend),
            "within_10": float(np.mean(np.abs(error) <= 0.10)),
            "within_20": float(np.mean(np.abs(error) <= 0.20)),
            "spearman": float(spearmanr(predicted, measured)[0]),
            "median_abs_error": float(np.median(np.abs(error))),
            "calibration_fit_error": model.fit_error,
            "calibration": [c["key"] for c in model.calibration],
            # each calibration member's measured and fitted median: other forms can be refitted to a run offline
            "calibration_ms": {c["key"]: [c["measured_ms"], c["fitted_ms"]] for c in model.calibration},
            "worst": [row(entries[i], measured[i], predicted[i]) for i in worst],
            "members": [row(e, m, p) for e, m, p in zip(entries, measured, predicted, strict=True)],
        }
        print(f"{backend:<14} within 10%: {np.mean(np.abs(error) <= 0.1):.0%}  within 20%: "
              f"{np.mean(np.abs(error) <= 0.2):.0%}  Spearman {spearmanr(predicted, measured)[0]:.3f}  "
              f"median |error| {np.median(np.abs(error)):.1%}", flush=True)  # fmt: skip
    print(f"calibration {calibration_s:.0f} s, sweep of the 45 members {sweep_s:.0f} s", flush=True)
    return out


def agreement(threads: int) -> dict[str, object]:
    """Two back-to-back `select --refresh --backend onnx --measure-all` runs sharing one cache (calibrated first, as
    any select on this machine is)."""
    with tempfile.TemporaryDirectory() as cache:
        calibrate_command = [sys.executable, "-m", "mobilenet.cli", "calibrate", "--backend", "onnx", "--threads",
                             str(threads), "--cache", cache, "--quiet"]  # fmt: skip
        subprocess.run(calibrate_command, capture_output=True, check=True)
        runs = []
        for _ in range(2):
            command = [sys.executable, "-m", "mobilenet.cli", "select", "--refresh", "--backend", "onnx",
                       "--measure-all", "--latency-ms", "10", "--size-mb", "5", "--threads", str(threads),
                       "--cache", cache, "--json", "--quiet"]  # fmt: skip
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            document = json.loads(done.stdout)
            runs.append((document, time.perf_counter() - started))
    first = {c["label"]: c["latency_ms"] for c in runs[0][0]["candidates"]}
    second = {c["label"]: c["latency_ms"] for c in runs[1][0]["candidates"]}
    picks = [r[0]["pick"]["label"] if r[0]["pick"] else None for r in runs]
    result = {**_agree(first, second), "same_pick": picks[0] == picks[1], "picks": picks,
        "seconds": [round(r[1], 1) for r in runs],
        "members": [{"label": k, "first_ms": first[k], "second_ms": second[k], "difference": second[k] / first[k] - 1}
                    for k in first]}  # fmt: skip
    print(f"two sweeps: {result['within_10']:.0%} of members within 10%, same pick: {result['same_pick']} "
          f"({picks[0]} / {picks[1]})", flush=True)  # fmt: skip
    return result


def _agree(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """How two sweeps' figures of the same members agree: the fraction within 10%, the median absolute difference."""
    difference = np.abs(np.array([second[key] / first[key] for key in first]) - 1)
    return {"within_10": float(np.mean(difference <= 0.1)), "median_abs_difference": float(np.median(difference))}


def precision_check(threads: int) -> dict[str, object]:
    """Each rule's two sweeps of the published members in ONNX Runtime against each other, the rules alternated so
    that both see the same minutes: a fixed `ROUNDS` rounds (`precision` 1: never re-timed) and the runner's default."""
    rules = {f"fixed {ROUNDS} rounds": 1.0, f"re-timed to {PRECISION:.0%}": PRECISION}
    pairs = [(e.config, e.resolution, "onnx") for e in published_entries()]
    figures: dict[str, list[dict[str, float]]] = {rule: [] for rule in rules}
    seconds: dict[str, list[float]] = {rule: [] for rule in rules}
    with tempfile.TemporaryDirectory() as files:
        # builds the files once, so that the sweeps below only time
        time_pairs(pairs, threads, files, rounds=3, progress=False, precision=1.0)
        for _ in range(2):
            for rule, precision in rules.items():
                started = time.perf_counter()
                rows = time_pairs(pairs, threads, files, progress=False, precision=precision)
                seconds[rule].append(round(time.perf_counter() - started, 1))
                # ratios to the reference: what `select` scales to the calibrated level
                figures[rule].append({key: row["ratio"] for (key, _), row in rows.items() if key != row["reference"]})
    out = {}
    for rule, (first, second) in figures.items():
        out[rule] = {**_agree(first, second), "seconds": seconds[rule]}
        print(f"{rule}: two sweeps within 10% on {out[rule]['within_10']:.0%} of members (median difference "
              f"{out[rule]['median_abs_difference']:.1%}), {seconds[rule]} s", flush=True)  # fmt: skip
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=None, help="default: every supported deployment backend")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--agreement", action="store_true", help="also two back-to-back select --refresh sweeps")
    parser.add_argument("--precision-check", action="store_true", help="also fixed rounds against re-timing")
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = deploy_backends(args.backends)
    document = header(args.threads) | {"runs": [one_run(backends, args.threads) for _ in range(args.runs)]}
    if args.agreement:
        document["agreement"] = agreement(args.threads)
    if args.precision_check:
        document["precision_check"] = precision_check(args.threads)
    write(document, args.out)
    return 0


def header(threads: int) -> dict[str, object]:
    """What every latency benchmark's JSON starts with: the command, the machine, the date."""
    return {"command": "python " + " ".join(sys.argv), "cpu": cpu_model(), "cpus": os.cpu_count(), "threads": threads,
            "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip


def write(document: dict[str, object], path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)


if __name__ == "__main__":
    sys.exit(main())
