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

Threads: `threads` intra-op threads for PyTorch and ONNX Runtime alike (default: every core torch sees).
Warm-up: at least `warmup` calls and at least 0.2 s, so that allocators, caches and lazy initialisation settle.
Timing: calls in blocks of 10 until at least `min_runs` calls and `min_time_s` seconds, at most `max_runs`; reported
are the median, p10 and p90 (not the mean: one descheduled call can double it). Noise: the spread p90/p10 is
reported with every figure; a spread above `NOISY_SPREAD` (1.5) means the machine was busy and the figure is not to
be trusted.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mobilenet._io import InputError
from mobilenet.bench import BACKENDS, MIN_RUNS, MIN_TIME_S
from mobilenet.deploy import export_onnx, fuse
from mobilenet.deploy.quantize import quantize_onnx
from mobilenet.deploy.runtime import OnnxModel
from mobilenet.model import build
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
    return Timing(float(statistics.median(ms)), float(np.percentile(ms, 10)), float(np.percentile(ms, 90)),
                  len(times), batch)  # fmt: skip


class _RandomCalibration:
    """Random images in the model's input shape, standing in for a dataset where only speed is measured."""

    def __init__(self, chans: int, size: int, n: int = 32) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, chans, size, size), dtype=torch.uint8, generator=generator)
        self.info = type("Info", (), {"channels": chans, "mean": (0.5,) * chans, "std": (0.25,) * chans})

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, indices, size=None):
        return self.images[indices], torch.zeros(len(indices), dtype=torch.long)


def onnx_files(
    model, resolution: int, directory: str | os.PathLike, int8: bool, portable: bool = False
) -> tuple[Path, Path | None]:
    """Export `model` (and quantize it, when `int8`) into `directory`; returns (fp32 path, int8 path or None)."""
    directory = Path(directory)
    fp32 = directory / "model.onnx"
    export_onnx(model, fp32, resolution)
    if not int8:
        return fp32, None
    chans = model.config.in_chans
    calibration = _RandomCalibration(chans, resolution)
    return fp32, quantize_onnx(fp32, directory / "model.int8.onnx", calibration, samples=32, portable=portable)


def onnx_call(model, batch: int = 1, seed: int = 0) -> Callable[[], object]:
    """A zero-argument callable that runs an `OnnxModel` once on a fixed random batch of its own input size."""
    shape = (batch, model.in_chans, model.input_size, model.input_size)
    feed = {model.input_name: torch.randn(shape, generator=torch.Generator().manual_seed(seed)).numpy()}

    def run() -> object:
        return model.session.run(None, feed)

    return run


def make_runner(
    model, backend: str, resolution: int, batch: int = 1, threads: int | None = None, workdir: str | None = None
) -> tuple[Callable[[], object], dict[str, object]]:
    """A zero-argument callable that runs `model` once on a random batch with `backend`, and facts about it
    (`size_mb` of the deployed file for the ONNX backends). ONNX files go to `workdir` (a temporary directory by
    default, removed when the runner is garbage-collected)."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
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
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))  # what onnx_call feeds the ONNX backends
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
    directory = holder.name if holder else workdir
    fp32, int8 = onnx_files(model, resolution, directory, backend.startswith("onnx-int8"), backend.endswith("portable"))
    path = int8 or fp32
    run_onnx = onnx_call(OnnxModel(path, threads=threads or torch.get_num_threads()), batch)
    facts["size_mb"] = path.stat().st_size / 1e6
    run_onnx.keep_alive = holder  # the files live as long as the runner
    return run_onnx, facts


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
