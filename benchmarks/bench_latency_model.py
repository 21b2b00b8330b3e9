"""The latency models against measurement: every published member in every backend, in one run.

Each run calibrates every backend's latency model (timing the calibration members, off the published grid; once per
setting of --calibration-rounds, in turns: rounds, re-timed to a precision or ":fixed" as the library's), then
times the 45 published members with the calibration members in each backend in interleaved rounds
(`mobilenet.bench.timing.time_pairs`, scaled to the first setting's calibrated level as `select` does) and compares
each setting's predictions with the sweep: the error of each member, the fraction within 10% and 20%, Spearman's rank
correlation, and what calibrating cost. A model fitted to the calibration members' figures in the sweep itself is
scored too ("same sweep"): the form's error without the machine's drift between a calibration and a later sweep. With
--agreement, it also runs `mobilenet select --refresh --backend onnx --measure-all` twice back to back and compares
their figures. With --precision-check, it times the published members in ONNX Runtime four times, alternating a fixed
five rounds with the runner's rule (members re-timed until their median is known to `PRECISION`), and compares each
rule's two sweeps.

    .venv/bin/python benchmarks/bench_latency_model.py --runs 3 --agreement --out docs/bench_latency_model.json
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

from mobilenet.bench.latency_model import calibration_members, fit, member_key
from mobilenet.bench.runner import PRECISION, ROUNDS, cpu_model
from mobilenet.bench.select import published_entries
from mobilenet.bench.timing import calibrate, time_pairs
from mobilenet.deploy.backends import deploy_backends, runtime_version


def one_run(backends: list[str], threads: int, calibrations: list[str], turn: int) -> dict[str, object]:
    """Calibrate once per setting of `calibrations` (`setting`; their order turned by `turn`, so that no setting
    always runs first), then time the published members and the calibration members in one sweep: each setting's
    models are scored on the published members, and so is a model fitted to the calibration members of the sweep
    itself (the form's error without the drift between a calibration and a later sweep)."""
    k = turn % len(calibrations)
    settings = calibrations[k:] + calibrations[:k]
    with tempfile.TemporaryDirectory() as files:  # each run builds its files afresh: the first calibration is cold
        models, calibration_s = {}, {}
        for name in settings:
            rounds, precision = setting(name)
            started = time.perf_counter()
            models[name] = calibrate(
                backends, threads, progress=False, workdir=files, rounds=rounds, precision=precision
            )
            calibration_s[name] = round(time.perf_counter() - started, 1)
        entries = published_entries()
        members = calibration_members()
        pairs = [(c, r, b) for b in backends for c, r in [*members, *((e.config, e.resolution) for e in entries)]]
        started = time.perf_counter()
        first = models[calibrations[0]]
        levels = {b: m.reference_ms for b, m in first.items()}
        rows = time_pairs(pairs, threads, files, progress=False, levels=levels)
        sweep_s = time.perf_counter() - started
    out = {
        "calibration_s": {label(n): s for n, s in calibration_s.items()},
        "sweep_s": round(sweep_s, 1),
        "cold_calibration": label(settings[0]),
        "backends": {},
        "scores": {},
    }
    for backend in backends:
        measured = np.array([rows[(member_key(e.config, e.resolution), backend)]["median_ms"] for e in entries])
        same = fit(
            [(c, r, rows[(member_key(c, r), backend)]["median_ms"]) for c, r in members],
            backend,
            threads,
            "this sweep",
            runtime_version(backend),
        )
        scored = {label(n): models[n][backend] for n in calibrations} | {"same sweep": same}
        for name, model in scored.items():
            # each model's own level: the sweep's ratios times its reference median (the same sweep's: levels)
            scale = model.calibration[0]["measured_ms"] / levels[backend]
            predicted = np.array([model.predict(e.config, e.resolution) for e in entries])
            out["scores"].setdefault(name, {})[backend] = _score(predicted, measured * scale)
            print(
                f"{backend:<14} {name:<10} "
                + "  ".join(f"{k} {v:.3f}" for k, v in out["scores"][name][backend].items()),
                flush=True,
            )
        model = first[backend]
        predicted = np.array([model.predict(e.config, e.resolution) for e in entries])
        error = predicted / measured - 1

        def row(i, backend=backend, error=error, predicted=predicted, measured=measured):
            entry = entries[i]
            return {
                "member": entry.key(),
                "measured_ms": float(measured[i]),
                "predicted_ms": float(predicted[i]),
                "error": float(error[i]),
                "spread": float(rows[(member_key(entry.config, entry.resolution), backend)]["spread"]),
            }

        out["backends"][backend] = {
            "runtime": runtime_version(backend),
            **_score(predicted, measured),
            "calibration_fit_error": model.fit_error,
            "calibration": [c["key"] for c in model.calibration],
            # each calibration member's measured and fitted median: other forms can be refitted to a run offline
            "calibration_ms": {c["key"]: [c["measured_ms"], c["fitted_ms"]] for c in model.calibration},
            "same_sweep_ms": {c["key"]: c["measured_ms"] for c in same.calibration},
            "worst": [row(i) for i in np.argsort(-np.abs(error))[:5]],
            "members": [row(i) for i in range(len(entries))],
        }
    print(f"calibration {calibration_s} s, sweep of {len(pairs)} (member, backend) pairs {sweep_s:.0f} s", flush=True)
    return out


def setting(name: str) -> tuple[int, float]:
    """A calibration setting of --calibration-rounds as (rounds, precision): "5" is 5 rounds with the imprecise
    members re-timed to `PRECISION` (the library's rule before 2026-12-01), "5:fixed" 5 rounds and no more
    (`precision` 1: the library's calibration now, `CALIBRATION_PRECISION`)."""
    rounds, _, rule = name.partition(":")
    if not rounds.isdigit() or int(rounds) < 3 or rule not in ("", "fixed"):
        raise ValueError(f"a calibration setting is ROUNDS or ROUNDS:fixed with ROUNDS >= 3, got {name!r}")
    return int(rounds), 1.0 if rule else PRECISION


def label(name: str) -> str:
    rounds, precision = setting(name)
    return f"{rounds} rounds" + (", fixed" if precision == 1.0 else "")


def _score(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    error = predicted / measured - 1
    return {
        "within_10": float(np.mean(np.abs(error) <= 0.10)),
        "within_20": float(np.mean(np.abs(error) <= 0.20)),
        "spearman": float(spearmanr(predicted, measured)[0]),
        "median_abs_error": float(np.median(np.abs(error))),
        "median_error": float(np.median(error)),
    }


def agreement(threads: int) -> dict[str, object]:
    """Two back-to-back `select --refresh --backend onnx --measure-all` runs sharing one cache (calibrated first, as
    any select on this machine is)."""
    with tempfile.TemporaryDirectory() as cache:
        cli = [sys.executable, "-m", "mobilenet.cli"]
        calibration = [*cli, "calibrate", "--backend", "onnx", "--threads", str(threads), "--cache", cache, "--quiet"]
        subprocess.run(calibration, capture_output=True, check=True)
        runs = []
        for _ in range(2):
            command = [*cli, "select", "--refresh", "--backend", "onnx", "--measure-all", "--latency-ms", "10"]
            command += ["--size-mb", "5", "--threads", str(threads), "--cache", cache, "--json", "--quiet"]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            document = json.loads(done.stdout)
            runs.append((document, time.perf_counter() - started))
    first = {c["label"]: c["latency_ms"] for c in runs[0][0]["candidates"]}
    second = {c["label"]: c["latency_ms"] for c in runs[1][0]["candidates"]}
    picks = [r[0]["pick"]["label"] if r[0]["pick"] else None for r in runs]
    result = {
        **_agree(first, second),
        "same_pick": picks[0] == picks[1],
        "picks": picks,
        "seconds": [round(r[1], 1) for r in runs],
        "members": [
            {"label": k, "first_ms": first[k], "second_ms": second[k], "difference": second[k] / first[k] - 1}
            for k in first
        ],
    }
    print(
        f"two sweeps: {result['within_10']:.0%} of members within 10%, same pick: {result['same_pick']} "
        f"({picks[0]} / {picks[1]})",
        flush=True,
    )
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
        print(
            f"{rule}: two sweeps within 10% on {out[rule]['within_10']:.0%} of members (median difference "
            f"{out[rule]['median_abs_difference']:.1%}), {seconds[rule]} s",
            flush=True,
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=None, help="default: every supported deployment backend")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--calibration-rounds",
        nargs="+",
        default=[f"{ROUNDS}:fixed"],
        metavar="ROUNDS[:fixed]",
        help="the calibrations a run scores, the first the one the sweep is scaled to: rounds, the "
        f"imprecise members re-timed to {PRECISION * 100:.0f}%%, or with :fixed no more than those rounds "
        f"(default %(default)s: the library's; e.g. 5:fixed 5 15)",
    )
    parser.add_argument("--agreement", action="store_true", help="also two back-to-back select --refresh sweeps")
    parser.add_argument("--precision-check", action="store_true", help="also fixed rounds against re-timing")
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args()
    try:
        settings = [setting(name) for name in args.calibration_rounds]
    except ValueError as error:
        parser.error(f"--calibration-rounds: {error}")
    if len(set(settings)) < len(settings):
        parser.error(f"--calibration-rounds: distinct settings, got {args.calibration_rounds}")
    torch.set_num_threads(args.threads)
    backends = deploy_backends(args.backends)
    document = header(args.threads) | {
        "runs": [one_run(backends, args.threads, args.calibration_rounds, turn) for turn in range(args.runs)]
    }
    if args.agreement:
        document["agreement"] = agreement(args.threads)
    if args.precision_check:
        document["precision_check"] = precision_check(args.threads)
    write(document, args.out)
    return 0


def header(threads: int) -> dict[str, object]:
    """What every latency benchmark's JSON starts with: the command, the machine, the date."""
    return {
        "command": "python " + " ".join(sys.argv),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def write(document: dict[str, object], path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)


if __name__ == "__main__":
    sys.exit(main())
