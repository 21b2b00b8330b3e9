"""safetensors round trips, and the errors a user meets with the wrong file."""

import json

import pytest
import torch

import mobilenet
from mobilenet import create_model
from mobilenet.weights import CONFIG_KEY, load, load_weights, read_config, read_safetensors, save
from tests.conftest import FIXTURES


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("mobilenet_v1", {"alpha": 0.25, "shallow": True, "num_classes": 10, "in_chans": 1, "small_input": True}),
        ("mobilenet_v2", {"alpha": 0.35, "t": 4.0}),
        ("mobilenet_v3_large", {"alpha": 0.75, "head": "fixed", "minimal": True}),
        ("mobilenet_v3_small", {"features_only": True}),
    ],
)
def test_save_load_round_trip(tmp_path, name, kwargs):
    model = create_model(name, **kwargs)
    with torch.no_grad():  # make the BN statistics non-trivial so they must travel too
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    path = save(model, tmp_path / "m.safetensors")
    loaded = load(path)
    assert loaded.config == model.config
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    side = 64 if kwargs.get("small_input") else 96
    x = torch.randn(2, kwargs.get("in_chans", 3), side, side)
    with torch.no_grad():
        expected, got = model.eval()(x), loaded(x)
    if isinstance(expected, list):
        assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    else:
        assert torch.equal(expected, got)


def test_config_travels_in_the_metadata(tmp_path):
    path = save(create_model("mobilenet_v2", alpha=0.5, num_classes=10), tmp_path / "m.safetensors")
    config = read_config(path)
    assert config == mobilenet.make_config("mobilenet_v2", alpha=0.5, num_classes=10)  # the one record, exactly
    assert (config.name, config.alpha, config.num_classes, config.options["t"]) == ("mobilenet_v2", 0.5, 10, 6.0)
    _, metadata = read_safetensors(path)
    assert json.loads(metadata[CONFIG_KEY]) == config.to_dict()


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "deep" / "m.safetensors"
    save(create_model("mobilenet_v3_small", alpha=0.5), path)
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save("not a model", path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]


def test_public_api_exports_save_and_load():
    assert mobilenet.save is save
    assert mobilenet.load is load


def test_checkpoint_of_another_architecture_lists_mismatched_keys(tmp_path):
    path = save(create_model("mobilenet_v2", alpha=0.5), tmp_path / "v2.safetensors")
    with pytest.raises(ValueError, match="does not fit mobilenet_v3_small") as info:
        load_weights(create_model("mobilenet_v3_small"), path)
    message = str(info.value)
    assert "missing" in message
    assert "unexpected" in message
    assert "blocks.0.se.reduce.weight" in message


def test_checkpoint_of_another_width_lists_shape_mismatches(tmp_path):
    path = save(create_model("mobilenet_v2", alpha=0.5), tmp_path / "v2.safetensors")
    with pytest.raises(ValueError, match=r"(?s)shape mismatch .*stem\.conv\.weight: expected \(32, 3, 3, 3\), got "):
        load_weights(create_model("mobilenet_v2"), path)


def test_truncated_file(tmp_path):
    full = save(create_model("mobilenet_v3_small", alpha=0.5), tmp_path / "m.safetensors").read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=r"broken\.safetensors is not a readable safetensors file"):
        load(broken)


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", b"\x80\x04\x95" + b"\x00" * 64])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such weights file"):
        load(tmp_path / "nope.safetensors")


def test_foreign_safetensors_points_to_convert():
    with pytest.raises(ValueError, match="from_torchvision"):
        load(FIXTURES / "torchvision_mobilenet_v2_w0.5_c10.safetensors")


def _resave(path, tensors=None, metadata=None):
    """Rewrite a checkpoint with changed tensors or metadata, as a broken or hostile file would be."""
    from safetensors.torch import save_file

    stored, header = read_safetensors(path)
    save_file({**stored, **(tensors or {})}, str(path), metadata={**header, **(metadata or {})})


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_weights_of_the_wrong_kind_are_refused_not_cast(tmp_path, dtype):
    path = save(create_model("mobilenet_v2", alpha=0.35, num_classes=10), tmp_path / "m.safetensors")
    weight = read_safetensors(path)[0]["classifier.weight"]
    _resave(path, {"classifier.weight": weight.to(dtype)})
    with pytest.raises(ValueError, match=r"(?s)dtype mismatch.*classifier\.weight: expected torch\.float32"):
        load(path)


def test_half_precision_weights_load_exactly_upcast(tmp_path):
    model = create_model("mobilenet_v2", alpha=0.35, num_classes=10)
    path = save(model, tmp_path / "m.safetensors")
    half = read_safetensors(path)[0]["classifier.weight"].half()
    _resave(path, {"classifier.weight": half})
    assert torch.equal(load(path).classifier.weight, half.float())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    path = save(create_model("mobilenet_v2", alpha=0.35, num_classes=10), tmp_path / "m.safetensors")
    weight = read_safetensors(path)[0]["classifier.weight"].clone()
    weight[0, 0] = bad
    _resave(path, {"classifier.weight": weight})
    with pytest.raises(ValueError, match=r"(?s)not finite.*classifier\.weight: 1 NaN or infinite"):
        load(path)


def test_a_config_claiming_a_billion_classes_is_checked_before_anything_is_allocated(tmp_path):
    path = save(create_model("mobilenet_v2", alpha=0.35, num_classes=10), tmp_path / "m.safetensors")
    config = json.loads(read_safetensors(path)[1][CONFIG_KEY]) | {"num_classes": 10**9}
    _resave(path, metadata={CONFIG_KEY: json.dumps(config)})
    with pytest.raises(ValueError, match=r"m\.safetensors: its tensors do not fit the model its config describes"):
        load(path)


@pytest.mark.parametrize("stored", ["not json", "[1, 2]", json.dumps({"name": "mobilenet_v2", "alpha": -1})])
def test_a_broken_stored_config_names_the_file(tmp_path, stored):
    path = save(create_model("mobilenet_v2", alpha=0.35, num_classes=10), tmp_path / "m.safetensors")
    _resave(path, metadata={CONFIG_KEY: stored})
    with pytest.raises(ValueError, match=r"m\.safetensors: its (stored config|mobilenet\.config metadata)"):
        load(path)
