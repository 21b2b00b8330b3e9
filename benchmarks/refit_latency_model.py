"""The latency model's form refitted offline to the figures a `bench_latency_model.py` run kept: no timing.

    python benchmarks/refit_latency_model.py docs/bench_latency_model-0426.json [--backend onnx] [--out FILE]

Per run and backend, the form (`mobilenet.bench.latency_model.fit`) is fitted to the calibration members' figures
of the sweep itself (`same_sweep_ms`) and scored on the 45 published members of that sweep (their `members` rows,
already at the calibrated level the run scaled to). It prints each fit's coefficients, the fraction within 10%, and
the members missed by more than 10%; then, per backend, each coefficient's range over the runs: a coefficient whose
range spans several times its median is one the 13 calibration members do not pin (the terms trade weight from run
to run while the predictions move little), and a member missed the same way in every run is the form's, not noise.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mobilenet.bench.latency_model import FEATURES, calibration_members, fit, member_key
from mobilenet.bench.select import published_entries


def refit(document: dict[str, object], backends: list[str] | None = None) -> dict[str, object]:
    """Each run's same-sweep fit per backend: coefficients, fraction within 10%, and the members missed by > 10%."""
    entries = {entry.key(): entry for entry in published_entries()}
    members = calibration_members()
    out: dict[str, list[dict[str, object]]] = {}
    for run in document["runs"]:
        for backend, detail in run["backends"].items():
            if backends and backend not in backends:
                continue
            if "same_sweep_ms" not in detail:
                raise ValueError("this run kept no same-sweep figures (bench_latency_model.py from 2026-12-01 on)")
            sweep = detail["same_sweep_ms"]
            model = fit([(c, r, sweep[member_key(c, r)]) for c, r in members], backend, 0, "refit", "refit")
            rows = [(entries[row["member"]], row["measured_ms"]) for row in detail["members"]]
            error = np.array([model.predict(e.config, e.resolution) / ms - 1 for e, ms in rows])
            missed = [
                {"member": _label(rows[i][0]), "error": round(float(error[i]), 3)}
                for i in np.argsort(-np.abs(error))
                if abs(error[i]) > 0.1
            ]
            out.setdefault(backend, []).append(
                {
                    "coefficients": dict(zip(FEATURES, model.coefficients, strict=True)),
                    "within_10": float(np.mean(np.abs(error) <= 0.1)),
                    "missed": missed,
                }
            )
    return out


def _label(entry) -> str:
    return f"{entry.name} {entry.alpha} @{entry.resolution}" + "".join(f" {k}={v}" for k, v in entry.options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", help="a JSON file bench_latency_model.py wrote")
    parser.add_argument("--backend", nargs="+", default=None, help="default: every backend of the file")
    parser.add_argument("--out", default=None, help="write the refits as JSON")
    args = parser.parse_args()
    with open(args.runs, encoding="utf-8") as source:
        fits = refit(json.load(source), args.backend)
    for backend, runs in fits.items():
        for i, one in enumerate(runs):
            coefficients = "  ".join(f"{k} {v:.4f}" for k, v in one["coefficients"].items())
            print(f"{backend} run {i}: within 10% {one['within_10']:.0%}; {coefficients}")
            print("    missed: " + ", ".join(f"{m['member']} {m['error']:+.0%}" for m in one["missed"]))
        for name in FEATURES:
            values = [one["coefficients"][name] for one in runs]
            print(f"{backend} {name:<16} over the runs {min(values):.4f} - {max(values):.4f}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(fits, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
