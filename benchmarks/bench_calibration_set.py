"""Which members to calibrate on: candidate calibration sets scored on one sweep.

Times a pool of members (the calibration members, the 45 published ones and `EXTRA`, off the published grid) in
every backend in one interleaved sweep (`mobilenet.bench.timing.time_pairs`), then, per candidate set of `SETS`,
fits each backend's latency model to the set's members and scores it on the 45 published members of the same sweep
(fraction within 10%, Spearman). All in one sweep, so these scores leave out the drift between a calibration sweep
and a later one (`bench_latency_model.py` measures that): they compare sets and forms, not the end result. Also
leave-one-out over the published members: each predicted by the form fitted to the other 44, the form's ceiling.

    python benchmarks/bench_calibration_set.py --out docs/bench_calibration_set.json
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from bench_latency_model import header, write  # this folder's: run as `python benchmarks/...`
from scipy.stats import spearmanr

from mobilenet.bench.latency_model import CALIBRATION, fit, member_key
from mobilenet.bench.select import published_entries
from mobilenet.bench.timing import time_pairs
from mobilenet.deploy.backends import deploy_backends
from mobilenet.resolve import make_config

# Off the published grid: small members of each version, V3 minimalistic ones, unaligned V1s (alpha 0.35, 0.4).
EXTRA = (
    ("mobilenet_v1", 0.3, 112, {}),
    ("mobilenet_v1", 0.35, 128, {}),
    ("mobilenet_v1", 0.4, 160, {}),
    ("mobilenet_v1", 0.25, 176, {}),
    ("mobilenet_v1", 0.75, 144, {}),
    ("mobilenet_v2", 0.3, 128, {"t": 4}),
    ("mobilenet_v2", 0.75, 176, {"t": 3}),
    ("mobilenet_v3_small", 0.35, 96, {}),
    ("mobilenet_v3_small", 0.75, 192, {"minimal": True}),
    ("mobilenet_v3_large", 0.35, 112, {}),
    ("mobilenet_v3_large", 0.5, 160, {"minimal": True}),
    # the corners of (alpha, resolution) the above leave open, aligned: wide at low resolution, narrow at high
    ("mobilenet_v1", 1.0, 96, {}),
    ("mobilenet_v1", 0.75, 112, {}),
    ("mobilenet_v1", 0.5, 96, {}),
    ("mobilenet_v1", 0.25, 256, {}),
    ("mobilenet_v1", 0.5, 256, {}),
    ("mobilenet_v1", 1.0, 256, {}),
    ("mobilenet_v2", 1.0, 112, {}),
    ("mobilenet_v2", 1.4, 96, {}),
    ("mobilenet_v2", 1.3, 128, {}),
    ("mobilenet_v2", 0.5, 112, {}),
    ("mobilenet_v2", 0.35, 256, {}),
    ("mobilenet_v2", 0.75, 256, {}),
    ("mobilenet_v2", 1.0, 96, {"t": 4}),
    ("mobilenet_v2", 0.6, 144, {"t": 3}),
    ("mobilenet_v3_large", 1.0, 96, {}),
    ("mobilenet_v3_large", 0.75, 128, {}),
    ("mobilenet_v3_large", 0.35, 224, {}),
    ("mobilenet_v3_large", 0.5, 256, {}),
    ("mobilenet_v3_large", 1.0, 160, {"minimal": True}),
    ("mobilenet_v3_small", 1.0, 96, {}),
    ("mobilenet_v3_small", 1.25, 128, {}),
    ("mobilenet_v3_small", 0.5, 224, {}),
    ("mobilenet_v3_small", 0.35, 256, {}),
    ("mobilenet_v3_small", 0.75, 128, {"minimal": True}),
)
CURRENT = list(CALIBRATION)
SETS = {
    "current": CURRENT,
    "current, V1 0.3 @112 for 0.25 @96": [m if m[:3] != ("mobilenet_v1", 0.25, 96) else EXTRA[0] for m in CURRENT],
    "current + V3-Small minimal 0.75 @192": [*CURRENT, EXTRA[8]],
    "current + V3-Small minimal + V3-Small 0.35 @96": [*CURRENT, EXTRA[8], EXTRA[7]],
    "current + every extra": [*CURRENT, *(m for m in EXTRA if m not in CURRENT)],
}


def config_of(member):
    name, alpha, resolution, options = member
    return make_config(name, alpha, **options), resolution


def score(rows, backend, members, published) -> dict[str, float]:
    model = fit([(*config_of(m), rows[(member_key(*config_of(m)), backend)]) for m in members], backend, 1, "", "")
    measured = np.array([rows[(member_key(c, r), backend)] for c, r in published])
    predicted = np.array([model.predict(c, r) for c, r in published])
    error = predicted / measured - 1
    return {"within_10": float(np.mean(np.abs(error) <= 0.1)), "spearman": float(spearmanr(predicted, measured)[0])}


def leave_one_out(rows, backend, published) -> float:
    errors = []
    for i, (config, resolution) in enumerate(published):
        rest = [(c, r, rows[(member_key(c, r), backend)]) for j, (c, r) in enumerate(published) if j != i]
        model = fit(rest, backend, 1, "", "")
        errors.append(model.predict(config, resolution) / rows[(member_key(config, resolution), backend)] - 1)
    return float(np.mean(np.abs(np.array(errors)) <= 0.1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=None, help="default: every supported deployment backend")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backends = deploy_backends(args.backends)
    published = [(e.config, e.resolution) for e in published_entries()]
    pool = {member_key(c, r): (c, r) for c, r in [*map(config_of, CALIBRATION), *published, *map(config_of, EXTRA)]}
    started = time.perf_counter()
    timed = time_pairs([(c, r, b) for b in backends for c, r in pool.values()], args.threads, progress=True)
    rows = {pair: row["median_ms"] for pair, row in timed.items()}
    document = header(args.threads) | {
        "sweep_s": round(time.perf_counter() - started, 1),
        "sets": {name: [member_key(*config_of(m)) for m in members] for name, members in SETS.items()},
        "scores": {name: {b: score(rows, b, members, published) for b in backends} for name, members in SETS.items()},
        "leave_one_out_within_10": {b: leave_one_out(rows, b, published) for b in backends},
        "measured_ms": {f"{key} on {backend}": ms for (key, backend), ms in rows.items()},
    }
    for name, by_backend in document["scores"].items():
        print(
            f"{name:<48}" + "".join(f"  {b} {s['within_10']:.0%} ({s['spearman']:.3f})" for b, s in by_backend.items())
        )
    print(
        f"{'leave-one-out over the published':<48}"
        + "".join(f"  {b} {v:.0%}" for b, v in document["leave_one_out_within_10"].items())
    )
    write(document, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
