"""The latency model's form refitted offline to the figures a `bench_latency_model.py` run kept: no timing.

    python benchmarks/refit_latency_model.py docs/bench_latency_model-0426.json [--backend onnx] [--out FILE]
    python benchmarks/refit_latency_model.py --budget docs/bench_latency_model*.json [--ridge 0.01]
        [--drop FEATURE ...] [--leave-out MEMBER_KEY ...]

Per run and backend, the form (`mobilenet.bench.latency_model.fit`) is fitted to the calibration members' figures
of the sweep itself (`same_sweep_ms`; the members of today's `CALIBRATION` that the run timed: an older run's set may
be smaller) and scored on the 45 published members of that sweep (their `members` rows, already at the calibrated
level the run scaled to). It prints each fit's coefficients, the fraction within 10%, and
the members missed by more than 10%; then, per backend, each coefficient's range over the runs: a coefficient whose
range spans several times its median is one the calibration members do not pin (the terms trade weight from run
to run while the predictions move little), and a member missed the same way in every run is the form's, not noise.

With --budget, the error of the library's path is taken apart, per run and backend of every file that kept its
calibration's figures (`calibration_ms`, from 2026-12-01 on), each as the standard deviation of log(predicted /
measured) over the 45 published members and the fraction within 10%:

- the library's path: the form fitted to the calibration's figures, timed minutes before the sweep;
- the same sweep: fitted to the calibration members' figures in the sweep itself (no drift between the two);
- the form's ceiling: each published member predicted by a fit to the calibration members and the other 44
  published members of the same sweep (leave-one-out: 57 members instead of 13, still no drift);
- the drift: the calibration members' log(calibration / sweep), each as a ratio to the reference;
- the sweep's own noise, from every file's two back-to-back sweeps (`agreement`): the standard deviation of
  log(first / second) over the members, divided by sqrt(2).

A prediction cannot agree with a sweep better than the sweep agrees with itself: if the ceiling misses 10% of the
members, no calibration set of this machine's timing will put 90% within ±10%. --ridge shrinks every fit (the
coefficients scaled to unit columns, the penalty's weight against the calibration's relative errors) to try a form
with fewer effective terms. --drop and --leave-out take a change apart on the same figures: the form without a
feature (its column zeroed: the fit's coefficient for it is 0) and the calibration without some members.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from mobilenet.bench.latency_model import FEATURES, calibration_members, fit, member_key
from mobilenet.bench.latency_model import features as member_features
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
            timed = [(c, r, sweep[member_key(c, r)]) for c, r in members if member_key(c, r) in sweep]
            model = fit(timed, backend, 0, "refit", "refit")
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


def coefficients(x: np.ndarray, y: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """The form's coefficients for feature rows `x` and latencies `y`: non-negative least squares on relative error,
    as `latency_model.fit` (with `ridge` 0), or shrunk by a ridge penalty on the column-scaled coefficients."""
    from scipy.optimize import nnls

    a = x / y[:, None]
    target = np.ones(len(y))
    if ridge <= 0:
        return nnls(a, target)[0]
    scale = np.linalg.norm(a, axis=0)
    scale[scale == 0] = 1.0
    k = a.shape[1]
    solved = nnls(np.vstack([a / scale, np.sqrt(ridge) * np.eye(k)]), np.concatenate([target, np.zeros(k)]))[0]
    return solved / scale


def budget(
    documents: list[dict[str, object]],
    ridge: float = 0.0,
    drop: tuple[str, ...] = (),
    leave_out: tuple[str, ...] = (),
) -> dict[str, object]:
    """The error of the library's path taken apart (module docstring), per run and backend of `documents`, and the
    sweeps' own noise from their agreements. An ablation: the features of `drop` left out of the form, the calibration
    members of `leave_out` (member keys) out of the calibration."""
    keep = np.array([name not in drop for name in FEATURES], dtype=float)

    def features(config, resolution) -> np.ndarray:
        return np.array(member_features(config, resolution)) * keep

    entries = {entry.key(): entry for entry in published_entries()}
    members = {member_key(c, r): features(c, r) for c, r in calibration_members() if member_key(c, r) not in leave_out}
    cases, noise = [], []
    for document in documents:
        if "agreement" in document:
            pairs = document["agreement"]["members"]
            difference = np.log([m["first_ms"] / m["second_ms"] for m in pairs])
            noise.append(float(difference.std() / np.sqrt(2)))
        for run in document.get("runs", []):
            for backend, detail in run["backends"].items():
                if "calibration_ms" not in detail:
                    continue
                keys = [k for k in members if k in detail["calibration_ms"]]  # what this run calibrated on
                xc = np.array([members[k] for k in keys])
                calibrated = np.array([detail["calibration_ms"][k][0] for k in keys])
                same = np.array([detail["same_sweep_ms"][k] for k in keys])
                xm = np.array(
                    [features(entries[m["member"]].config, entries[m["member"]].resolution) for m in detail["members"]]
                )
                measured = np.array([m["measured_ms"] for m in detail["members"]])  # at the calibration's level
                at_sweep = measured * same[0] / calibrated[0]  # the same figures at the sweep's own level
                ceiling = []
                for i in range(len(measured)):
                    rest = np.arange(len(measured)) != i
                    c = coefficients(np.vstack([xc, xm[rest]]), np.concatenate([same, at_sweep[rest]]), ridge)
                    ceiling.append(float(xm[i] @ c / at_sweep[i]))
                drift = np.log((calibrated / calibrated[0]) / (same / same[0]))[1:]
                cases.append(
                    {
                        "backend": backend,
                        "library": _errors(xm @ coefficients(xc, calibrated, ridge) / measured),
                        "same_sweep": _errors(xm @ coefficients(xc, same, ridge) / at_sweep),
                        "ceiling": _errors(np.array(ceiling)),
                        "drift_std": float(drift.std()),
                    }
                )
    return {"ridge": ridge, "cases": cases, "sweep_noise": noise}


def _errors(ratio: np.ndarray) -> dict[str, float]:
    return {"std": float(np.log(ratio).std()), "within_10": float(np.mean(np.abs(ratio - 1) <= 0.1))}


def _label(entry) -> str:
    return f"{entry.name} {entry.alpha} @{entry.resolution}" + "".join(f" {k}={v}" for k, v in entry.options)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="JSON files bench_latency_model.py wrote (one, without --budget)")
    parser.add_argument("--backend", nargs="+", default=None, help="default: every backend of the file")
    parser.add_argument("--budget", action="store_true", help="take the library path's error apart (see above)")
    parser.add_argument("--ridge", type=float, default=0.0, help="--budget's fits shrunk by this ridge weight")
    parser.add_argument("--drop", nargs="+", default=(), choices=FEATURES, help="--budget without these features")
    parser.add_argument("--leave-out", nargs="+", default=(), metavar="KEY", help="--budget without these members")
    parser.add_argument("--out", default=None, help="write the refits (or the budget) as JSON")
    args = parser.parse_args()
    documents = []
    for name in args.runs:
        with open(name, encoding="utf-8") as source:
            documents.append(json.load(source))
    if args.budget:
        unknown = set(args.leave_out) - {member_key(c, r) for c, r in calibration_members()}
        if unknown:
            parser.error(f"not calibration members: {', '.join(sorted(unknown))} (keys as in the JSON's calibration)")
        return _print_budget(budget(documents, args.ridge, tuple(args.drop), tuple(args.leave_out)), args.out)
    if len(documents) != 1:
        parser.error("refits read one file; --budget reads several")
    if args.drop or args.leave_out or args.ridge:
        parser.error("--drop, --leave-out and --ridge are --budget's")
    fits = refit(documents[0], args.backend)
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


def _print_budget(result: dict[str, object], out: str | None) -> int:
    names = ("library", "same_sweep", "ceiling")
    print(f"ridge {result['ridge']}; std of log(predicted / measured), within 10% in brackets")
    for case in result["cases"]:
        cells = "  ".join(f"{n} {case[n]['std']:.3f} ({case[n]['within_10']:.0%})" for n in names)
        print(f"{case['backend']:<14} {cells}  drift {case['drift_std']:.3f}")
    cases = result["cases"]
    for n in names:
        std = np.mean([c[n]["std"] for c in cases])
        within = np.mean([c[n]["within_10"] for c in cases])
        print(f"mean over {len(cases)} cases: {n:<10} std {std:.3f}, within 10% {within:.1%}")
    print(f"mean drift std {np.mean([c['drift_std'] for c in cases]):.3f}")
    noise = result["sweep_noise"]
    if noise:
        print(f"a sweep's own noise, from {len(noise)} agreements: " + ", ".join(f"{n:.3f}" for n in noise))
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
