"""The latency harness: what it times, that every backend runs the same function, and the `bench` verb."""

import json
import shlex

import numpy as np
import pytest
import torch

import mobilenet
from mobilenet.bench import BACKENDS
from mobilenet.bench.latency import Timing, make_runner, time_calls


def test_time_calls_respects_its_bounds_and_orders_its_percentiles():
    calls = []
    timing = time_calls(lambda: calls.append(1), batch=4, warmup=3, min_runs=25, max_runs=40, min_time_s=0.0)
    assert 25 <= timing.runs <= 40
    assert timing.runs % 10 == 0
    assert len(calls) >= timing.runs + 3  # warm-up calls are not timed
    assert timing.p10_ms <= timing.median_ms <= timing.p90_ms
    assert timing.images_per_s == pytest.approx(4 / (timing.median_ms / 1e3))
    assert set(timing.to_dict()) >= {"median_ms", "p10_ms", "p90_ms", "images_per_s", "spread", "runs"}
    with pytest.raises(ValueError, match="min_runs"):
        time_calls(lambda: None, min_runs=0)


def test_spread_flags_a_noisy_measurement():
    assert Timing(1.0, 0.9, 1.1, 30, 1).spread < 1.5 < Timing(2.0, 1.0, 4.0, 30, 1).spread


@pytest.fixture(scope="module")
def model():
    net = mobilenet.create_model("mobilenet_v3_small", alpha=0.5, num_classes=10, small_input=True).eval()
    with torch.no_grad():  # non-trivial BN statistics, so that fusing them is tested too
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return net


def test_every_backend_computes_the_same_function(model, tmp_path):
    from mobilenet.deploy.backends import BACKENDS as TABLE
    from mobilenet.deploy.backends import supported

    outputs = {}
    for backend in BACKENDS:
        if backend == "compile" or supported(backend):
            continue  # compile: its first compile takes tens of seconds (the CLI test below); or not on this machine
        run, facts = make_runner(model, backend, resolution=32, batch=2, workdir=str(tmp_path))  # files shared
        result = run()
        outputs[backend] = np.asarray(result if hasattr(result, "shape") else result[0])
        assert facts["size_mb"] > 0  # the file it runs, written to the workdir: a checkpoint or an ONNX file
    reference = outputs["torch"]
    scale = np.abs(reference).max()
    for backend, output in outputs.items():
        if TABLE[backend].precision == "fp32":
            assert np.abs(output - reference).max() < 1e-4 * scale, backend
        else:  # int8: close, not equal
            assert np.corrcoef(output.ravel(), reference.ravel())[0, 1] > 0.9, backend
    assert {"torch-fused", "onnx", "onnx-int8", "onnx-int8-portable"} <= set(outputs)


def test_make_runner_rejects_bad_requests(model):
    with pytest.raises(ValueError, match="backend must be one of"):
        make_runner(model, "tensorrt", 32)
    with pytest.raises(ValueError, match="batch"):
        make_runner(model, "torch", 32, batch=0)
    with pytest.raises(ValueError, match="threads"):
        make_runner(model, "torch", 32, threads=0)


def test_bench_cli_json(capsys):
    from mobilenet.cli import main

    threads = torch.get_num_threads()
    try:
        code = main(
            [
                *shlex.split("bench mobilenet_v3_small --alpha 0.35 --resolution 64 --backend compile"),
                *shlex.split("--min-runs 10 --min-time 0 --json"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["backend"] == "compile"
    assert result["resolution"] == 64
    assert result["alpha"] == 0.35
    assert 0 < result["p10_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["runs"] >= 10


def test_bench_cli_bad_input(capsys):
    from mobilenet.cli import main

    assert main(["bench", "mobilenet_v2", "--resolution", "16"]) == 2
    assert "too small" in capsys.readouterr().err
    assert main(["bench", "mobilenet_v2", "--batch-size", "0"]) == 2
    assert "batch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "mobilenet_v2", "--backend", "tensorrt"])


def test_roofline_check_times_every_layer_the_roofline_predicts():
    from mobilenet.bench.layers import check_roofline
    from mobilenet.cost import profile
    from mobilenet.cost.roofline import HardwareProfile, roofline

    hardware = HardwareProfile.given(50, 20)
    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.35)
    roof = roofline(profile(model, resolution=64), hardware)
    check = check_roofline(model, roof, runs=3)
    assert [t.name for t in check.layers] == [row.name for row in roof.rows]
    assert all(t.measured_ms > 0 for t in check.layers)
    assert check.measured_ms > 0
    assert check.predicted_ms == roof.predicted_ms
    worst = check.worst(3)
    gaps = [abs(t.measured_ms - t.predicted_ms) for t in worst]
    assert gaps == sorted(gaps, reverse=True)
    assert max(abs(t.measured_ms - t.predicted_ms) for t in check.layers) == gaps[0]
    by_kind = check.by_kind()
    assert sum(row["layers"] for row in by_kind.values()) == len(check.layers)
    assert sum(row["measured_ms"] for row in by_kind.values()) == pytest.approx(
        sum(t.measured_ms for t in check.layers)
    )
    other = roofline(profile("mobilenet_v2", alpha=0.35, resolution=64), hardware)
    with pytest.raises(ValueError, match="not the model the roofline describes"):
        check_roofline(model, other, runs=1)


def test_profile_cli_measure_json(capsys):
    from mobilenet.cli import main

    assert (
        main(
            [
                *shlex.split("profile mobilenet_v3_small --alpha 0.35 --resolution 64 --measure --peak-gmacs 50"),
                *shlex.split("--bandwidth-gbs 20 --json"),
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["measured"]["measured_ms"] > 0
    assert len(data["measured"]["layers"]) == len(data["roofline"]["layers"])
