"""The roofline against reality: every conv and linear layer's predicted time beside its measured time.

The prediction is `mobilenet.cost.roofline` on the measured hardware profile: max(MACs / peak, bytes / bandwidth) per
layer, for eager fp32 PyTorch. The measurement runs the same eager model (NCHW, fp32, `torch.inference_mode`) with
each conv and linear layer timed from its forward pre-hook to its forward hook, and divides each layer's total by the
number of runs. The network's measured latency is taken without the hooks (`mobilenet.bench.latency.time_calls`),
because their own overhead is counted in the layer times.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mobilenet.bench.latency import make_runner, time_calls
from mobilenet.cost.count import CostReport, profile
from mobilenet.cost.roofline import HardwareProfile, Roofline, probe, roofline
from mobilenet.model import build
from mobilenet.resolve import ModelConfig
from mobilenet.specs import BASE_RESOLUTION


@dataclass(frozen=True)
class LayerTiming:
    name: str
    kind: str
    bound: str  # the roofline's verdict: "memory" or "compute"
    intensity: float
    predicted_ms: float
    measured_ms: float

    @property
    def ratio(self) -> float:
        """measured / predicted: above 1, the layer runs slower than the roofline allows."""
        return self.measured_ms / self.predicted_ms if self.predicted_ms else float("inf")


@dataclass(frozen=True)
class RooflineCheck:
    layers: tuple[LayerTiming, ...]
    predicted_ms: float  # the whole network, element-wise traffic included
    measured_ms: float  # the whole network, median, no profiler

    def worst(self, n: int = 5) -> list[LayerTiming]:
        """The layers where prediction and measurement disagree most, by the time the disagreement costs."""
        return sorted(self.layers, key=lambda t: -abs(t.measured_ms - t.predicted_ms))[:n]

    def by_kind(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for t in self.layers:
            entry = totals.setdefault(t.kind, {"layers": 0, "predicted_ms": 0.0, "measured_ms": 0.0})
            entry["layers"] += 1
            entry["predicted_ms"] += t.predicted_ms
            entry["measured_ms"] += t.measured_ms
        return totals

    def to_dict(self) -> dict[str, object]:
        return {
            "predicted_ms": self.predicted_ms,
            "measured_ms": self.measured_ms,
            "by_kind": self.by_kind(),
            "layers": [asdict(t) | {"ratio": t.ratio} for t in self.layers],
        }


@torch.inference_mode()
def measure_layers(model: nn.Module, resolution: int, runs: int = 20, warmup: int = 5) -> dict[str, float]:
    """Milliseconds per call of every conv and linear layer of `model` (eager, fp32, batch 1), by module name: the
    wall time from its forward pre-hook to its forward hook, summed over `runs` calls. PyTorch's CPU kernels return
    when their threads are done, so that span is the layer's. A profiler's range measures the same span with its own
    recording of every operator inside it (the hooks' times 0.80-0.93x its own here: docs/bench.md) and, from torch
    2.13, prints two lines on every start and stop."""
    model = model.eval()
    x = torch.randn(1, model.config.in_chans, resolution, resolution, generator=torch.Generator().manual_seed(0))
    started: dict[str, float] = {}
    spent: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):

            def enter(module, inputs, name=name):
                started[name] = time.perf_counter()

            def leave(module, inputs, output, name=name):
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started[name]

            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        for _ in range(warmup):
            model(x)
        spent.clear()
        for _ in range(runs):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: seconds * 1e3 / runs for name, seconds in spent.items()}


def check_roofline(model: nn.Module, roof: Roofline, runs: int = 20) -> RooflineCheck:
    """Measure `model` (the one `roof` was computed for) per layer and whole, beside the roofline's predictions."""
    resolution = roof.report.resolution
    measured = measure_layers(model, resolution, runs=runs)
    missing = [row.name for row in roof.rows if row.name not in measured]
    if missing:
        raise ValueError(f"the model has no layer(s) {missing[:3]}: it is not the model the roofline describes")
    layers = tuple(
        LayerTiming(row.name, row.kind, row.bound, row.intensity, row.predicted_ms, measured[row.name])
        for row in roof.rows
    )
    run, _ = make_runner(model, "torch", resolution)
    return RooflineCheck(layers, roof.predicted_ms, time_calls(run).median_ms)


@dataclass(frozen=True)
class MemberProfile:
    """What `mobilenet profile` shows of one member: its exact cost, and on request its roofline on a machine and
    each layer's measured time beside the prediction."""

    report: CostReport
    roofline: Roofline | None
    measured: RooflineCheck | None

    def to_dict(self) -> dict[str, object]:
        data = self.report.to_dict()
        if self.roofline is not None:
            data["roofline"] = self.roofline.to_dict()
        if self.measured is not None:
            data["measured"] = self.measured.to_dict()
        return data


def profile_member(
    config: ModelConfig,
    resolution: int = BASE_RESOLUTION,
    hardware: HardwareProfile | None = None,
    with_roofline: bool = False,
    measure: bool = False,
    threads: int | None = None,
) -> MemberProfile:
    """The cost of `config` at `resolution` (`mobilenet.cost.profile`); with `with_roofline`, `hardware` or
    `measure`, its roofline on `hardware` (probed here with `threads` when not given); with `measure`, every layer
    timed in eager PyTorch on this machine beside it (`check_roofline`)."""
    report = profile(config, resolution=resolution)
    roof = None
    if with_roofline or hardware is not None or measure:
        roof = roofline(report, hardware or probe(threads))
    check = None
    if measure:
        if threads:
            torch.set_num_threads(threads)
        check = check_roofline(build(config), roof)
    return MemberProfile(report, roof, check)
