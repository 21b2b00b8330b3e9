"""The project's own trained weights (weights/manifest.json): each file loads alone and reproduces its test figure."""

import json
from pathlib import Path

import pytest

import mobilenet
from mobilenet.data import load_dataset
from mobilenet.train.evaluation import evaluate

WEIGHTS = Path(__file__).parents[1] / "weights"
MANIFEST = json.loads((WEIGHTS / "manifest.json").read_text()) if (WEIGHTS / "manifest.json").exists() else []


def test_manifest_lists_every_weights_file():
    listed = {entry["file"] for entry in MANIFEST}
    on_disk = {path.name for path in WEIGHTS.glob("*.safetensors")}
    assert listed == on_disk
    assert sum((WEIGHTS / name).stat().st_size for name in on_disk) <= 25 * 2**20  # the repository's budget


@pytest.mark.parametrize("entry", MANIFEST, ids=[entry["file"] for entry in MANIFEST])
def test_weights_reproduce_their_test_accuracy(entry):
    model = mobilenet.load(WEIGHTS / entry["file"])
    assert model.config == mobilenet.ModelConfig.from_dict(entry["config"])  # the manifest embeds the one record
    result = evaluate(model, load_dataset(entry["dataset"], "test"))
    assert result.top1 == pytest.approx(entry["top1"], abs=0.011)
    assert result.top5 == pytest.approx(entry["top5"], abs=0.011)
