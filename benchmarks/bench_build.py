"""Building a sweep's files: the build workers' PyTorch threads, one each against every core each.

    .venv/bin/python benchmarks/bench_build.py [--repeats 3] [--threads 1 2] [--out FILE]

Times `mobilenet.bench.timing._build_all` building the calibration members' files for the four ONNX backends
(what the main job builds first when it calibrates, cold) into a fresh folder, once per setting of --threads (each
build worker's `torch.set_num_threads`), the settings alternated --repeats times. The first setting is the library's
default on a 2-core machine (half the cores a worker), the second what the workers ran before 2026-12-01 (PyTorch's
default: every core). Prints each setting's wall times and median, and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_latency_model import header, write  # this folder's: run as `python benchmarks/...`

from mobilenet.bench.latency_model import calibration_members
from mobilenet.bench.timing import KIT_BACKENDS, _build_all


def build_once(threads: int) -> float:
    """Seconds to build the calibration members' files for every kit backend, with `threads` a worker."""
    members = calibration_members()
    with tempfile.TemporaryDirectory() as root:
        jobs = {Path(root) / f"m{i}": (c, r, list(KIT_BACKENDS)) for i, (c, r) in enumerate(members)}
        started = time.perf_counter()
        _build_all(jobs, worker_threads=threads)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="times each setting is timed, alternated")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="PyTorch threads a build worker")
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args()
    if args.repeats < 1 or min(args.threads) < 1:
        parser.error("--repeats and --threads must be at least 1")
    seconds: dict[int, list[float]] = {t: [] for t in args.threads}
    for repeat in range(args.repeats):
        for threads in args.threads:
            seconds[threads].append(round(build_once(threads), 1))
            print(f"repeat {repeat + 1}: {threads} thread(s) a worker {seconds[threads][-1]} s", flush=True)
    medians = {t: statistics.median(s) for t, s in seconds.items()}
    first = args.threads[0]
    for threads, median in medians.items():
        print(f"{threads} thread(s) a worker: median {median:.1f} s ({median / medians[first]:.2f}x the first)")
    document = header(first) | {"members": len(calibration_members()), "backends": list(KIT_BACKENDS)}
    write(document | {"seconds": {str(t): s for t, s in seconds.items()}, "median_s": medians}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
