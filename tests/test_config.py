"""One record of a model's identity: `ModelConfig`, valid by construction, carried whole by every file and record
the project writes (checkpoints, ONNX files, run configs, results, selection candidates) in one metadata schema."""

import json

import pytest
import torch

import mobilenet
from mobilenet._io import InputError
from mobilenet.bench.select import MEASURED, Entry, entries_from_file
from mobilenet.metadata import CONFIG_KEY, input_spec
from mobilenet.resolve import OPTION_RULES, ModelConfig, make_config
from mobilenet.specs import VERSIONS
from mobilenet.train import TrainConfig
from mobilenet.weights import read_config, read_safetensors, save

CONFIGS = [
    make_config("mobilenet_v1", alpha=0.5, shallow=True, activation="relu"),
    make_config("mobilenet_v2", alpha=0.35, num_classes=10, in_chans=1, small_input=True, t=4),
    make_config("mobilenet_v3_large", alpha=0.75, head="fixed", expansion="input", dropout=0.0),
    make_config("mobilenet_v3_small", minimal=True),
]


def test_every_version_option_has_exactly_one_rule():
    declared = {name for spec in VERSIONS.values() for name in spec.options}
    assert declared == set(OPTION_RULES)
    for spec in VERSIONS.values():
        for name, default in spec.options.items():
            assert OPTION_RULES[name].check(name, default) == default  # every default holds under its own rule


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"t": "6"}, "t .* must be a number"),
        ({"t": 0}, "t .* must be a number"),
        ({"shallow": 1}, "True or False"),
        ({"activation": "gelu"}, "activation must be one of"),
        ({"head": None}, "head must be one of"),
    ],
)
def test_a_wrong_option_cannot_be_held(options, message):
    name = (
        "mobilenet_v2"
        if "t" in options
        else "mobilenet_v1"
        if "shallow" in options or "activation" in options
        else "mobilenet_v3_small"
    )
    with pytest.raises(InputError, match=message):
        make_config(name, **options)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_config_round_trips_exactly_through_json(config):
    again = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert hash(again) == hash(config)
    assert again.replace() == config


def test_config_round_trips_through_checkpoint_and_onnx_metadata(tmp_path):
    from mobilenet.deploy.onnx import export_onnx
    from mobilenet.deploy.runtime import OnnxModel

    config = make_config("mobilenet_v3_small", alpha=0.35, num_classes=7, head="fixed", expansion="input", dropout=0.0)
    model = mobilenet.build(config).eval()
    assert read_config(save(model, tmp_path / "m.safetensors")) == config
    export_onnx(model, tmp_path / "m.onnx", 32)
    assert OnnxModel(tmp_path / "m.onnx").config == config


def test_checkpoints_and_onnx_files_share_one_metadata_schema(tmp_path):
    """What training writes and what export writes: the same keys, the same spellings."""
    config = make_config("mobilenet_v3_small", alpha=0.35, num_classes=3, in_chans=1, small_input=True)
    spec = mobilenet.metadata.InputSpec(28, 1, (0.5,), (0.25,), ("a", "b", "c"))
    header = mobilenet.metadata.file_metadata(config, spec, dataset="toy")
    checkpoint = save(mobilenet.build(config), tmp_path / "m.safetensors", metadata=header)
    from mobilenet.deploy.onnx import export_checkpoint, read_metadata

    export_checkpoint(checkpoint, tmp_path / "m.onnx")
    stored, exported = read_safetensors(checkpoint)[1], read_metadata(tmp_path / "m.onnx")
    keys = {CONFIG_KEY, "input_size", "in_chans", "mean", "std", "labels", "dataset"}
    assert keys <= set(stored)
    assert keys <= set(exported)
    assert not {"classes", "image_size"} & (set(stored) | set(exported))
    assert {key: exported[key] for key in keys} == {key: stored[key] for key in keys}
    assert input_spec("x", exported, 1, 3) == spec


def test_files_of_the_older_spelling_still_load(tmp_path):
    """Checkpoints written before the schema was one said `classes` and `image_size`."""
    config = make_config("mobilenet_v3_small", alpha=0.35, num_classes=2, in_chans=1, small_input=True)
    old = {"classes": json.dumps(["cat", "dog"]), "image_size": "28", "mean": "[0.5]", "std": "[0.25]"}
    path = save(mobilenet.build(config), tmp_path / "old.safetensors", metadata=old)
    classifier = mobilenet.Classifier(path)
    assert (classifier.labels, classifier.size) == (["cat", "dog"], 28)


def test_a_run_config_embeds_the_model_config_and_reads_the_older_layout(tmp_path):
    model = make_config("mobilenet_v2", alpha=0.5, t=4, small_input=True)
    config = TrainConfig(out=str(tmp_path), model=model)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.to_dict()["model"] == model.to_dict()
    older = {
        "out": str(tmp_path),
        "model": "mobilenet_v2",
        "alpha": 0.5,
        "model_options": {"t": 4, "small_input": None},
    }
    assert TrainConfig.from_dict(older).model == model  # small_input None: on for Fashion-MNIST's 28 px
    assert TrainConfig(out=str(tmp_path), model="mobilenet_v2").model.small_input  # a name: the auto rule
    assert not TrainConfig(out=str(tmp_path), model="mobilenet_v2", dataset="folder").model.small_input  # 224 px
    with pytest.raises(TypeError, match="ModelConfig or a model name"):
        TrainConfig(out=str(tmp_path), model=3)


def test_results_files_may_embed_the_config(tmp_path):
    config = make_config("mobilenet_v2", alpha=0.5, num_classes=10, in_chans=1, small_input=True, t=4)
    path = tmp_path / "results.json"
    older = {"model": "mobilenet_v2", "alpha": 0.5, "options": {"t": 4}, "top1": 90.5}
    path.write_text(json.dumps([{"config": config.to_dict(), "top1": 90.5}, older]))
    with pytest.raises(InputError, match="entries 0 and 1 are the same configuration"):
        entries_from_file(path)  # the two spellings name one model
    path.write_text(json.dumps([{"config": config.to_dict(), "top1": 90.5}]))
    (entry,) = entries_from_file(path)
    assert entry == Entry(config, 28, 90.5, "fashion-mnist top-1, results.json", MEASURED, None, "fashion-mnist")
    assert entry.options == (("t", 4.0),)  # what differs from the version's defaults


def test_a_bug_is_not_disguised_as_bad_usage(monkeypatch, capsys):
    """The library's InputError is one line and exit code 2; any other exception is a bug and keeps its traceback."""
    from mobilenet import cli

    monkeypatch.setattr("mobilenet.cost.family", lambda *a: (_ for _ in ()).throw(InputError("a bad input")))
    assert cli.main(["family"]) == 2
    assert capsys.readouterr().err == "mobilenet family: error: a bad input\n"
    monkeypatch.setattr("mobilenet.cost.family", lambda *a: (_ for _ in ()).throw(ValueError("an internal slip")))
    with pytest.raises(ValueError, match="an internal slip"):
        cli.main(["family"])


def test_cli_version_flags_come_from_the_option_rules():
    from mobilenet.cli import build_parser

    verbs = next(action for action in build_parser()._actions if action.dest == "verb")
    for verb in ("profile", "bench", "train"):
        dests = {action.dest: action for action in verbs.choices[verb]._actions}
        for name, rule in OPTION_RULES.items():
            assert name in dests, (verb, name)
            assert tuple(dests[name].choices or ()) == rule.choices
            assert dests[name].default is None  # the version's own default applies


def test_profile_takes_a_config():
    config = CONFIGS[1]
    assert (
        mobilenet.profile(config, resolution=28).macs
        == mobilenet.profile(
            "mobilenet_v2", resolution=28, **{k: v for k, v in config.to_dict().items() if k != "name"}
        ).macs
    )
    with pytest.raises(TypeError, match="no create_model arguments"):
        mobilenet.profile(config, alpha=1.0)
    assert torch.is_grad_enabled()
