"""Every deployment backend this machine supports, on the three ImageNet members, in one run: docs/deploy.md's table.

    .venv/bin/python benchmarks/bench_backends.py [--runs 3] [--rounds 7] [--threads 2] [--out FILE]

Each run times every member with `mobilenet.bench.latency.compare_backends` (what `mobilenet bench NAME --backend all`
runs: 224 px, batch 1, the backends in interleaved rounds, order rotating, the median per backend), run 1 of every
member before run 2, so that a member's runs are minutes apart. Prints one markdown row per member: each backend's
median in every run, and the fastest backend's ratio to ONNX Runtime fp32 in each run.
"""

from __future__ import annotations

import argparse
import sys

from bench_latency_model import header, write  # this folder's: run as `python benchmarks/...`

from mobilenet.bench.latency import compare_backends
from mobilenet.resolve import ModelConfig

MEMBERS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")


def table(runs: dict[str, list[list[dict[str, object]]]]) -> str:
    """Markdown: a row per member, a column per backend (its median in each run, ms), then fastest / onnx per run."""
    backends = [row["backend"] for row in next(iter(runs.values()))[0]]
    backends = sorted(backends, key=lambda name: (name != "onnx", name))
    lines = [
        "| member | " + " | ".join(f"`{b}`" for b in backends) + " | fastest / `onnx` |",
        "|---|" + "---:|" * (len(backends) + 1),
    ]
    for member, member_runs in runs.items():
        by_run = [{row["backend"]: row for row in rows} for rows in member_runs]
        cells = []
        for backend in backends:
            figures = []
            for rows in by_run:
                text = f"{rows[backend]['median_ms']:.2f}"
                fastest = min(rows, key=lambda name: rows[name]["median_ms"])
                figures.append(f"**{text}**" if backend == fastest else text)
            cells.append(" / ".join(figures))
        ratios = " / ".join(f"{max(r['ratio'] for r in rows.values()):.2f}" for rows in by_run)
        lines.append(f"| {member} | " + " | ".join(cells) + f" | {ratios} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per member, run 1 of every member first")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds in a run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--members", nargs="+", default=list(MEMBERS), choices=MEMBERS)
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args()
    if args.runs < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("--runs, --rounds and --threads must be at least 1")
    runs: dict[str, list[list[dict[str, object]]]] = {member: [] for member in args.members}
    for run in range(args.runs):
        for member in args.members:
            rows = compare_backends(ModelConfig(member), threads=args.threads, rounds=args.rounds)
            runs[member].append(rows)
            summary = ", ".join(f"{row['backend']} {row['median_ms']:.2f} ms ({row['ratio']:.2f}x)" for row in rows)
            print(f"run {run + 1} {member}: {summary}", flush=True)
    print(table(runs))
    write(header(args.threads) | {"rounds": args.rounds, "runs": runs}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
