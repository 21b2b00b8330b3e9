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
        capsys, "convert", str(source), "--arch", "mobilenet_v3_small", "--alpha", "0.75", "--prefix", "state.",
        "--out", str(out_path),
    )  # fmt: skip
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
        capsys, "profile", "mobilenet_v3_small", "--alpha", "0.75", "--resolution", "160", "--by-layer",
        "--peak-gmacs", "100", "--bandwidth-gbs", "20",
    )  # fmt: skip
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
