"""Every family member builds, runs forward and backward, and counts the parameters the references publish."""

import math

import pytest
import torch
from torch import nn

import mobilenet
from mobilenet import create_model, list_models

MODELS = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]


def n_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_list_models():
    assert list_models() == sorted(MODELS)


@pytest.mark.parametrize(
    ("name", "published"),
    [
        ("mobilenet_v2", 3_504_872),  # torchvision model card, all trainable parameters, 1000 classes
        ("mobilenet_v3_large", 5_483_032),
        ("mobilenet_v3_small", 2_542_856),
    ],
)
def test_parameter_counts_match_torchvision(name, published):
    assert n_params(create_model(name)) == published


def test_v1_parameter_counts():
    model = create_model("mobilenet_v1")
    # TF-slim mobilenet_v1.py docstring: 3,185,088 conv weights (no BN, no classifier) for 1.0/224
    conv_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv_weights == 3_185_088
    # the shallow model (paper Table 5: 2.9M) drops 5 x (3x3x512 depthwise + 512x512 pointwise + 2 BNs of 512)
    shallow = create_model("mobilenet_v1", shallow=True)
    assert n_params(model) - n_params(shallow) == 5 * (9 * 512 + 512 * 512 + 2 * 2 * 512)
    assert round(n_params(shallow) / 1e6, 1) == 2.9


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("alpha", [0.35, 1.0, 1.3])
def test_forward_backward(name, alpha):
    model = create_model(name, alpha=alpha, num_classes=7).train()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.logsumexp(1).sum().backward()
    assert x.grad is not None
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_small_input_grayscale(name):
    model = create_model(name, alpha=0.5, num_classes=10, in_chans=1, small_input=True).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(3, 1, 28, 28))
        logits = model(torch.randn(3, 1, 28, 28))
    assert features.shape[-2:] == (4, 4)
    assert logits.shape == (3, 10)


@pytest.mark.parametrize(
    ("name", "options"),
    [("mobilenet_v1", {"shallow": True}), ("mobilenet_v2", {"t": 4}), ("mobilenet_v3_small", {"minimal": True})],
)
def test_version_options_build_and_run(name, options):
    model = create_model(name, alpha=0.5, num_classes=3, **options)
    model(torch.randn(1, 3, 64, 64)).sum().backward()


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_activation_option_swaps_every_relu6(name):
    default = create_model(name, alpha=0.5)
    relu = create_model(name, alpha=0.5, activation="relu")
    count = lambda model, kind: sum(type(m) is kind for m in model.modules())  # noqa: E731
    assert count(default, nn.ReLU) == 0
    assert count(relu, nn.ReLU) == count(default, nn.ReLU6) > 20
    assert count(relu, nn.ReLU6) == 0
    assert sum(p.numel() for p in relu.parameters()) == sum(p.numel() for p in default.parameters())
    with pytest.raises(ValueError, match="activation must be one of"):
        create_model(name, activation="gelu")
    with pytest.raises(TypeError, match="activation"):
        create_model("mobilenet_v3_small", activation="relu")


def test_v3_minimal_has_no_hswish_and_no_se():
    model = create_model("mobilenet_v3_large", minimal=True)
    kinds = {type(m) for m in model.modules()}
    assert nn.Hardswish not in kinds
    assert mobilenet.layers.SqueezeExcite not in kinds


def test_v3_small_576_conv_has_no_se():
    model = create_model("mobilenet_v3_small")
    assert model.head.conv.out_channels == 576
    assert not any(isinstance(m, mobilenet.layers.SqueezeExcite) for m in model.head.modules())


def test_module_names_follow_the_papers():
    names = dict(create_model("mobilenet_v3_large").named_modules())
    for name in [
        "stem.conv",
        "blocks.0.dw.conv",
        "blocks.1.expand.bn",
        "blocks.3.se.reduce",
        "blocks.3.project.conv",
        "head.conv",
        "pre_logits.fc",
        "classifier",
    ]:
        assert name in names
    v1 = dict(create_model("mobilenet_v1").named_modules())
    assert {"blocks.0.dw.conv", "blocks.0.pw.conv"} <= set(v1)


@pytest.mark.parametrize(
    ("name", "channels"), [("mobilenet_v2", [24, 32, 96, 320]), ("mobilenet_v1", [128, 256, 512, 1024])]
)
def test_features_only_pyramid(name, channels):
    model = create_model(name, features_only=True).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 224, 224))
    assert [f.shape[1] for f in features] == channels == [info["channels"] for info in model.feature_info]
    assert [f.shape[-1] for f in features] == [56, 28, 14, 7]
    assert [info["reduction"] for info in model.feature_info] == [4, 8, 16, 32]
    assert not hasattr(model, "classifier")


def test_features_only_small_input():
    model = create_model("mobilenet_v3_small", features_only=True, small_input=True).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 32, 32))
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4]


def test_meta_device_build_allocates_nothing():
    with torch.device("meta"):
        model = create_model("mobilenet_v3_large")
    assert all(p.is_meta for p in model.parameters())
    assert n_params(model) == 5_483_032


def test_dropout_default_and_override():
    assert create_model("mobilenet_v2").dropout.p == 0.2
    assert create_model("mobilenet_v1").dropout.p == pytest.approx(1e-3)
    assert create_model("mobilenet_v2", dropout=0.0).dropout.p == 0.0


# --- bad input: a clear error where it enters ---------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0, -0.5, math.nan, math.inf, 100.0, True, "1.0", None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        create_model("mobilenet_v2", alpha=alpha)


@pytest.mark.parametrize(
    ("name", "suggestion"), [("mobilenetv2", "mobilenet_v2"), ("mobilenet_v3_smal", "mobilenet_v3_small")]
)
def test_unknown_name_suggests_the_closest(name, suggestion):
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        create_model(name)


def test_unknown_name_without_close_match_lists_models():
    with pytest.raises(ValueError, match="Known models: mobilenet_v1"):
        create_model("resnet50")


@pytest.mark.parametrize(
    ("name", "kwargs", "word"),
    [
        ("mobilenet_v2", {"width_mult": 0.5}, "width_mult"),
        ("mobilenet_v1", {"t": 6}, "t"),
        ("mobilenet_v2", {"shallow": True}, "shallow"),
        ("mobilenet_v3_small", {"se_ratio": 0.5}, "se_ratio"),
    ],
)
def test_unknown_keyword_is_a_type_error(name, kwargs, word):
    with pytest.raises(TypeError, match=word):
        create_model(name, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "word"),
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 2.5}, TypeError, "num_classes"),
        ({"in_chans": 0}, ValueError, "in_chans"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"small_input": "yes"}, TypeError, "small_input"),
        ({"t": 0}, ValueError, "expansion"),
        ({"t": math.nan}, ValueError, "expansion"),
    ],
)
def test_bad_values(kwargs, error, word):
    with pytest.raises(error, match=word):
        create_model("mobilenet_v2", **kwargs)


def test_bad_v3_head_policy():
    with pytest.raises(ValueError, match="head must be one of"):
        create_model("mobilenet_v3_small", head="big")


@pytest.mark.parametrize(
    ("shape", "word"),
    [((3, 224, 224), "unsqueeze"), ((1, 1, 224, 224), "in_chans=1"), ((2, 3, 16, 16), "small_input=True")],
)
def test_bad_input_tensor(shape, word):
    model = create_model("mobilenet_v2")
    with pytest.raises(ValueError, match=word):
        model(torch.randn(shape))


def test_input_must_be_a_tensor():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        create_model("mobilenet_v2")([[0.0]])
