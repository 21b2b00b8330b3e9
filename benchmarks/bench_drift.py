"""How this machine's drift moves the members' ratios to the reference, which sweeps assume steady.

    python benchmarks/bench_drift.py [--backend onnx] [--processes 3] [--sweeps 3] [--out docs/bench_drift.json]

The calibration members are built once, then each of `--processes` processes (`mobilenet.bench.runner`, as a sweep
runs) loads them and times them in `--sweeps` sweeps of a fixed 5 rounds (`time_rounds`, no re-timing), 5 s apart.
Per member, over its median ratios to the reference:

- `sweep_sd`: their spread from sweep to sweep within a process (log standard deviation), the noise a sweep's median
  keeps however precise its rounds look (the rounds of one sweep see the same few seconds of the machine);
- `process_sd`: the spread of the processes' means; with no effect of the process itself (its memory layout, its
  thread placement) it is `sweep_sd / sqrt(sweeps)`;
- `slope` and `correlation`, over all rounds: of its log ratio against the log of the reference's level beside it.
  A ratio that did not depend on the machine's speed would have both near 0; where they are not, a member's ratio
  moves with the state of the machine, which a ratio to one reference cannot take out.

And over every pair of sweeps (all processes), the fraction of members whose medians agree within 10%: as measured,
and with each member's ratio corrected to one reference level by its own slope within the sweep (the intercept of
its log ratio against the log reference level at the median level of everything), a correction that `time_rounds`
could make if it held.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mobilenet.bench import runner  # numpy only: the timing children import nothing else, as a sweep's runner

PAUSE_S = 5.0  # between two sweeps of a process


def child(manifest_path: str, backend: str, threads: int, sweeps: int) -> None:
    """Time the manifest's members `sweeps` times in this process; print each sweep's rows as JSON."""
    manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
    folder = Path(manifest_path).parent
    runners = runner._load_all(
        manifest["members"], folder, manifest["artifacts"][backend], backend, threads, lambda message: None
    )
    out = []
    for sweep in range(sweeps):
        if sweep:
            time.sleep(PAUSE_S)
        rows = runner.time_rounds(runners, manifest["reference"], seed=sweep, precision=1.0)
        out.append(
            {
                key: {"ratio": row["ratio"], "own": row["rounds_ms"], "reference": row["reference_ms"]}
                for key, row in rows.items()
                if key != manifest["reference"]
            }
        )
    print(json.dumps(out))


def analyse(processes: list[list[dict[str, dict[str, object]]]]) -> dict[str, dict[str, float]]:
    out = {}
    for key in processes[0][0]:
        logs = np.log([[sweep[key]["ratio"] for sweep in process] for process in processes])  # process x sweep
        own = np.concatenate([sweep[key]["own"] for process in processes for sweep in process])
        reference = np.concatenate([sweep[key]["reference"] for process in processes for sweep in process])
        x, y = np.log(reference), np.log(own / reference)
        out[key] = {
            "ratio": float(np.exp(logs.mean())),
            "sweep_sd": float(np.mean(logs.std(axis=1, ddof=1))),
            "process_sd": float(logs.mean(axis=1).std(ddof=1)),
            "slope": float(np.polyfit(x, y, 1)[0]),
            "correlation": float(np.corrcoef(x, y)[0, 1]),
        }
    return out


def agreement(processes: list[list[dict[str, dict[str, object]]]]) -> dict[str, float]:
    """The mean over pairs of sweeps of the fraction of members within 10%, as measured and corrected by level."""
    sweeps = [sweep for process in processes for sweep in process]
    keys = list(sweeps[0])
    level = np.median(np.log(np.concatenate([sweep[key]["reference"] for sweep in sweeps for key in keys])))
    measured, corrected = [], []
    for sweep in sweeps:
        measured.append([np.log(sweep[key]["ratio"]) for key in keys])
        blocks = [(np.log(sweep[key]["reference"]), np.log(sweep[key]["own"])) for key in keys]
        corrected.append([np.polyfit(ref - level, own - ref, 1)[1] for ref, own in blocks])  # intercepts
    out = {}
    for name, logs in (("measured", np.array(measured)), ("corrected_by_level", np.array(corrected))):
        pairs = itertools.combinations(range(len(logs)), 2)
        out[name] = float(np.mean([np.mean(np.abs(logs[i] - logs[j]) <= np.log(1.1)) for i, j in pairs]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="onnx", choices=tuple(runner.RUNTIMES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.backend, args.threads, args.sweeps)
        return 0
    if args.processes < 2 or args.sweeps < 2:
        parser.error("need at least 2 processes and 2 sweeps to compare them")
    from bench_latency_model import header, write  # this folder's: run as `python benchmarks/...`

    from mobilenet.bench.latency_model import calibration_members, member_key
    from mobilenet.bench.timing import _build_all, _manifest
    from mobilenet.deploy.artifacts import FILES
    from mobilenet.deploy.backends import get_backend

    members = calibration_members()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _build_all({root / f"m{i}": (c, r, [args.backend]) for i, (c, r) in enumerate(members)})
        artifact = FILES[get_backend(args.backend).artifact]
        rows = [(c, r, f"m{i}") for i, (c, r) in enumerate(members)]
        manifest = root / "manifest.json"
        manifest.write_text(json.dumps(_manifest("drift", {args.backend: artifact}, rows)), encoding="utf-8")
        processes = []
        for n in range(args.processes):
            command = [
                sys.executable,
                __file__,
                "--child",
                str(manifest),
                "--backend",
                args.backend,
                "--threads",
                str(args.threads),
                "--sweeps",
                str(args.sweeps),
            ]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            processes.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"process {n + 1}/{args.processes} done", file=sys.stderr, flush=True)
    members_out = analyse(processes)
    summary = {name: float(np.median([m[name] for m in members_out.values()])) for name in ("sweep_sd", "process_sd")}
    summary["process_sd_without_a_process_effect"] = summary["sweep_sd"] / args.sweeps**0.5
    summary["agreement"] = agreement(processes)
    for key, m in sorted(members_out.items(), key=lambda item: item[1]["ratio"]):
        print(
            f"{key:<46} ratio {m['ratio']:6.3f}  sweep sd {m['sweep_sd']:.3f}  process sd {m['process_sd']:.3f}  "
            f"slope {m['slope']:+.2f}  correlation {m['correlation']:+.2f}"
        )
    print(
        f"median sweep-to-sweep sd {summary['sweep_sd']:.3f}; process means' sd {summary['process_sd']:.3f} "
        f"(without a process effect: {summary['process_sd_without_a_process_effect']:.3f}); pairs of sweeps "
        f"within 10%: {summary['agreement']['measured']:.0%} as measured, "
        f"{summary['agreement']['corrected_by_level']:.0%} corrected by level"
    )
    reference = member_key(*members[0])
    write(
        header(args.threads)
        | {
            "backend": args.backend,
            "reference": reference,
            "processes": args.processes,
            "sweeps": args.sweeps,
            "summary": summary,
            "members": members_out,
        },
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
