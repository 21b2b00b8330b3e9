"""Counted cost (meta-device trace) against the closed forms and against every published table we could find."""

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mobilenet import create_model
from mobilenet.cost import count_module, profile
from mobilenet.cost import formulas as F
from mobilenet.cost.receptive_field import receptive_field
from mobilenet.layers import InvertedResidual
from mobilenet.published import (
    PUBLISHED,
    TFSLIM_V1_LAYERS,
    TFSLIM_V1_TOTAL,
    TORCHVISION,
    UNREPRODUCED,
    V1_TABLE2,
    V1_TABLE3,
    V1_TABLE4_FULL_CONV,
    V2_TABLE,
)
from mobilenet.resolve import Layer, conv_output_size, make_config, resolve


def within_printed_precision(ours: float, printed: float) -> bool:
    """The sources mix truncation and rounding (V1 prints 568.7M as 569 but 290.7M as 290): agree to within one unit
    of the last printed digit."""
    decimals = len(str(printed).split(".")[1]) if "." in str(printed) else 0
    return abs(ours - printed) < 10**-decimals


# --- published tables ------------------------------------------------------------------------------------------


def test_tfslim_v1_per_layer_rows():
    """TF-slim mobilenet_v1.py docstring: conv weights only, no classifier; every row, exactly."""
    report = profile("mobilenet_v1")
    convs = [layer for layer in report.layers if layer.kind != "linear"]
    assert [(la.params, la.macs) for la in convs] == [(p, m) for _, p, m in TFSLIM_V1_LAYERS]
    assert (sum(la.params for la in convs), sum(la.macs for la in convs)) == TFSLIM_V1_TOTAL


def test_v1_table2_shares_per_layer_type():
    """V1 paper Table 2, conv and FC weights only, 1000-way FC. (The paper's 1.19% for Conv 3x3 is a transposition
    of 1.91%: the column must sum to 100.)"""
    shares = profile("mobilenet_v1").by_kind(biases=False)
    for kind, (macs_pct, params_pct) in V1_TABLE2.items():
        assert round(100 * shares[kind]["macs_share"], 2) == macs_pct, kind
        assert round(100 * shares[kind]["params_share"], 2) == params_pct, kind
    assert sum(macs for macs, _ in V1_TABLE2.values()) == pytest.approx(100.01, abs=0.01)


def test_v1_table3_one_layer_by_closed_forms():
    """V1 paper Table 3: a 3x3 layer on 14x14x512 -> 512; million mult-adds and params."""
    rows = {
        "convolution": (F.standard_conv_macs(3, 512, 512, 14), F.standard_conv_params(3, 512, 512)),
        "depthwise separable": (F.separable_conv_macs(3, 512, 512, 14), F.separable_conv_params(3, 512, 512)),
        "alpha = 0.75": (F.separable_conv_macs(3, 384, 384, 14), F.separable_conv_params(3, 384, 384)),
        "rho = 0.714": (F.separable_conv_macs(3, 384, 384, round(14 * 0.714)), F.separable_conv_params(3, 384, 384)),
    }
    for name, (macs, params) in rows.items():
        printed_macs, printed_params = V1_TABLE3[name]
        assert within_printed_precision(macs / 1e6, printed_macs), name
        assert within_printed_precision(params / 1e6, printed_params), name


def test_v1_table4_full_convolution_mobilenet():
    """V1 paper Table 4: the same body with 3x3 full convolutions: 4866M mult-adds (conv layers), 29.3M params."""
    arch = resolve(make_config("mobilenet_v1"))
    side = conv_output_size(224, 3, 2)
    macs, params = F.standard_conv_macs(3, 3, 32, side), F.standard_conv_params(3, 3, 32)
    for block in arch.blocks:
        side = conv_output_size(side, 3, block.stride)
        macs += F.standard_conv_macs(3, block.in_ch, block.out_ch, side)
        params += F.standard_conv_params(3, block.in_ch, block.out_ch)
    params += 1024 * 1000  # the FC layer
    _, printed_macs, printed_params = V1_TABLE4_FULL_CONV
    assert macs // 10**6 == printed_macs
    assert within_printed_precision(params / 1e6, printed_params)


def published_id(row):
    options = ",".join(f"{k}={v}" for k, v in row.options)
    return f"{row.name}-{row.alpha}-{row.resolution}" + (f"-{options}" if options else "")


@pytest.mark.parametrize("row", PUBLISHED, ids=published_id)
def test_published_rows(row):
    key = (row.name, row.alpha, row.options)
    num_classes = 1000 if row.name == "mobilenet_v1" else 1001  # TF-slim's V2/V3 tables count a 1001-way classifier
    report = profile(row.name, resolution=row.resolution, alpha=row.alpha, num_classes=num_classes, **dict(row.options))
    macs_m, params_m = report.macs / 1e6, report.params_conv_linear / 1e6
    reproduced = within_printed_precision(macs_m, row.macs_m) and within_printed_precision(params_m, row.params_m)
    assert reproduced == (key not in UNREPRODUCED), f"ours {macs_m:.2f}M / {params_m:.3f}M vs {row}"


@pytest.mark.parametrize("row", V2_TABLE, ids=published_id)
def test_tfslim_v2_table_exactly(row):
    """The 22-row table's own convention: MACs rounded down; params = conv and classifier weights and biases, no BN."""
    report = profile("mobilenet_v2", resolution=row.resolution, alpha=row.alpha, num_classes=1001)
    assert report.macs // 10**6 == row.macs_m
    assert round(report.params_conv_linear / 1e6, 2) == row.params_m


def test_torchvision_totals():
    for name, published in TORCHVISION.items():
        report = profile(name)
        assert report.params == published["params"]
        if "macs" in published:
            assert report.macs == published["macs"]
        else:
            assert round(report.macs / 1e9, 2) == published["macs_g"]


def test_conventions_are_one_sum_away():
    report = profile("mobilenet_v2")
    assert report.params == report.params_conv_linear + report.params_bn  # torchvision
    bn_channels = report.params_bn // 2
    assert report.bn_statistics == 2 * bn_channels
    assert report.params + report.bn_statistics == 3_538_984  # Keras "total params": 4 values per BN channel
    assert report.flops == 2 * report.macs


# --- counted == closed form -------------------------------------------------------------------------------------

FAMILY = [
    ("mobilenet_v1", {}),
    ("mobilenet_v1", {"alpha": 0.33, "shallow": True}),
    ("mobilenet_v2", {}),
    ("mobilenet_v2", {"alpha": 1.4, "t": 4.0, "num_classes": 10}),
    ("mobilenet_v3_large", {"alpha": 0.75, "expansion": "input", "head": "fixed"}),
    ("mobilenet_v3_large", {"minimal": True, "in_chans": 1}),
    ("mobilenet_v3_small", {}),
    ("mobilenet_v3_small", {"alpha": 0.35, "small_input": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), FAMILY)
@pytest.mark.parametrize("resolution", [224, 161, 64])
def test_analytic_equals_counted(name, kwargs, resolution):
    report = profile(name, resolution=resolution, **kwargs)
    analytic = F.analytic_cost(resolve(make_config(name, **kwargs)), resolution)
    assert analytic.macs == report.macs
    assert analytic.params_conv_linear == report.params_conv_linear
    assert analytic.params_bn == report.params_bn
    assert analytic.params == report.params == sum(p.numel() for p in create_model(name, **kwargs).parameters())
    counted = {kind: row["macs"] for kind, row in report.by_kind().items()}
    assert counted == {kind: macs for kind, macs in analytic.by_kind.items() if macs}


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
@pytest.mark.parametrize(("resolution", "small_input"), [(224, False), (97, False), (33, False), (29, True)])
def test_twin_shapes_equal_torch_meta_inference(name, resolution, small_input):
    """The twin computes conv/linear shapes by formula; they must equal torch's own shape inference on meta."""
    with torch.device("meta"):
        model = create_model(name, small_input=small_input).eval()
    shapes = {}
    hooks = [
        module.register_forward_hook(lambda mod, i, o, name=n: shapes.__setitem__(name, tuple(o.shape[1:])))
        for n, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    with torch.no_grad():
        model(torch.empty(1, 3, resolution, resolution, device="meta"))
    for hook in hooks:
        hook.remove()
    report = profile(name, resolution=resolution, small_input=small_input)
    assert {layer.name: layer.out_shape for layer in report.layers} == shapes


def test_element_wise_work_is_counted():
    v3 = profile("mobilenet_v3_large").elementwise
    for kind in ("batchnorm", "hswish", "hsigmoid", "relu", "se_pool", "se_scale", "residual_add", "global_pool"):
        assert v3[kind] > 0, kind
    assert v3["global_pool"] == 960 * 7 * 7
    v2 = profile("mobilenet_v2").elementwise
    assert "hswish" not in v2
    assert (
        v2["residual_add"]
        == 16 * 0 + 24 * 56 * 56 + 32 * 28 * 28 * 2 + 64 * 14 * 14 * 3 + 96 * 14 * 14 * 2 + 160 * 7 * 7 * 2
    )


def test_report_json():
    import json

    data = json.loads(profile("mobilenet_v3_small", resolution=96).to_json())
    assert data["macs"] == sum(layer["macs"] for layer in data["layers"])
    assert {"name", "kind", "in_shape", "out_shape", "macs", "params", "intensity"} <= set(data["layers"][0])
    assert math.isclose(sum(row["macs_share"] for row in data["by_kind"].values()), 1.0)


def test_profile_bad_input():
    with pytest.raises(ValueError, match="too small"):
        profile("mobilenet_v2", resolution=16)
    with pytest.raises(TypeError, match="int"):
        profile("mobilenet_v2", resolution=224.0)
    with pytest.raises(TypeError, match="create_model arguments"):
        profile(create_model("mobilenet_v2"), alpha=0.5)
    with pytest.raises(ValueError, match="did you mean"):
        profile("mobilenet_v22")


def test_profile_of_a_built_model_equals_profile_of_its_name():
    model = create_model("mobilenet_v3_small", alpha=0.5, num_classes=10)
    assert profile(model, resolution=128) == profile("mobilenet_v3_small", alpha=0.5, num_classes=10, resolution=128)


# --- closed forms against single counted layers (hypothesis) ----------------------------------------------------

channels = st.integers(1, 64)
kernels = st.sampled_from([1, 3, 5, 7])
strides = st.sampled_from([1, 2])
sides = st.integers(1, 40)


@settings(max_examples=40, deadline=None)
@given(c_in=channels, c_out=channels, kernel=kernels, stride=strides, side=sides)
def test_standard_conv(c_in, c_out, kernel, stride, side):
    conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False, device="meta")
    (layer,), _ = count_module(conv, (1, c_in, side, side))
    out = conv_output_size(side, kernel, stride)
    assert layer.macs == F.standard_conv_macs(kernel, c_in, c_out, out)
    assert layer.params == F.standard_conv_params(kernel, c_in, c_out)


@settings(max_examples=40, deadline=None)
@given(c_in=channels, c_out=channels, kernel=kernels, stride=strides, side=sides)
def test_separable_conv_and_reduction_factor(c_in, c_out, kernel, stride, side):
    pair = nn.Sequential(
        nn.Conv2d(c_in, c_in, kernel, stride, kernel // 2, groups=c_in, bias=False, device="meta"),
        nn.Conv2d(c_in, c_out, 1, bias=False, device="meta"),
    )
    layers, _ = count_module(pair, (1, c_in, side, side))
    out = conv_output_size(side, kernel, stride)
    assert sum(la.macs for la in layers) == F.separable_conv_macs(kernel, c_in, c_out, out)
    assert sum(la.params for la in layers) == F.separable_conv_params(kernel, c_in, c_out)
    ratio = F.standard_conv_macs(kernel, c_in, c_out, out) / F.separable_conv_macs(kernel, c_in, c_out, out)
    assert ratio == pytest.approx(F.reduction_factor(kernel, c_out))


@settings(max_examples=30, deadline=None)
@given(
    c_in=st.integers(4, 48),
    c_out=st.integers(4, 48),
    t=st.sampled_from([2, 3, 6]),
    kernel=st.sampled_from([3, 5]),
    stride=strides,
    half_side=st.integers(2, 16),
)
def test_inverted_residual_macs_per_pixel(c_in, c_out, t, kernel, stride, half_side):
    side = 2 * half_side  # divisible by the stride: the formula is exact
    row = Layer("b", "bottleneck", c_in, c_out, kernel, stride, "relu6", mid_ch=t * c_in)
    block = InvertedResidual(row, bn_eps=1e-5, bn_momentum=0.1, device="meta")
    layers, _ = count_module(block, (1, c_in, side, side))
    per_pixel = sum(layer.macs for layer in layers) / (side * side)
    assert per_pixel == pytest.approx(F.inverted_residual_macs_per_pixel(c_in, c_out, t, kernel, stride))


@pytest.mark.parametrize(("alpha", "rho"), [(0.5, 1.0), (1.0, 0.5), (0.75, 0.714)])
def test_alpha_rho_scaling_of_one_layer(alpha, rho):
    """Cost scales exactly by alpha^2 rho^2 where channels and sides stay integers (V1 paper, eqs. 6-7)."""
    base = F.separable_conv_macs(3, 512, 512, 14)
    scaled = F.separable_conv_macs(3, round(512 * alpha), round(512 * alpha), round(14 * rho))
    pointwise_share = 512 / (9 + 512)
    expected = base * (pointwise_share * alpha**2 + (1 - pointwise_share) * alpha) * (round(14 * rho) / 14) ** 2
    assert scaled == pytest.approx(expected)
    assert scaled / base == pytest.approx(F.width_resolution_scaling(alpha, rho), rel=0.02)


def test_width_scaling_per_layer_kind_is_exact():
    """V1 at alpha 0.5 halves every width exactly: 1x1 convs cost alpha^2, depthwise convs, the stem (3 input
    channels) and the classifier only alpha. That is why the whole network scales by 'roughly' alpha^2."""
    full, half = profile("mobilenet_v1").by_kind(), profile("mobilenet_v1", alpha=0.5).by_kind()
    assert half["pointwise"]["macs"] * 4 == full["pointwise"]["macs"]
    for kind in ("depthwise", "standard", "linear"):
        assert half[kind]["macs"] * 2 == full[kind]["macs"], kind


@pytest.mark.parametrize(("alpha", "rho"), [(0.5, 1.0), (1.0, 0.571), (0.75, 0.857), (0.25, 0.714)])
def test_family_scaling_is_roughly_alpha_squared_rho_squared(alpha, rho):
    base = profile("mobilenet_v1").macs
    ratio = profile("mobilenet_v1", alpha=alpha, resolution=round(224 * rho)).macs / base
    law = F.width_resolution_scaling(alpha, rho)
    assert law <= ratio <= law * 1.2  # the alpha-linear layers only add to the law, most at small alpha (16% at 0.25)


# --- receptive field -------------------------------------------------------------------------------------------


def test_receptive_field_closed_form_against_backprop():
    """R = 1 + sum (K_l - 1) prod s_i, checked by the gradient footprint of one output of a linear conv chain."""
    kernels, strides = [3, 3, 5, 1, 3], [2, 1, 2, 1, 2]
    chain = nn.Sequential(*(nn.Conv2d(1, 1, k, s, bias=False) for k, s in zip(kernels, strides, strict=True)))
    for conv in chain:
        nn.init.constant_(conv.weight, 1.0)
    x = torch.ones(1, 1, 96, 96, requires_grad=True)
    y = chain(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    footprint = int((x.grad[0, 0].abs().sum(0) > 0).sum())
    assert footprint == F.receptive_field(kernels, strides) == 1 + 2 * 1 + 2 * 2 + 4 * 2 + 0 * 4 + 2 * 4


def test_v1_receptive_field():
    # stem 3 (jump 2); 13 depthwise 3x3 layers add 2 * jump each: 7 11 19 27 43 59 91 123 155 187 219 251 315
    rows = receptive_field(resolve(make_config("mobilenet_v1")))
    assert [field for _, field, _ in rows] == [3, 7, 11, 19, 27, 43, 59, 91, 123, 155, 187, 219, 251, 315]
    assert profile("mobilenet_v1").receptive_field == 315


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_receptive_field_rows_equal_the_closed_form(name):
    arch = resolve(make_config(name))
    spatial = [arch.stem, *arch.blocks]
    expected = F.receptive_field([la.kernel for la in spatial], [la.stride for la in spatial])
    assert receptive_field(arch)[-1][1] == expected == profile(name).receptive_field


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_per_layer_receptive_field_traced_equals_resolved(name):
    """The trace's field after each block's last conv equals the resolved rows' (and the stem's after the stem)."""
    report = profile(name, resolution=128)
    traced = {layer.name.rsplit(".", 2)[0]: layer.receptive_field for layer in report.layers if layer.kind != "linear"}
    resolved = {row: field for row, field, _ in receptive_field(resolve(make_config(name)))}
    assert traced == resolved


def test_quantization_mse_matches_simulation():
    torch.manual_seed(0)
    x = torch.rand(200_000) * 6.0  # a ReLU6 range
    step = F.quantization_step(0.0, 6.0, bits=8)
    error = torch.round(x / step) * step - x
    assert error.pow(2).mean().item() == pytest.approx(F.quantization_mse(step), rel=0.02)


class _NamedConv(nn.Conv2d):
    """A subclass that only adds an attribute: the same function as nn.Conv2d."""

    tag = "mine"


class _DoubledConv(nn.Conv2d):
    """A subclass with its own forward: runs the convolution on a 2x upsampled input."""

    def forward(self, x):
        return super().forward(torch.nn.functional.interpolate(x, scale_factor=2.0))


class _Scaled(nn.Module):
    """A module with a parameter of its own that is neither a convolution nor a linear layer."""

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.gain


def test_count_module_counts_conv_and_linear_subclasses_by_their_shapes():
    (plain,), _ = count_module(nn.Conv2d(8, 16, 3, padding=1), (1, 8, 20, 20))
    (named,), _ = count_module(_NamedConv(8, 16, 3, padding=1), (1, 8, 20, 20))
    assert named.macs == plain.macs == 3 * 3 * 8 * 16 * 20 * 20
    (doubled,), _ = count_module(_DoubledConv(8, 16, 3, padding=1), (1, 8, 20, 20))
    assert doubled.macs == 4 * plain.macs  # its own forward ran: a 40x40 output
    assert doubled.out_shape == (16, 40, 40)

    class _MyLinear(nn.Linear):
        pass

    layers, _ = count_module(nn.Sequential(nn.Flatten(), _MyLinear(12, 5)), (1, 3, 2, 2))
    assert [(la.kind, la.macs) for la in layers] == [("linear", 60)]


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (nn.Conv1d(4, 8, 3), "the module (Conv1d)"),
        (nn.Sequential(nn.Conv2d(4, 8, 1), _Scaled()), "1 (_Scaled)"),
        (nn.Sequential(nn.Conv2d(4, 8, 1), nn.ConvTranspose2d(8, 4, 2)), "1 (ConvTranspose2d)"),
    ],
)
def test_count_module_refuses_what_it_cannot_count_and_names_it(module, named):
    with pytest.raises(ValueError, match=rf"cannot count 1 module\(s\) that hold parameters: {re.escape(named)}"):
        count_module(module, (1, 4, 8, 8))


def test_concurrent_profiles_do_not_mix_their_layers():
    from concurrent.futures import ThreadPoolExecutor

    jobs = [("mobilenet_v2", 224), ("mobilenet_v2", 160), ("mobilenet_v3_small", 224), ("mobilenet_v2", 96)] * 8
    expected = {
        job: (profile(job[0], resolution=job[1]).macs, len(profile(job[0], resolution=job[1]).layers))
        for job in set(jobs)
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: profile(job[0], resolution=job[1]), jobs))
    assert [(r.macs, len(r.layers)) for r in results] == [expected[job] for job in jobs]
