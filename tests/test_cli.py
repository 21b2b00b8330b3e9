"""The command line: verbs, JSON output, exit code 2 on bad usage."""

import json

import pytest

from mobilenet.cli import main
from mobilenet.weights import load
from tests.conftest import FIXTURES


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_family_lists_every_version(capsys):
    code, out, _ = run(capsys, "family")
    assert code == 0
    for name in ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]:
        assert name in out
    assert "3,504,872" in out


def test_family_json(capsys):
    code, out, _ = run(capsys, "family", "--json")
    rows = json.loads(out)
    assert code == 0
    v2 = {row["alpha"]: row["params"] for row in rows if row["name"] == "mobilenet_v2"}
    assert v2[1.0] == 3_504_872
    assert set(v2) == {1.4, 1.3, 1.0, 0.75, 0.5, 0.35}


def test_convert_writes_a_loadable_file(capsys, tmp_path):
    out_path = tmp_path / "v3s.safetensors"
    source = FIXTURES / "torchvision_mobilenet_v3_small_w0.75_c10.safetensors"
    code, out, err = run(
        capsys,
        "convert",
        str(source),
        "--arch",
        "mobilenet_v3_small",
        "--alpha",
        "0.75",
        "--prefix",
        "state.",
        "--out",
        str(out_path),
    )
    assert code == 0, err
    assert "10 classes" in out
    assert load(out_path).config.alpha == 0.75


def test_convert_bad_input_exits_2(capsys, tmp_path):
    source = FIXTURES / "torchvision_mobilenet_v2_w0.5_c10.safetensors"
    code, _, err = run(
        capsys, "convert", str(source), "--arch", "mobilenet_v2", "--prefix", "state.", "--out", str(tmp_path / "x")
    )
    assert code == 2
    assert "wrong arch or alpha" in err
    assert not (tmp_path / "x").exists()


def test_unknown_verb_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fly"])
    assert info.value.code == 2


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "family" in capsys.readouterr().out


def test_family_has_macs_and_receptive_field(capsys):
    code, out, _ = run(capsys, "family", "--json")
    assert code == 0
    rows = json.loads(out)
    v2 = next(r for r in rows if r["name"] == "mobilenet_v2" and r["alpha"] == 1.0 and r["resolution"] == 224)
    assert v2["macs"] == 300_774_272
    assert v2["receptive_field"] == 491
    assert {r["resolution"] for r in rows if r["name"] == "mobilenet_v1"} == {224, 192, 160, 128}


def test_profile_json(capsys):
    code, out, _ = run(capsys, "profile", "mobilenet_v1", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["macs"] == 568_740_352
    assert len(data["layers"]) == 28


def test_profile_by_layer_with_given_roofline(capsys):
    code, out, _ = run(
        capsys,
        "profile",
        "mobilenet_v3_small",
        "--alpha",
        "0.75",
        "--resolution",
        "160",
        "--by-layer",
        "--peak-gmacs",
        "100",
        "--bandwidth-gbs",
        "20",
    )
    assert code == 0
    assert "blocks.0.se.reduce" in out
    assert "memory" in out
    assert "compute" in out
    assert "(given)" in out


def test_profile_by_kind_default(capsys):
    code, out, _ = run(capsys, "profile", "mobilenet_v2", "--alpha", "0.5", "--small-input", "--resolution", "32")
    assert code == 0
    assert "pointwise" in out
    assert "depthwise" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["profile", "mobilenet_v2", "--peak-gmacs", "10"], "give both"),
        (["profile", "mobilenet_v2", "--resolution", "8"], "too small"),
        (["profile", "mobilenet_v1", "--t", "4"], "unexpected keyword"),
        (["profile", "mobilenet_v2", "--alpha", "-1"], "alpha"),
    ],
)
def test_profile_bad_usage_exits_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "mobilenet_v2", "--threads", "-1"],
        ["bench", "mobilenet_v2", "--threads", "0"],
        ["bench", "mobilenet_v2", "--batch-size", "-5"],
        ["bench", "mobilenet_v2", "--min-runs", "0"],
        ["bench", "mobilenet_v2", "--min-time", "nan"],
        ["profile", "mobilenet_v2", "--resolution", "0"],
        ["profile", "mobilenet_v2", "--peak-gmacs", "-3", "--bandwidth-gbs", "10"],
        ["eval", "weights/mobilenet_v2_1.0_fashion_mnist.safetensors", "--batch-size", "-5"],
        ["eval", "weights/mobilenet_v2_1.0_fashion_mnist.safetensors", "--image-size", "0"],
        ["predict", "x.png", "--weights", "m.onnx", "--top-k", "0"],
        ["select", "--latency-ms", "inf"],
        ["report", "--size-mb", "-1"],
        ["quantize", "m.onnx", "--out", "q.onnx", "--samples", "0"],
        ["export", "weights/mobilenet_v2_1.0_fashion_mnist.safetensors", "--out", "m.onnx", "--resolution", "0"],
        ["family", "--num-classes", "0"],
        ["train", "--out", "run", "--padding", "-1"],
        ["train", "--out", "run", "--threads", "0"],
    ],
)
def test_a_value_out_of_range_exits_2_with_one_line_before_any_work(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("mobilenet ")
    assert "must be" in err
    assert list(tmp_path.iterdir()) == []  # nothing written


V2_WEIGHTS = "weights/mobilenet_v2_1.0_fashion_mnist.safetensors"


@pytest.mark.parametrize("verb", ["export", "convert", "quantize", "report", "eval"])
@pytest.mark.parametrize("problem", ["directory", "under a file", "unwritable"])
def test_an_output_that_cannot_be_written_exits_2_before_any_work(capsys, tmp_path, monkeypatch, verb, problem):
    from mobilenet import cli
    from tests.test_io import unwritable_folder

    (tmp_path / "file").write_text("")
    target = {
        "directory": tmp_path,
        "under a file": tmp_path / "file" / "out",
        "unwritable": unwritable_folder(tmp_path) / "out",
    }[problem]
    monkeypatch.setattr(cli, "_candidates", lambda *a, **k: pytest.fail("worked before checking the output"))
    for work in ("mobilenet.deploy.predictor.open_model", "mobilenet.deploy.onnx.load_with_metadata"):
        monkeypatch.setattr(work, lambda *a: pytest.fail("loaded before checking"))
    monkeypatch.setattr("mobilenet.convert.read_state_dict", lambda *a: pytest.fail("read before checking"))
    monkeypatch.setattr("mobilenet.bench.compare.load_dataset", lambda *a: pytest.fail("loaded data before checking"))
    argv = {
        "export": ["export", V2_WEIGHTS, "--out", str(target)],
        "convert": ["convert", V2_WEIGHTS, "--arch", "mobilenet_v2", "--out", str(target)],
        "quantize": ["quantize", "m.onnx", "--out", str(target)],
        "report": ["report", "--out", str(target)],
        "eval": ["eval", V2_WEIGHTS, "--plot", str(target)],
    }[verb]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1, err
    assert {"directory": "is a directory", "under a file": "is a file, not a folder", "unwritable": "cannot write in"}[
        problem
    ] in err


def test_export_opset_out_of_range_exits_2_with_one_line_and_writes_nothing(capsys, tmp_path):
    code, out, err = run(capsys, "export", V2_WEIGHTS, "--out", str(tmp_path / "m.onnx"), "--opset", "99")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "opset must be >= 17" in err
    assert list(tmp_path.iterdir()) == []


def _verb(name):
    from mobilenet.cli import build_parser

    verbs = next(action for action in build_parser()._actions if action.dest == "verb")
    return {action.dest: action.default for action in verbs.choices[name]._actions}


def _library_defaults(function):
    import inspect

    return {name: p.default for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty}


def test_cli_defaults_are_the_librarys():
    """A default written in two places will differ one day: each verb's defaults equal its library function's."""
    import dataclasses

    from mobilenet.bench.latency import time_calls
    from mobilenet.deploy.quantize import quantize_onnx
    from mobilenet.train import TrainConfig
    from mobilenet.train.evaluation import evaluate

    train = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    cli = _verb("train")
    named = {dest: {"threads": "num_threads"}.get(dest, dest) for dest in cli}  # the CLI's name -> the field's
    compared = {dest: field for dest, field in named.items() if field in train}
    assert len(compared) >= 24
    assert {dest: cli[dest] for dest in compared} == {dest: train[field] for dest, field in compared.items()}
    quantize, library = _verb("quantize"), _library_defaults(quantize_onnx)
    for dest in ("samples", "method", "per_channel", "activations", "portable", "float_stem"):
        assert quantize[dest] == library[dest], dest
    bench, library = _verb("bench"), _library_defaults(time_calls)
    assert (bench["min_runs"], bench["min_time"]) == (library["min_runs"], library["min_time_s"])
    assert _verb("eval")["batch_size"] == _library_defaults(evaluate)["batch_size"]
