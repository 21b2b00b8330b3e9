"""Roofline analysis: which layers are limited by arithmetic and which by memory traffic, and what that predicts.

A layer moving B bytes and doing M multiply-adds on a machine with peak P (MACs/s) and bandwidth W (bytes/s)
takes at least max(M / P, B / W): it is memory-bound when its arithmetic intensity M / B is below the machine's
ridge point P / W. Depthwise convolutions do ~k^2 / 8 MACs per byte in fp32 and sit far below the ridge of any
CPU; 1x1 convolutions on wide layers sit above it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mobilenet._io import InputError
from mobilenet.cost.count import CostReport

_BYTES_PER_ELEMENT_ELEMENTWISE = 2  # an element-wise op reads and writes each element once


@dataclass(frozen=True)
class HardwareProfile:
    """Peak multiply-add rate and memory bandwidth of a machine, measured by `probe` or given by the user."""

    peak_macs_per_s: float
    bandwidth_bytes_per_s: float
    threads: int
    source: str  # "measured: <how>" or "given"
    machine: str = ""

    def __post_init__(self) -> None:
        for field in ("peak_macs_per_s", "bandwidth_bytes_per_s"):
            value = getattr(self, field)
            if not isinstance(value, int | float) or not value > 0 or value != value or value == float("inf"):
                raise InputError(f"{field} must be a positive finite number, got {value!r}")

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (MACs per byte) where a layer turns from memory- to compute-bound."""
        return self.peak_macs_per_s / self.bandwidth_bytes_per_s

    @classmethod
    def given(cls, peak_gmacs: float, bandwidth_gbs: float, threads: int | None = None) -> HardwareProfile:
        return cls(peak_gmacs * 1e9, bandwidth_gbs * 1e9, threads or torch.get_num_threads(), "given")

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ridge_macs_per_byte": self.ridge}


def machine_id() -> str:
    """A short description of this machine for caches and reports: CPU model, cores, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} | {os.cpu_count()} cpus | torch {torch.__version__}"


def probe(threads: int | None = None, repeats: int = 5) -> HardwareProfile:
    """Measure this machine in about a second: the best of `repeats` fp32 matrix products (peak MACs/s) and of
    `repeats` copies of a 128 MiB buffer (bandwidth: bytes read + written per second), on `threads` threads."""
    previous = torch.get_num_threads()
    threads = threads or previous
    torch.set_num_threads(threads)
    try:
        n = 1024
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm-up: thread pool and caches
        best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
        peak = n**3 / best
        src = torch.empty(32 * 2**20)  # 128 MiB, far beyond any cache
        dst = torch.empty_like(src)
        dst.copy_(src)
        best = min(_timed(lambda: dst.copy_(src)) for _ in range(repeats))
        bandwidth = 2 * src.numel() * src.element_size() / best
    finally:
        torch.set_num_threads(previous)
    how = f"measured: best of {repeats} 1024^3 fp32 matmuls and 128 MiB copies, {threads} threads"
    return HardwareProfile(peak, bandwidth, threads, how, machine_id())


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class RooflineRow:
    name: str
    kind: str
    macs: int
    bytes: int
    intensity: float  # MACs per byte
    attainable_macs_per_s: float  # min(peak, intensity * bandwidth)
    predicted_ms: float
    bound: str  # "memory" or "compute"


@dataclass(frozen=True)
class Roofline:
    """Per-layer roofline of one model on one machine, and the network's predicted latency."""

    report: CostReport
    hardware: HardwareProfile
    rows: tuple[RooflineRow, ...]
    elementwise_ms: float  # BN, activations, SE scaling, adds, pools, as pure memory traffic

    @property
    def predicted_ms(self) -> float:
        return sum(row.predicted_ms for row in self.rows) + self.elementwise_ms

    def by_bound(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for row in self.rows:
            entry = totals.setdefault(row.bound, {"layers": 0, "macs": 0, "predicted_ms": 0.0})
            entry["layers"] += 1
            entry["macs"] += row.macs
            entry["predicted_ms"] += row.predicted_ms
        return totals

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.report.name,
            "resolution": self.report.resolution,
            "hardware": self.hardware.to_dict(),
            "predicted_ms": self.predicted_ms,
            "elementwise_ms": self.elementwise_ms,
            "by_bound": self.by_bound(),
            "layers": [asdict(row) for row in self.rows],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def roofline(report: CostReport, hardware: HardwareProfile) -> Roofline:
    """The roofline of every conv and linear layer of `report` on `hardware`.

    Element-wise work (BN, activations, ...) is added as memory traffic: each element read and written once at the
    report's bytes per element. This is the model an unfused eager runtime follows; a runtime that folds BN and
    fuses activations into the convolution does less.
    """
    rows = []
    for layer in report.layers:
        attainable = min(hardware.peak_macs_per_s, layer.intensity * hardware.bandwidth_bytes_per_s)
        seconds = max(layer.macs / hardware.peak_macs_per_s, layer.bytes / hardware.bandwidth_bytes_per_s)
        rows.append(
            RooflineRow(
                name=layer.name,
                kind=layer.kind,
                macs=layer.macs,
                bytes=layer.bytes,
                intensity=layer.intensity,
                attainable_macs_per_s=attainable,
                predicted_ms=seconds * 1e3,
                bound="memory" if layer.intensity < hardware.ridge else "compute",
            )
        )
    elements = sum(report.elementwise.values())
    traffic = elements * _BYTES_PER_ELEMENT_ELEMENTWISE * report.bytes_per_element
    return Roofline(report, hardware, tuple(rows), traffic / hardware.bandwidth_bytes_per_s * 1e3)
