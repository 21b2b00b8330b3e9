"""Timing that survives a drifting machine, in one file that also runs where PyTorch is not installed.

`time_rounds` times several models in interleaved rounds: each round runs a block of calls of every model, in a
shuffled order, with a short block of a fixed reference model between any two. A model's figure in a round is its
block median over the mean of the reference's two blocks beside it, and its figure is the median of these ratios
over rounds times the reference's level (its median when the latency model was calibrated, or in this sweep):
the machines here change speed by up to 1.5x from one second to the next (docs/bench.md), and a slow second slows
a block and the reference beside it alike, so the ratio cancels it; a model timed early is compared fairly with
one timed late, and a sweep run in a slow minute gives the figures of one run in a quiet one. Every block starts
with untimed calls: after another model ran, the first calls find cold caches and sleeping threads (32 ms instead
of 7 for mobilenet_v2). In a sweep, a model whose median ratio is not yet known to `PRECISION` (its standard
error, from the spread of its ratios over rounds) was timed while the machine was busy and gets another `rounds`
rounds, up to `retries` times; a calibration takes its rounds and no more (`CALIBRATION_PRECISION`). On a quiet hour
of a 2-core AMD EPYC (2026-11-30) two back-to-back sweeps of the 45 published members agreed within 10% on 98% of
them after five rounds as after ten; on a busy hour, on 80-87% after five and on 96-100% after ten (docs/bench.md).

This module needs only the standard library and numpy (and ONNX Runtime or OpenVINO to load a file). The library
times its sweeps of ONNX files by running it as a process of its own (`mobilenet.bench.timing`: a process that
only times can give all its ONNX Runtime sessions one thread pool), and `mobilenet calibrate --kit DIR` copies it
verbatim into a calibration kit: on the device, `python mobilenet_runner.py DIR --backend onnx --device "my board"`
times the kit's models and writes the measurements file that `mobilenet select --device FILE` calibrates its
latency model from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

FORMAT = 1  # of the kit and of the measurements file
KIT_FILE = "kit.json"
ROUNDS = 5  # interleaved rounds of a sweep
BLOCK_S = 0.05  # seconds of calls per model per round
PRECISION = 0.03  # the relative standard error of a model's median ratio above this: measured again
# A calibration takes `ROUNDS` rounds and no more: its error is the machine's drift between it and the sweeps that use
# it, not its rounds' noise; re-timing to `PRECISION` cost 20-28 s of the main job's calibration and moved the models'
# scores by less than the runs' own noise (2026-12-01, docs/bench.md). Precision 1 (a 100% standard error) is never
# exceeded: nothing is measured again.
CALIBRATION_PRECISION = 1.0
SETTLE_S = 0.02  # pause before each block: runtimes' idle worker threads spin for a while after a call
WARM_CALLS = 3  # untimed calls at the start of each block
RETRIES = 1  # at most this many extra passes of `ROUNDS` rounds for the imprecise ones (10 rounds in all)
RUNTIMES = {
    "onnx": ("onnxruntime", "f32"),
    "onnx-int8": ("onnxruntime", "f32"),
    "openvino": ("openvino", "f32"),
    "openvino-bf16": ("openvino", "bf16"),
    "openvino-int8": ("openvino", "f32"),
}


def _calls_per_block(run: Callable[[], object], block_s: float) -> int:
    """Warm `run` up (at least 3 calls and 0.05 s) and size a block of calls to about `block_s` seconds."""
    started, done = time.perf_counter(), 0
    while done < 3 or time.perf_counter() - started < 0.05:
        run()
        done += 1
    per_call = (time.perf_counter() - started) / done
    return max(3, round(block_s / per_call))


def _block_ms(run: Callable[[], object], calls: int) -> float:
    time.sleep(SETTLE_S)  # let the previous model's worker threads stop spinning
    for _ in range(WARM_CALLS):  # after another model ran, the first calls find cold caches and sleeping threads
        run()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _spread(values: list[float]) -> float:
    return float(np.percentile(values, 90) / np.percentile(values, 10))


def time_rounds(
    runners: dict[str, Callable[[], object]],
    reference: str,
    rounds: int = ROUNDS,
    block_s: float = BLOCK_S,
    seed: int = 0,
    precision: float = PRECISION,
    retries: int = RETRIES,
    level_ms: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, object]]:
    """Time every runner of `runners` (zero-argument callables) in interleaved rounds against `reference` (a key of
    `runners`), as the module docstring says. Returns, per key: `median_ms` (its median ratio times the reference's
    level: `level_ms` when given, else the reference's median in this sweep), `ratio` (its median ratio to the
    reference beside it), `p10_ms`, `p90_ms` and `spread` (p90 / p10) of its scaled round figures, `uncertainty`
    (the relative standard error of its median ratio), `runs` (timed calls), `rounds_ms` (its block median per
    round) and `reference_ms` (the reference's beside it). `progress(done, total)` is called after each round."""
    if reference not in runners:
        raise ValueError(f"the reference {reference!r} is not among the runners")
    if rounds < 3:
        raise ValueError(f"need at least 3 rounds, got {rounds}")
    rng = random.Random(seed)
    calls = {key: _calls_per_block(run, block_s) for key, run in runners.items()}
    reference_calls = max(3, calls[reference] // 4)  # a short block of the reference between any two others
    own: dict[str, list[float]] = {key: [] for key in runners}
    beside: dict[str, list[float]] = {key: [] for key in runners}
    blocks: list[float] = []  # every block of the reference
    pending = [key for key in runners if key != reference]
    total, done = rounds, 0
    for attempt in range(retries + 1):
        for _ in range(rounds):
            rng.shuffle(pending)
            before = _block_ms(runners[reference], reference_calls)
            blocks.append(before)
            for key in pending:
                own[key].append(_block_ms(runners[key], calls[key]))
                after = _block_ms(runners[reference], reference_calls)
                blocks.append(after)
                beside[key].append((before + after) / 2)
                before = after
            done += 1
            if progress is not None:
                progress(done, total)
        if attempt == retries:
            break
        pending = [key for key in pending if _uncertainty(_ratios(own[key], beside[key])) > precision]
        if not pending:
            break
        total += rounds
    own[reference] = beside[reference] = blocks
    level = statistics.median(blocks) if level_ms is None else level_ms
    out = {}
    for key in runners:
        ratios = _ratios(own[key], beside[key])
        scaled = [r * level for r in ratios]
        out[key] = {
            "median_ms": statistics.median(scaled),
            "ratio": statistics.median(ratios),
            "p10_ms": float(np.percentile(scaled, 10)),
            "p90_ms": float(np.percentile(scaled, 90)),
            "spread": _spread(ratios) if key != reference else _spread(blocks),
            "uncertainty": _uncertainty(ratios) if key != reference else _uncertainty(blocks),
            "runs": (calls[key] if key != reference else reference_calls) * len(own[key]),
            "rounds_ms": [round(v, 4) for v in own[key]],
            "reference_ms": [round(v, 4) for v in beside[key]] if key != reference else [],
        }
    out[reference]["median_ms"] = level
    out[reference]["sweep_median_ms"] = statistics.median(blocks)
    return out


def _uncertainty(ratios: list[float]) -> float:
    """The relative standard error of the median of `ratios`: 1.25 sigma / sqrt(n), the median's for normal errors,
    with sigma the spread of their logarithms estimated robustly (1.4826 median absolute deviations: one block that a
    burst of other work slowed does not count as the whole machine's noise)."""
    logs = np.log(ratios)
    sigma = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    return 1.2533 * sigma / len(ratios) ** 0.5


def _ratios(own: list[float], ref: list[float]) -> list[float]:
    return [a / b for a, b in zip(own, ref, strict=True)]


def onnxruntime_runner(path: str | os.PathLike, threads: int, batch: int = 1) -> Callable[[], object]:
    """A zero-argument callable running the ONNX file at `path` once in ONNX Runtime's CPU provider on a fixed
    random batch of its input shape."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if _share_threads(ort, threads):
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    feed = {spec.name: _batch(spec.shape, batch)}
    return lambda: session.run(None, feed)


_SHARED_THREADS: list[int] = []  # the size of this process's one ONNX Runtime thread pool, once made


def _share_threads(ort, threads: int) -> bool:
    """Give every ONNX Runtime session of this process one pool of `threads` threads (made on the first call; True
    when the sessions are to use it). A sweep loads dozens of sessions, and each session's own pool spins after
    each call: with per-session pools the same models' round figures spread 2-5x (p90 / p10) on a 2-core machine,
    with one shared pool 1.3-1.5x, as a deployed process running one session sees them (docs/bench.md). ONNX Runtime
    makes the shared pool process-wide and refuses per-session pools after it, so only a process that does nothing
    but time (this runner's) may ask for it. Runtimes without it keep per-session pools."""
    make = getattr(getattr(ort.capi, "_pybind_state", None), "set_global_thread_pool_sizes", None)
    if make is None:
        return False
    if not _SHARED_THREADS:
        make(threads, 1)
        _SHARED_THREADS.append(threads)
    if _SHARED_THREADS[0] != threads:
        raise ValueError(f"this process's ONNX Runtime threads are {_SHARED_THREADS[0]}; cannot time with {threads}")
    return True


def openvino_runner(path: str | os.PathLike, threads: int, precision: str = "f32", batch: int = 1):
    """A zero-argument callable running the ONNX file at `path` once in OpenVINO on this CPU, compiled for `batch`
    at inference precision `precision` ("f32" or "bf16")."""
    return openvino_request(path, threads, precision, batch).infer


def openvino_request(path: str | os.PathLike, threads: int, precision: str = "f32", batch: int = 1, **config):
    """The OpenVINO infer request `openvino_runner` calls, its input set; `config`: more properties to compile with
    (e.g. PERF_COUNT=True for per-node counters)."""
    import openvino

    core = openvino.Core()
    model = core.read_model(str(path))
    shape = list(model.inputs[0].get_partial_shape().get_min_shape())
    model.reshape([batch, *shape[1:]])
    config |= {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    request.set_input_tensor(openvino.Tensor(_batch([batch, *shape[1:]], batch)))
    return request


def _batch(shape, batch: int) -> np.ndarray:
    dims = [batch if not isinstance(d, int) or d < 1 else d for d in shape]
    dims[0] = batch
    return np.random.default_rng(0).standard_normal(dims).astype(np.float32)


def load_runner(path: str | os.PathLike, backend: str, threads: int, batch: int = 1) -> Callable[[], object]:
    """The runner of `backend` (a name of `RUNTIMES`) for the file at `path`."""
    if backend not in RUNTIMES:
        raise ValueError(f"backend must be one of {', '.join(RUNTIMES)}, got {backend!r}")
    runtime, precision = RUNTIMES[backend]
    if runtime == "onnxruntime":
        return onnxruntime_runner(path, threads, batch)
    return openvino_runner(path, threads, precision, batch)


def runtime_version(backend: str) -> str:
    """The version of the runtime `backend` runs in, e.g. "onnxruntime 1.20.1"."""
    runtime = RUNTIMES[backend][0]
    module = __import__(runtime)
    return f"{runtime} {getattr(module, '__version__', '?')}"


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_all(members, kit: Path, artifact: str, backend: str, threads: int, log) -> dict[str, Callable[[], object]]:
    """Every member's runner, by key, in the manifest's order. The first is loaded alone (it makes the process's
    ONNX Runtime pool, `_share_threads`), the rest on as many threads as the CPU has: compiling is most of loading
    (OpenVINO int8: 11.6 s for the 13 calibration members on one thread, 6.4 s on two; 2-core AMD EPYC, 2026-11-30),
    and nothing is timed yet."""

    def path(member) -> Path:
        return kit / member["folder"] / artifact

    runners = {members[0]["key"]: load_runner(path(members[0]), backend, threads)}
    log(f"loaded 1/{len(members)}: {members[0]['label']}")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = {pool.submit(load_runner, path(member), backend, threads): member for member in members[1:]}
        for n, future in enumerate(as_completed(futures), 2):
            runners[futures[future]["key"]] = future.result()
            log(f"loaded {n}/{len(members)}: {futures[future]['label']}")
    return {member["key"]: runners[member["key"]] for member in members}


def measure_kit(
    kit: str | os.PathLike,
    backend: str,
    threads: int,
    device: str,
    rounds: int = ROUNDS,
    log: Callable[[str], None] = lambda message: None,
    precision: float = CALIBRATION_PRECISION,
) -> dict[str, object]:
    """Time every model of the calibration kit `kit` (its folder, or a manifest file naming folders beside it) with
    `backend`: the measurements document."""
    manifest_path = Path(kit) if Path(kit).is_file() else Path(kit) / KIT_FILE
    kit = manifest_path.parent
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{kit} is not a calibration kit ({manifest_path.name}: {error})") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path} has format {manifest.get('format')!r}; this runner reads {FORMAT}")
    artifact = manifest["artifacts"].get(backend)
    if artifact is None:
        raise ValueError(f"the kit has no files for {backend}; it was made for {', '.join(manifest['artifacts'])}")
    runners = _load_all(manifest["members"], kit, artifact, backend, threads, log)
    log(f"timing {len(runners)} models in interleaved rounds")
    started = time.perf_counter()
    results = time_rounds(
        runners,
        manifest["reference"],
        rounds=rounds,
        precision=precision,
        progress=lambda done, total: log(f"round {done}/{total}"),
    )
    return {
        "format": FORMAT,
        "kind": "mobilenet latency measurements",
        "device": device,
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "backend": backend,
        "runtime": runtime_version(backend),
        "threads": threads,
        "batch": 1,
        "reference": manifest["reference"],
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "seconds": round(time.perf_counter() - started, 1),
        "members": {
            member["key"]: {"config": member["config"], "resolution": member["resolution"], **results[member["key"]]}
            for member in manifest["members"]
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mobilenet_runner.py",
        description="Time a mobilenet calibration kit on this device (needs numpy and ONNX Runtime or OpenVINO) and "
        "write the measurements file that `mobilenet select --device FILE` reads.",
    )
    parser.add_argument(
        "kit",
        nargs="?",
        default=str(Path(__file__).resolve().parent),
        help="the kit's folder or manifest file (default: this file's folder)",
    )
    parser.add_argument("--backend", default="onnx", choices=tuple(RUNTIMES), help="runtime and precision")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads (default: all)")
    parser.add_argument("--device", default=platform.node() or "device", help="the device's name, for the labels")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (default %(default)s)")
    parser.add_argument(
        "--precision",
        type=float,
        default=CALIBRATION_PRECISION,
        help="re-time a model whose median is known less well than this relative standard error, up to "
        f"{RETRIES} times (default %(default)s: a fixed number of rounds, as the library calibrates; "
        f"e.g. {PRECISION})",
    )
    parser.add_argument("--out", help="the measurements file (default: measurements-<device>-<backend>.json)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.rounds < 3:
        parser.error(f"--rounds must be >= 3, got {args.rounds}")
    if not args.precision > 0:
        parser.error(f"--precision must be > 0, got {args.precision}")
    try:
        document = measure_kit(
            args.kit,
            args.backend,
            args.threads,
            args.device,
            args.rounds,
            log=lambda message: print(message, file=sys.stderr, flush=True),
            precision=args.precision,
        )
    except (ValueError, ImportError, OSError) as error:
        print(f"mobilenet_runner: error: {error}", file=sys.stderr)
        return 2
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.device)
    out = Path(args.out or f"measurements-{safe}-{args.backend}.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}: {len(document['members'])} models, {document['seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
