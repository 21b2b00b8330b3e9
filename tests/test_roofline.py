"""Roofline: the arithmetic of the model, the sources' claim that depthwise layers are memory-bound, the probe."""

import math

import pytest
import torch

from mobilenet.cost import profile
from mobilenet.cost.roofline import HardwareProfile, probe, roofline

CPU = HardwareProfile.given(peak_gmacs=90.0, bandwidth_gbs=60.0, threads=2)  # this machine's order of magnitude


def test_each_layer_takes_the_slower_of_arithmetic_and_traffic():
    report = profile("mobilenet_v2")
    roof = roofline(report, CPU)
    for layer, row in zip(report.layers, roof.rows, strict=True):
        expected = max(layer.macs / 90e9, layer.bytes / 60e9) * 1e3
        assert row.predicted_ms == pytest.approx(expected)
        assert row.bound == ("memory" if layer.intensity < CPU.ridge else "compute")
        assert row.attainable_macs_per_s == pytest.approx(min(90e9, layer.intensity * 60e9))
    elements = sum(report.elementwise.values())
    assert roof.elementwise_ms == pytest.approx(elements * 2 * 4 / 60e9 * 1e3)
    assert roof.predicted_ms == pytest.approx(sum(r.predicted_ms for r in roof.rows) + roof.elementwise_ms)


def test_depthwise_layers_are_memory_bound_and_wide_pointwise_layers_compute_bound():
    """The sources' claim, on V1: a 3x3 depthwise conv does ~9/8 MACs per fp32 byte, below the ridge of any CPU."""
    report = profile("mobilenet_v1")
    depthwise = [la for la in report.layers if la.kind == "depthwise"]
    pointwise = [la for la in report.layers if la.kind == "pointwise"]
    assert max(la.intensity for la in depthwise) <= 9 / 8
    assert min(la.intensity for la in pointwise) > 5  # 10-28 MAC/byte from 28x28 on; 5.3 for the first, 32 -> 64
    rows = {row.name: row for row in roofline(report, CPU).rows}
    assert all(rows[la.name].bound == "memory" for la in depthwise)
    assert all(rows[la.name].bound == "compute" for la in pointwise)


def test_roofline_json():
    data = roofline(profile("mobilenet_v3_small", resolution=128), CPU).to_dict()
    assert data["hardware"]["ridge_macs_per_byte"] == pytest.approx(1.5)
    assert set(data["by_bound"]) <= {"memory", "compute"}
    assert len(data["layers"]) == len(profile("mobilenet_v3_small", resolution=128).layers)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf])
def test_hardware_profile_rejects_nonsense(bad):
    with pytest.raises(ValueError, match="positive finite"):
        HardwareProfile.given(peak_gmacs=bad, bandwidth_gbs=10)
    with pytest.raises(ValueError, match="positive finite"):
        HardwareProfile.given(peak_gmacs=10, bandwidth_gbs=bad)


def test_probe_measures_and_restores_threads():
    threads = torch.get_num_threads()
    hw = probe(threads=1, repeats=1)
    assert torch.get_num_threads() == threads
    assert hw.threads == 1
    assert hw.source.startswith("measured")
    assert math.isfinite(hw.peak_macs_per_s)
    assert hw.peak_macs_per_s > 1e8
    assert math.isfinite(hw.bandwidth_bytes_per_s)
    assert hw.bandwidth_bytes_per_s > 1e8
