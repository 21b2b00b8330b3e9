"""Width rules and shapes, table by table, in the manner of TF-slim's tests."""

import dataclasses
import json
import math

import pytest

from mobilenet.resolve import ModelConfig, list_models, make_config, make_divisible, resolution, resolve
from tests.conftest import torchvision_fixture


def arch(name, **kwargs):
    return resolve(make_config(name, **kwargs))


def out_channels(a):
    return [a.stem.out_ch] + [b.out_ch for b in a.blocks] + ([a.head.out_ch] if a.head else [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [(32, 32), (11.2, 16), (5.6, 8), (8.4, 8), (22.4, 24), (33.6, 32), (89.6, 88), (18, 24), (54, 56), (1792, 1792)],
)
def test_make_divisible_reference_values(value, expected):
    assert make_divisible(value, 8) == expected


@pytest.mark.parametrize("value", [0.5, 3.3, 7.9, 12.0, 17.5, 100.1, 333.3, 1000.0])
def test_make_divisible_stays_within_ten_percent(value):
    rounded = make_divisible(value, 8)
    assert rounded % 8 == 0
    assert rounded >= 8
    assert rounded >= 0.9 * value


# TF-slim mobilenet_v1_test.py style: for each depth multiplier the exact channel list (stem, 13 blocks).
V1_CHANNELS = {
    1.0: [32, 64, 128, 128, 256, 256] + [512] * 6 + [1024, 1024],
    0.75: [24, 48, 96, 96, 192, 192] + [384] * 6 + [768, 768],
    0.5: [16, 32, 64, 64, 128, 128] + [256] * 6 + [512, 512],
    0.25: [8, 16, 32, 32, 64, 64] + [128] * 6 + [256, 256],
    0.1: [8, 8, 12, 12, 25, 25] + [51] * 6 + [102, 102],  # max(int(c * alpha), 8): no rounding to 8s in V1
}


@pytest.mark.parametrize(("alpha", "expected"), V1_CHANNELS.items())
def test_v1_channels(alpha, expected):
    assert out_channels(arch("mobilenet_v1", alpha=alpha)) == expected


def v2_expand(outs):
    """V2's stem, 17 blocks and head from the 7 stage widths + stem + head."""
    stem, stages, head = outs[0], outs[1:-1], outs[-1]
    repeats = [1, 2, 3, 4, 3, 3, 1]
    return [stem] + [c for c, n in zip(stages, repeats, strict=True) for _ in range(n)] + [head]


V2_CHANNELS = {
    1.4: [48, 24, 32, 48, 88, 136, 224, 448, 1792],
    1.0: [32, 16, 24, 32, 64, 96, 160, 320, 1280],
    0.75: [24, 16, 24, 24, 48, 72, 120, 240, 1280],
    0.35: [16, 8, 8, 16, 24, 32, 56, 112, 1280],  # the head never shrinks below 1280
}


@pytest.mark.parametrize(("alpha", "stages"), V2_CHANNELS.items())
def test_v2_channels(alpha, stages):
    assert out_channels(arch("mobilenet_v2", alpha=alpha)) == v2_expand(stages)


def test_v2_expansion_widths():
    a = arch("mobilenet_v2")
    assert [b.mid_ch for b in a.blocks[:4]] == [32, 96, 144, 144]  # t=1 then t=6
    assert [b.residual for b in a.blocks[:4]] == [False, False, True, False]


V3L_BLOCKS = {  # (expanded, out) per bneck
    1.0: [
        (16, 16),
        (64, 24),
        (72, 24),
        (72, 40),
        (120, 40),
        (120, 40),
        (240, 80),
        (200, 80),
        (184, 80),
        (184, 80),
        (480, 112),
        (672, 112),
        (672, 160),
        (960, 160),
        (960, 160),
    ],
    0.75: [
        (16, 16),
        (48, 24),
        (56, 24),
        (56, 32),
        (88, 32),
        (88, 32),
        (184, 64),
        (152, 64),
        (136, 64),
        (136, 64),
        (360, 88),
        (504, 88),
        (504, 120),
        (720, 120),
        (720, 120),
    ],
}


@pytest.mark.parametrize(("alpha", "rows"), V3L_BLOCKS.items())
def test_v3_large_channels(alpha, rows):
    a = arch("mobilenet_v3_large", alpha=alpha)
    assert [(b.mid_ch, b.out_ch) for b in a.blocks] == rows
    assert a.head.out_ch == 6 * rows[-1][1]
    assert [b.se_ch for b in a.blocks if b.se_ch][:2] == ([24, 32] if alpha == 1.0 else [16, 24])


@pytest.mark.parametrize(
    ("fixture", "name", "alpha"),
    [
        ("torchvision_mobilenet_v2_w0.5_c10.safetensors", "mobilenet_v2", 0.5),
        ("torchvision_mobilenet_v3_small_w0.75_c10.safetensors", "mobilenet_v3_small", 0.75),
    ],
)
def test_channels_match_torchvision_checkpoint(fixture, name, alpha):
    """Every conv's output width equals the one in torchvision's own state dict at that width_mult."""
    state, *_ = torchvision_fixture(fixture)
    theirs = sorted((key, tuple(value.shape)) for key, value in state.items() if value.dim() == 4 and "fc" not in key)
    a = arch(name, alpha=alpha, num_classes=10)
    ours = [a.stem.out_ch]
    for b in a.blocks:
        ours += ([b.mid_ch] if b.has_expand else []) + [b.mid_ch, b.out_ch]
    ours.append(a.head.out_ch)
    assert sorted(ours) == sorted(shape[0] for _, shape in theirs)
    se_theirs = sorted(v.shape[0] for k, v in state.items() if k.endswith("fc1.weight"))
    assert sorted(b.se_ch for b in a.blocks if b.se_ch) == se_theirs


# Input side -> final feature map side, the TF-slim "input size -> feature-map size" table.
@pytest.mark.parametrize(
    ("name", "small_input", "size", "expected"),
    [
        ("mobilenet_v1", False, 224, 7),
        ("mobilenet_v1", False, 192, 6),
        ("mobilenet_v1", False, 160, 5),
        ("mobilenet_v1", False, 128, 4),
        ("mobilenet_v2", False, 96, 3),
        ("mobilenet_v2", False, 33, 2),
        ("mobilenet_v2", False, 32, 1),
        ("mobilenet_v3_large", False, 224, 7),
        ("mobilenet_v3_small", False, 224, 7),
        ("mobilenet_v3_small", False, 231, 8),
        ("mobilenet_v2", True, 28, 4),
        ("mobilenet_v2", True, 32, 4),
        ("mobilenet_v1", True, 28, 4),
        ("mobilenet_v3_small", True, 32, 4),
        ("mobilenet_v3_large", True, 64, 8),
    ],
)
def test_final_feature_map_size(name, small_input, size, expected):
    assert arch(name, small_input=small_input).feature_map_size(size) == expected


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_small_input_changes_exactly_two_strides(name):
    full, small = arch(name), arch(name, small_input=True)
    full_strides = [full.stem.stride] + [b.stride for b in full.blocks]
    small_strides = [small.stem.stride] + [b.stride for b in small.blocks]
    changed = [i for i, (f, s) in enumerate(zip(full_strides, small_strides, strict=True)) if f != s]
    first_downsampling_block = 1 + next(i for i, b in enumerate(full.blocks) if b.stride == 2)
    assert changed == [0, first_downsampling_block]
    assert full.total_stride == 32
    assert small.total_stride == 8


def test_v1_shallow_drops_the_five_14x14_layers():
    full, shallow = arch("mobilenet_v1"), arch("mobilenet_v1", shallow=True)
    assert len(full.blocks) - len(shallow.blocks) == 5
    assert [b.out_ch for b in shallow.blocks].count(512) == 1
    assert shallow.total_stride == 32


def test_v2_expansion_option():
    a = arch("mobilenet_v2", t=3)
    assert a.blocks[0].mid_ch == 32  # the first row keeps t=1
    assert all(b.mid_ch == 3 * b.in_ch for b in a.blocks[1:])


def test_v3_minimal():
    a = arch("mobilenet_v3_large", minimal=True)
    assert {b.kernel for b in a.blocks} == {3}
    assert {b.act for b in a.layers if b.act} == {"relu"}
    assert not any(b.se_ch for b in a.blocks)


@pytest.mark.parametrize(("name", "paper"), [("mobilenet_v3_large", 1280), ("mobilenet_v3_small", 1024)])
def test_v3_head_policy(name, paper):
    scaled = arch(name, alpha=0.75, head="scaled")
    fixed = arch(name, alpha=0.75, head="fixed")
    assert scaled.pre_logits.out_ch == make_divisible(paper * 0.75)
    assert fixed.pre_logits.out_ch == paper
    assert arch(name, head="fixed").pre_logits.out_ch == arch(name, head="scaled").pre_logits.out_ch == paper


def test_feature_taps_are_the_last_block_at_each_stride():
    a = arch("mobilenet_v2")
    assert a.feature_taps == (2, 5, 12, 16)
    assert a.feature_strides() == (4, 8, 16, 32)
    assert arch("mobilenet_v2", small_input=True).feature_strides() == (1, 2, 4, 8)


@pytest.mark.parametrize(("rho", "side"), [(1.0, 224), (0.857, 192), (0.714, 160), (0.571, 128), (0.429, 96)])
def test_resolution_multiplier(rho, side):
    assert resolution(rho) == side


@pytest.mark.parametrize("rho", [0, -1, math.nan, math.inf, True])
def test_resolution_multiplier_rejects_bad_values(rho):
    with pytest.raises(ValueError, match="rho"):
        resolution(rho)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"name": "mobilenet_v2", "alpha": -1.0}, ValueError, "alpha"),
        ({"name": "mobilenet_v2", "alpha": float("nan")}, ValueError, "alpha"),
        ({"name": "mobilenet_v2", "num_classes": 0}, ValueError, "num_classes"),
        ({"name": "mobilenet_v2", "in_chans": 1.5}, TypeError, "in_chans"),
        ({"name": "mobilenet_v2", "options": {"activation": "gelu"}}, ValueError, "activation"),
        ({"name": "mobilenet_v2", "options": {"minimal": True}}, TypeError, "unexpected keyword argument"),
        ({"name": "mobilenet_v3_small", "options": {"head": "wide"}}, ValueError, "head"),
        ({"name": "mobilenet_v1", "options": {"shallow": "yes"}}, TypeError, "shallow"),
        ({"name": "mobilenet_v4"}, ValueError, "unknown model"),
        ({"name": "mobilenet_v2", "small_input": 1}, TypeError, "small_input"),
    ],
)
def test_model_config_cannot_hold_an_invalid_value(fields, error, message):
    with pytest.raises(error, match=message):
        ModelConfig(**fields)


def test_model_config_is_complete_frozen_and_hashable():
    config = ModelConfig(name="mobilenet_v2")  # was KeyError: 't' at resolve time
    assert config.options == {"t": 6.0, "activation": "relu6"}
    assert config.dropout == 0.2
    assert resolve(config).blocks[1].mid_ch == 6 * 16
    assert hash(config) == hash(make_config("mobilenet_v2", t=6))
    assert {config: 1}[make_config("mobilenet_v2")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.alpha = 0.5
    with pytest.raises(TypeError):
        config.options["t"] = 4.0


@pytest.mark.parametrize("name", list_models())
def test_model_config_round_trips_through_json(name):
    from mobilenet.specs import VERSIONS

    spec = VERSIONS[name]
    for alpha in spec.published_alphas:
        config = make_config(name, alpha=alpha, num_classes=10, small_input=True)
        assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
