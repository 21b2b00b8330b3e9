"""Latency harness: one model, one backend, this machine.

What is timed: one call of the model on a batch already in memory, input preparation excluded, wall clock
(`time.perf_counter`). Backends:

- `torch`: eager PyTorch, NCHW, fp32, `torch.inference_mode()`.
- `torch-fused`: BatchNorm folded (`mobilenet.deploy.fuse`), channels_last.
- `compile`: `torch-fused` through `torch.compile` (inductor; its compile time is spent in warm-up, not timed).
- `onnx`: the model exported with `mobilenet.deploy.export_onnx`, run by ONNX Runtime's CPU provider.
- `onnx-int8`: that export quantized by `mobilenet.deploy.quantize.quantize_onnx` (QDQ, per-channel weights, uint8
  activations, h-swish and h-sigmoid lowered to ONNX Runtime's int8 operators). Calibration uses random images:
  latency does not depend on the calibration, accuracy does.
- `onnx-int8-portable`: the same with `portable=True` (standard ONNX operators only; h-swish and h-sigmoid run in
  float between DequantizeLinear and QuantizeLinear).
- `openvino`, `openvino-bf16`: the fp32 export compiled by OpenVINO for this CPU at f32 or bf16 inference precision,
  for the batch size in use; `openvino-int8`: the portable int8 file in OpenVINO (its int8 kernels).
  (`mobilenet.deploy.backends` describes each; `mobilenet.deploy.artifacts` builds and loads the files.)

Threads: `threads` intra-op threads for PyTorch and ONNX Runtime alike (default: every core torch sees).
Warm-up: at least `warmup` calls and at least 0.2 s, so that allocators, caches and lazy initialisation settle.
Timing: calls in blocks of 10 until at least `min_runs` calls and `min_time_s` seconds, at most `max_runs`; reported
are the median, p10 and p90 (not the mean: one descheduled call can double it). Noise: the spread p90/p10 is
reported with every figure; a spread above `NOISY_SPREAD` (1.5) means the machine was busy and the figure is not to
be trusted.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mobilenet._io import InputError
from mobilenet.bench import BACKENDS, MIN_RUNS, MIN_TIME_S, ROUNDS
from mobilenet.deploy.artifacts import build_artifact, load_artifact
from mobilenet.deploy.backends import REFERENCE_BACKEND, deploy_backends, supported
from mobilenet.deploy.folding import fuse
from mobilenet.deploy.runtime import OnnxModel, OpenVinoModel
from mobilenet.model import MobileNet, build
from mobilenet.resolve import ModelConfig
from mobilenet.specs import BASE_RESOLUTION

NOISY_SPREAD = 1.5  # p90 / p10 above this: the machine was busy while timing


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    batch: int

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.median_ms / 1e3)

    @property
    def spread(self) -> float:
        """p90 / p10: near 1 on a quiet machine."""
        return self.p90_ms / self.p10_ms if self.p10_ms > 0 else float("inf")

    @property
    def noisy(self) -> bool:
        return self.spread > NOISY_SPREAD

    def to_dict(self) -> dict[str, float]:
        return asdict(self) | {"images_per_s": self.images_per_s, "spread": self.spread}


def time_calls(
    run: Callable[[], object],
    batch: int = 1,
    warmup: int = 10,
    min_runs: int = MIN_RUNS,
    max_runs: int = 1000,
    min_time_s: float = MIN_TIME_S,
    block: int = 10,
) -> Timing:
    """Warm `run` up, then time it in blocks until enough calls and enough seconds (see the module docstring)."""
    if min_runs < 1 or max_runs < min_runs:
        raise InputError(f"need 1 <= min_runs <= max_runs, got {min_runs} and {max_runs}")
    started = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - started < 0.2:
        run()
        done += 1
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - started < min_time_s and len(times) < max_runs):
        for _ in range(block):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return Timing(
        float(statistics.median(ms)), float(np.percentile(ms, 10)), float(np.percentile(ms, 90)), len(times), batch
    )


def runtime_call(model: OnnxModel | OpenVinoModel, batch: int = 1, seed: int = 0) -> Callable[[], object]:
    """A zero-argument callable that runs a loaded ONNX file (ONNX Runtime or OpenVINO) once on a fixed random batch
    of its own input size; nothing but the runtime's own call is timed."""
    shape = (batch, model.in_chans, model.input_size, model.input_size)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy()
    if isinstance(model, OnnxModel):
        feed = {model.input_name: x}
        return lambda: model.session.run(None, feed)
    request = model.request(batch)
    request.set_input_tensor(model.tensor(x))
    return request.infer


def make_runner(
    model: MobileNet,
    backend: str,
    resolution: int,
    batch: int = 1,
    threads: int | None = None,
    workdir: str | None = None,
    exporter: str = "dynamo",
) -> tuple[Callable[[], object], dict[str, object]]:
    """A zero-argument callable that runs `model` once on a random batch with `backend`, and facts about it
    (`size_mb` of the file the backend runs). Files go to `workdir` (a temporary directory by default, removed
    when the runner is garbage-collected), exported by `exporter` (`mobilenet.deploy.export_onnx`'s)."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    reason = supported(backend)
    if reason:
        raise InputError(f"backend {backend}: {reason}")
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    model = model.eval()
    facts: dict[str, object] = {"backend": backend, "threads": threads or torch.get_num_threads()}

    if backend in ("torch", "torch-fused", "compile"):
        shape = (batch, model.config.in_chans, resolution, resolution)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))  # what runtime_call feeds the others
        if workdir is not None:  # the checkpoint these backends load: the model as given, not its fused form
            facts["size_mb"] = build_artifact(model, backend, resolution, workdir).stat().st_size / 1e6
        if backend != "torch":
            model = fuse(model).to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        if backend == "compile":
            model = torch.compile(model)

        def run() -> object:
            with torch.inference_mode():
                return model(x)

        return run, facts

    holder = tempfile.TemporaryDirectory() if workdir is None else None
    path = build_artifact(model, backend, resolution, holder.name if holder else workdir, exporter=exporter)
    run = runtime_call(load_artifact(path, backend, threads or torch.get_num_threads()), batch)
    facts["size_mb"] = path.stat().st_size / 1e6
    facts["file"] = path.name
    if holder is not None:
        run = _KeepAlive(run, holder)  # the files live as long as the runner
    return run, facts


class _KeepAlive:
    """A runner holding the temporary directory of its files, removed when the runner is garbage-collected."""

    def __init__(self, run: Callable[[], object], holder: tempfile.TemporaryDirectory) -> None:
        self.run, self.holder = run, holder

    def __call__(self) -> object:
        return self.run()


def measure(
    config: ModelConfig,
    resolution: int = BASE_RESOLUTION,
    backend: str = "torch",
    batch_size: int = 1,
    threads: int | None = None,
    min_runs: int = MIN_RUNS,
    min_time_s: float = MIN_TIME_S,
) -> tuple[Timing, dict[str, object]]:
    """The latency of the member `config` at `resolution` on this machine with `backend` (randomly initialized
    weights: speed does not depend on their values), and facts about the run (`backend`, `threads`, `size_mb`)."""
    model = build(config)
    model.check_input(torch.empty((batch_size, config.in_chans, resolution, resolution), device="meta"))
    run, facts = make_runner(model, backend, resolution, batch=batch_size, threads=threads)
    return time_calls(run, batch=batch_size, min_runs=min_runs, min_time_s=min_time_s), facts


def compare_backends(
    config: ModelConfig,
    resolution: int = BASE_RESOLUTION,
    backends: list[str] | None = None,
    batch_size: int = 1,
    threads: int | None = None,
    rounds: int = ROUNDS,
    block_s: float = 0.25,
) -> list[dict[str, object]]:
    """Every backend of `backends` (default: each deployment backend this machine supports) timed on the member
    `config` in one run, interleaved so that the machine's drift hits them alike: `rounds` rounds, each running a
    block of about `block_s` seconds of calls per backend, the order rotating from round to round. Returns one row
    per backend: `backend`, `median_ms`, `p10_ms`, `p90_ms`, `runs`, `size_mb` and `ratio` (the reference backend's
    median over this one's: above 1 is faster), fastest first."""
    names = deploy_backends(None) if not backends else list(backends)
    for name in names:
        reason = supported(name)
        if reason:
            raise InputError(f"backend {name}: {reason}")
    model = build(config).eval()
    model.check_input(torch.empty((batch_size, config.in_chans, resolution, resolution), device="meta"))
    with tempfile.TemporaryDirectory() as tmp:
        runners = {name: make_runner(model, name, resolution, batch_size, threads, workdir=tmp) for name in names}
        calls = {}
        for name, (run, _) in runners.items():  # warm up, and size each block to about block_s seconds
            started, done = time.perf_counter(), 0
            while done < 10 or time.perf_counter() - started < 0.2:
                run()
                done += 1
            calls[name] = max(5, round(block_s * done / (time.perf_counter() - started)))
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                run = runners[name][0]
                time.sleep(0.05)  # let the previous runtime's worker threads stop spinning
                for _ in range(calls[name]):
                    t0 = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - t0)
    rows = []
    for name in names:
        ms = np.array(times[name]) * 1e3
        rows.append(
            {
                "backend": name,
                "median_ms": float(np.median(ms)),
                "p10_ms": float(np.percentile(ms, 10)),
                "p90_ms": float(np.percentile(ms, 90)),
                "runs": len(ms),
                "rounds": rounds,
                **{k: v for k, v in runners[name][1].items() if k != "backend"},
            }
        )
    reference = next((row["median_ms"] for row in rows if row["backend"] == REFERENCE_BACKEND), None)
    for row in rows:
        row["ratio"] = reference / row["median_ms"] if reference else None
    return sorted(rows, key=lambda row: row["median_ms"])
