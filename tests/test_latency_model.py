"""The latency model, the interleaved timing, the grid beyond the published members and the calibration kit that runs
where PyTorch is not installed."""

import json
import shlex
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

from mobilenet._io import InputError
from mobilenet.bench import latency_model as lm
from mobilenet.bench import runner, timing
from mobilenet.bench import select as sel
from mobilenet.bench.grid import NO_ACCURACY, grid_candidates, weights_mb
from mobilenet.bench.runner import time_rounds
from mobilenet.resolve import make_config

TRUE = np.array([0.05, 0.004, 0.006, 0.05, 0.06, 0.1, 0.4, 0.2, 0.3, 0.008, 0.003])  # ms per unit of each feature


def synthetic(config, resolution) -> float:
    return float(np.dot(lm.features(config, resolution), TRUE))


def test_the_fit_recovers_a_cost_the_features_explain_and_predicts_unseen_members():
    members = [(c, r, synthetic(c, r)) for c, r in lm.calibration_members()]
    model = lm.fit(members, "onnx", 2, "machine", "onnxruntime 1.0")
    assert model.fit_error < 1e-6
    published = sel.published_entries()
    assert not {(e.config, e.resolution) for e in published} & {(c, r) for c, r, _ in members}  # off the grid
    for entry in published:
        assert model.predict(entry.config, entry.resolution) == pytest.approx(synthetic(entry.config, entry.resolution))
    assert lm.LatencyModel.from_dict(json.loads(json.dumps(model.to_dict()))) == model


def test_unaligned_channels_are_a_feature_of_v1_at_odd_widths_only():
    unaligned = lm.FEATURES.index("unaligned_bytes")
    assert lm.features(make_config("mobilenet_v1", 0.3), 112)[unaligned] > 0  # channels 9, 19, 38, ...
    assert all(lm.features(e.config, e.resolution)[unaligned] == 0 for e in sel.published_entries())
    calibrated = [lm.features(c, r)[unaligned] > 0 for c, r in lm.calibration_members()]
    assert any(calibrated)  # its cost is pinned
    assert not all(calibrated)  # apart from the aligned layers' costs


def test_channels_off_avx512_blocks_are_a_feature_of_their_own():
    """Multiples of 8 but not of 16 (AVX-512's block): V2 0.35's 8, 24 and 56 channels; none in V1 1.0 (32 to 1024)."""
    half = lm.FEATURES.index("half_aligned_bytes")
    assert lm.features(make_config("mobilenet_v2", 0.35), 224)[half] > 0
    assert lm.features(make_config("mobilenet_v1", 1.0), 224)[half] == 0
    assert lm.features(make_config("mobilenet_v1", 0.3), 112)[half] == 0  # off multiples of 8: the other feature
    calibrated = [lm.features(c, r)[half] > 0 for c, r in lm.calibration_members()]
    assert any(calibrated)  # its cost is pinned
    assert not all(calibrated)


def test_the_fit_refuses_too_few_or_broken_measurements():
    members = [(c, r, 1.0) for c, r in lm.calibration_members()]
    with pytest.raises(InputError, match="at least 11 measured members"):
        lm.fit(members[:5], "onnx", 2, "m", "r")
    with pytest.raises(InputError, match="latency must be positive"):
        lm.fit([*members[:-1], (*members[-1][:2], float("nan"))], "onnx", 2, "m", "r")


def busy(ms: float):
    def run():
        end = time.perf_counter() + ms / 1e3
        while time.perf_counter() < end:
            pass

    return run


def test_rounds_interleave_and_give_ratios_to_the_reference():
    runners = {"ref": busy(0.5), "a": busy(1.0), "b": busy(2.0)}
    rows = time_rounds(runners, "ref", rounds=3, block_s=0.01, retries=0)
    assert rows["a"]["ratio"] == pytest.approx(2.0, rel=0.3)
    assert rows["b"]["ratio"] == pytest.approx(4.0, rel=0.3)
    assert len(rows["a"]["rounds_ms"]) == len(rows["a"]["reference_ms"]) == 3  # every round kept
    assert rows["b"]["median_ms"] == pytest.approx(rows["b"]["ratio"] * rows["ref"]["median_ms"], rel=0.2)
    fixed = time_rounds(runners, "ref", rounds=3, block_s=0.01, retries=0, level_ms=10.0)
    assert fixed["b"]["median_ms"] == pytest.approx(fixed["b"]["ratio"] * 10.0)  # scaled to a calibrated level
    with pytest.raises(ValueError, match="not among the runners"):
        time_rounds(runners, "missing")


def test_a_noisy_model_is_measured_again():
    state = {"n": 0}

    def erratic():
        state["n"] += 1
        busy(3.0 if state["n"] % 7 < 3 else 0.3)()

    rows = time_rounds({"ref": busy(0.3), "x": erratic}, "ref", rounds=3, block_s=0.005, retries=2, precision=1e-6)
    assert len(rows["x"]["rounds_ms"]) == 9  # imprecise after every pass: re-timed twice
    assert rows["x"]["uncertainty"] > 1e-6
    steady = time_rounds({"ref": busy(0.3), "x": busy(0.6)}, "ref", rounds=3, block_s=0.005, retries=2, precision=1.0)
    assert len(steady["x"]["rounds_ms"]) == 3  # known well enough after the first pass


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rounds", "2"], "--rounds must be >= 3"),
        (["--precision", "0"], "--precision must be > 0"),
        (["--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_the_runner_refuses_bad_settings_before_loading_anything(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        runner.main([str(tmp_path), *flags])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_uncertainty_is_the_standard_error_of_the_median_and_ignores_one_burst():
    assert runner._uncertainty([2.0] * 5) == 0.0
    rng = np.random.default_rng(0)
    logs = rng.normal(0.0, 0.05, size=(4000, 9))  # 9 rounds of 5% noise
    estimates = [runner._uncertainty(list(np.exp(row))) for row in logs]
    actual = float(np.std(np.median(logs, axis=1)))  # the spread of the median itself
    assert np.median(estimates) == pytest.approx(actual, rel=0.25)
    burst = runner._uncertainty([1.0, 1.01, 0.99, 1.0, 3.0])  # one block slowed 3x by other work
    assert burst < 0.02


def test_onnx_files_are_timed_in_a_process_of_their_own_and_scaled_to_the_calibrated_level(monkeypatch, tmp_path):
    import onnxruntime as ort

    monkeypatch.setattr(lm, "CALIBRATION", TINY_CALIBRATION[:2])
    small, other = lm.calibration_members()
    rows = timing.time_pairs([(*other, "onnx")], 1, tmp_path, rounds=3, progress=False, levels={"onnx": 2.0})
    reference, row = rows[(lm.member_key(*small), "onnx")], rows[(lm.member_key(*other), "onnx")]
    assert reference["median_ms"] == pytest.approx(2.0)  # the reference's calibrated level
    assert row["median_ms"] == pytest.approx(row["ratio"] * 2.0)
    assert len(row["rounds_ms"]) >= 3
    (file,) = [path for path in tmp_path.glob("*/model.onnx") if path.stat().st_size / 1e6 == row["size_mb"]]
    assert (tmp_path / "sweep-onnx.json").is_file()
    assert (tmp_path / "measured-onnx.json").is_file()
    # the child's one shared thread pool stays in the child: this process still opens sessions of their own
    ort.InferenceSession(str(file), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    # a later sweep in the same folder builds no file again
    built = {path: path.stat().st_mtime_ns for path in tmp_path.glob("*/*.onnx")}
    timing.time_pairs([(*small, "onnx")], 1, tmp_path, rounds=3, progress=False)
    assert {path: path.stat().st_mtime_ns for path in tmp_path.glob("*/*.onnx")} == built


def test_the_runner_gives_a_process_one_onnxruntime_thread_pool(tmp_path):
    script = (
        "from mobilenet.bench import runner\n"
        f"run = runner.onnxruntime_runner({str(tmp_path / 'm.onnx')!r}, 1); run()\n"
        f"runner.onnxruntime_runner({str(tmp_path / 'm.onnx')!r}, 1)()\n"
        f"runner.onnxruntime_runner({str(tmp_path / 'm.onnx')!r}, 2)\n"
    )
    from mobilenet.deploy import export_onnx
    from mobilenet.model import build

    export_onnx(
        build(make_config("mobilenet_v3_small", alpha=0.25, num_classes=10)),
        tmp_path / "m.onnx",
        64,
        exporter="torchscript",
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1
    assert "this process's ONNX Runtime threads are 1; cannot time with 2" in done.stderr


def test_build_workers_run_pytorch_on_their_share_of_the_cores():
    import torch

    with timing._build_pool(1) as pool:
        assert {pool.submit(torch.get_num_threads).result() for _ in range(4)} == {1}
    with timing._build_pool(3) as pool:
        assert pool.submit(torch.get_num_threads).result() == 3


def fake_model(backend="onnx", scale=1.0):
    members = [(c, r, scale * synthetic(c, r)) for c, r in lm.calibration_members()]
    return lm.fit(members, backend, 1, "machine", "runtime 1", reference_ms=scale * synthetic(*members[0][:2]))


def test_predict_mode_uses_the_latency_model_and_says_so():
    entries = sel.published_entries()[:3]
    found = sel.survey(
        entries,
        ["onnx", "onnx-int8"],
        10,
        5,
        predict=True,
        progress=False,
        models={"onnx": fake_model(), "onnx-int8": fake_model("onnx-int8", 0.5)},
    )
    assert len(found) == 6
    assert all(not c.measured and c.latency_source.startswith("predicted: latency model here") for c in found)
    assert found[1].latency_ms == pytest.approx(0.5 * found[0].latency_ms)


def test_the_survey_measures_only_what_can_decide_the_pick(monkeypatch):
    """Most accurate first: too big by its weights alone, predicted far over budget, or below a measured fit, is not
    measured; the pick is a measured candidate of known accuracy, measured in one interleaved sweep per pass."""
    entries = [e for e in sel.published_entries() if e.name == "mobilenet_v2" and e.resolution == 224]
    sweeps = []

    def fake_time_pairs(pairs, threads, rounds=5, progress=True, levels=None, done=None):
        sweeps.append([(c.alpha, b) for c, _, b in pairs])
        return {
            (lm.member_key(c, r), b): {
                "median_ms": 2.0 * c.alpha,
                "p10_ms": 1.0,
                "p90_ms": 3.0,
                "spread": 1.1,
                "runs": 10,
                "size_mb": 4.0 * c.alpha**2 * (1 if b == "onnx-int8" else 4),
                "measured_at": "now",
                "rounds_ms": [1.0] * 5,
            }
            for c, r, b in pairs
        }

    monkeypatch.setattr(sel, "time_pairs", fake_time_pairs)
    models = {"onnx": fake_model(), "onnx-int8": fake_model("onnx-int8", 0.5)}
    found = sel.survey(entries, ["onnx", "onnx-int8"], 10, 5, progress=False, models=models)
    measured = [x for sweep in sweeps for x in sweep]
    assert (1.4, "onnx") not in measured  # 6 M weights: over 5 MB in fp32 before anything is built
    pick = sel.choose(found, 10, 5).pick
    assert pick.measured
    assert pick.accuracy is not None
    assert (pick.entry.alpha, pick.backend) == (1.0, "onnx-int8")  # 70.8% int8 fits: 4 MB
    assert not any(c.measured for c in found if c.accuracy is not None and c.accuracy < pick.accuracy)
    assert all(c.latency_source.startswith("predicted") for c in found if not c.measured)
    assert all(c.predicted_ms > 0 for c in found)  # the model's figure stays beside a measured one
    everything = sel.survey(entries, ["onnx"], 10, 5, progress=False, models=models, measure_all=True)
    assert all(c.measured for c in everything)


def test_a_stored_model_is_reused_and_a_new_runtime_calibrates_again(tmp_path, monkeypatch):
    calls = []

    def fake_calibrate(backends, threads, directory, progress):
        calls.append(list(backends))
        models = {b: fake_model(b) for b in backends}
        for b, m in models.items():
            lm.store_model(m, lm.model_path(directory, timing.machine_id(), b, timing.runtime_version(b), threads))
        return models

    monkeypatch.setattr(timing, "calibrate", fake_calibrate)
    timing.latency_models(["onnx"], 1, tmp_path, progress=False)
    timing.latency_models(["onnx"], 1, tmp_path, progress=False)
    assert calls == [["onnx"]]
    timing.latency_models(["onnx"], 2, tmp_path, progress=False)  # another thread count: its own model
    monkeypatch.setattr(timing, "runtime_version", lambda backend: "onnxruntime 99")
    timing.latency_models(["onnx"], 1, tmp_path, progress=False)  # another runtime version
    assert calls == [["onnx"], ["onnx"], ["onnx"]]
    monkeypatch.setattr(lm, "CALIBRATION", (lm.CALIBRATION[1], lm.CALIBRATION[0], *lm.CALIBRATION[2:]))
    timing.latency_models(["onnx"], 1, tmp_path, progress=False)  # another reference: its level would be wrong
    assert len(calls) == 4


def test_calibrate_times_with_the_rounds_and_precision_asked_for(tmp_path, monkeypatch, capsys):
    from mobilenet.cli import main

    asked = []

    def fake_time_pairs(pairs, threads, workdir=None, rounds=5, progress=True, precision=0.03):
        asked.append((rounds, precision))
        return {(lm.member_key(c, r), b): {"median_ms": synthetic(c, r)} for c, r, b in pairs}

    monkeypatch.setattr(timing, "time_pairs", fake_time_pairs)
    assert (
        main(
            [
                *shlex.split("calibrate --backend onnx --cache"),
                str(tmp_path),
                *shlex.split("--rounds 15 --precision 0.02 --threads 1 --quiet"),
            ]
        )
        == 0
    )
    assert asked == [(15, 0.02)]
    # by default, here and where select calibrates: the rounds and no more (a precision no median misses)
    assert main(["calibrate", "--backend", "onnx", "--cache", str(tmp_path), "--threads", "1", "--quiet"]) == 0
    timing.latency_models(["onnx"], 1, tmp_path, recalibrate=True, progress=False)
    assert asked[1:] == [(runner.ROUNDS, 1.0)] * 2
    assert f"calibrated on {len(lm.CALIBRATION)} members" in capsys.readouterr().out
    assert list(tmp_path.glob("latency-model-onnx-1t-*.json"))
    assert main(["calibrate", "--kit", str(tmp_path / "kit"), "--rounds", "15"]) == 2
    assert "give them to the runner on the device" in capsys.readouterr().err
    assert not (tmp_path / "kit").exists()  # refused before anything is written


def test_the_grid_predicts_with_the_models_stored_in_the_default_cache(monkeypatch):
    from mobilenet.bench.grid import search

    calls = []

    def fake_calibrate(backends, threads, directory, progress):
        calls.append(directory)
        models = {b: fake_model(b) for b in backends}
        for b, m in models.items():
            lm.store_model(m, lm.model_path(directory, timing.machine_id(), b, timing.runtime_version(b), threads))
        return models

    monkeypatch.setattr(timing, "calibrate", fake_calibrate)
    for _ in range(2):
        search(versions=["mobilenet_v3_small"], backends=["onnx"], threads=1, latency_ms=5, size_mb=3, progress=False)
    assert calls == [sel.cache_dir()]  # calibrated once, stored where select and report look


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_the_size_of_a_files_tensors_is_counted_exactly(tmp_path, backend):
    import onnx
    from onnx import numpy_helper

    from mobilenet.deploy.artifacts import build_artifact
    from mobilenet.model import build

    config = make_config("mobilenet_v3_small", 0.5)
    path = build_artifact(build(config).eval(), backend, 96, tmp_path, exporter="torchscript")
    stored = sum(numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)
    activation_scales = 0.001  # a scale and zero point per quantized activation: not a weight
    assert weights_mb(config, 96, backend) == pytest.approx(stored / 1e6, abs=activation_scales)


def test_the_grid_fits_the_budgets_and_invents_no_accuracy():
    models = {"onnx": fake_model()}
    found = grid_candidates(models, 5.0, 3.0, versions=("mobilenet_v1", "mobilenet_v3_small"), resolutions=(128, 224))
    assert found
    assert all(c.latency_ms <= 5.0 and c.size_mb <= 3.0 and not c.measured for c in found)
    assert all(c.accuracy is None and c.accuracy_source == NO_ACCURACY for c in found)
    for c in found:  # the widest: 0.01 wider does not fit (V1: the next width of aligned channels)
        step = 0.25 if c.entry.name == "mobilenet_v1" else 0.01
        assert c.entry.name != "mobilenet_v1" or round(c.entry.alpha / step, 6) == round(c.entry.alpha / step)
        wider = make_config(c.entry.name, round(c.entry.alpha + step, 2))
        over_latency = models["onnx"].predict(wider, c.entry.resolution) > 5.0
        assert over_latency or weights_mb(wider, c.entry.resolution, "onnx") > 3.0
    known = [sel.Entry(found[0].entry.config, found[0].entry.resolution, 61.0, "my results", sel.MEASURED)]
    again = grid_candidates(models, 5.0, 3.0, versions=("mobilenet_v1",), resolutions=(128,), known=known)
    assert again[0].accuracy == 61.0  # the user's result for that configuration


TINY_CALIBRATION = tuple(
    ("mobilenet_v3_small" if i % 2 else "mobilenet_v1", 0.25 + 0.05 * i, 64 + 8 * (i % 4), {})
    for i in range(len(lm.FEATURES))
)


def torch_free_python(tmp_path: Path) -> str:
    """A virtual environment holding numpy and onnxruntime only (linked from this one): no torch, no mobilenet."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    target = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    source = Path(sysconfig.get_paths()["purelib"])
    for name in ("numpy", "numpy.libs", "onnxruntime"):
        if (source / name).exists():
            (target / name).symlink_to(source / name)
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert "No module named 'torch'" in probe.stderr
    return python


def test_the_calibration_kit_runs_without_torch_and_select_takes_its_measurements(tmp_path, monkeypatch, capsys):
    from mobilenet.cli import main

    monkeypatch.setattr(lm, "CALIBRATION", TINY_CALIBRATION)
    kit = timing.write_kit(tmp_path / "kit", ("onnx",))
    assert (kit / "mobilenet_runner.py").is_file()
    python = torch_free_python(tmp_path)
    out = tmp_path / "board.json"
    done = subprocess.run(
        [
            python,
            str(kit / "mobilenet_runner.py"),
            *shlex.split("--backend onnx --device board --threads 1 --rounds 3 --out"),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["device"] == "board"
    assert len(document["members"]) == len(TINY_CALIBRATION)
    assert all(m["median_ms"] > 0 and len(m["rounds_ms"]) >= 3 for m in document["members"].values())
    model = lm.from_measurements(out)
    assert (model.device, model.backend) == ("board", "onnx")
    code = main(["select", "--device", str(out), "--latency-ms", "1000", "--size-mb", "100", "--json"])
    assert code == 0
    answer = json.loads(capsys.readouterr().out)
    assert all(not c["measured"] and "on board" in c["latency_source"] for c in answer["candidates"])
    assert answer["pick"]["backend"] == "onnx"


def test_a_bad_measurements_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lm.from_measurements(tmp_path / "none.json")
    (tmp_path / "x.json").write_text(json.dumps({"kind": "something else"}))
    with pytest.raises(InputError, match="not a measurements file"):
        lm.from_measurements(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"kind": "mobilenet latency measurements", "format": 1}))
    with pytest.raises(InputError, match="incomplete or malformed"):
        lm.from_measurements(tmp_path / "y.json")
