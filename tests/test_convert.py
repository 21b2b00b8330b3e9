"""torchvision weights in, the same function out: parity against torchvision's own outputs."""

import pytest
import torch

from mobilenet.convert import from_torchvision, read_state_dict, torchvision_key_map
from tests.conftest import torchvision_fixture

FIXTURES = [
    "torchvision_mobilenet_v2_w0.5_c10.safetensors",
    "torchvision_mobilenet_v3_small_w0.75_c10.safetensors",
]


@pytest.mark.parametrize("fixture", FIXTURES)
def test_logits_match_torchvision(fixture):
    state, x, expected, meta = torchvision_fixture(fixture)
    model = from_torchvision(state, meta["arch"], alpha=float(meta["width_mult"]))
    assert model.config.num_classes == int(meta["num_classes"])
    assert not model.training
    with torch.no_grad():
        got = model(x)
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= 1e-5 * scale


@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_torchvision_key_is_used_once(fixture):
    state, _, _, meta = torchvision_fixture(fixture)
    model = from_torchvision(state, meta["arch"], alpha=float(meta["width_mult"]))
    theirs = [t for _, t in torchvision_key_map(model.arch) if not t.endswith("num_batches_tracked")]
    assert sorted(theirs) == sorted(state)


def test_pth_file_loads_with_weights_only(tmp_path):
    state, x, expected, _ = torchvision_fixture(FIXTURES[0])
    path = tmp_path / "tv.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model = from_torchvision(path, "mobilenet_v2", alpha=0.5)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5 * expected.abs().max().item())


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"payload": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_state_dict(path)


def test_wrong_alpha_lists_shape_mismatches():
    state, *_ = torchvision_fixture(FIXTURES[0])
    with pytest.raises(ValueError, match=r"(?s)wrong arch or alpha\?.*shape mismatch") as info:
        from_torchvision(state, "mobilenet_v2", alpha=1.0)
    assert "stem.conv.weight: expected (32, 3, 3, 3), got (16, 3, 3, 3)" in str(info.value)


def test_wrong_arch_lists_missing_keys():
    state, *_ = torchvision_fixture(FIXTURES[1])
    with pytest.raises(ValueError, match="not a torchvision mobilenet_v2"):
        from_torchvision(state, "mobilenet_v2", alpha=0.75)
    with pytest.raises(ValueError, match="missing"):
        from_torchvision(state, "mobilenet_v3_large", alpha=0.75)


def test_v1_is_not_in_torchvision():
    with pytest.raises(ValueError, match="torchvision has no 'mobilenet_v1'"):
        from_torchvision({}, "mobilenet_v1")
