"""The MobileNet papers' architecture tables, as data.

Each version is one table written as its paper prints it, one frozen row per line, the columns in the paper's
order. Nothing here knows about width multipliers, rounding or torch: `mobilenet.resolve` turns these rows into
concrete layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Activation = Literal["relu", "relu6", "hswish"]


@dataclass(frozen=True)
class Conv:
    """A plain convolution + BN + activation (stems)."""

    kernel: int
    stride: int
    c: int


@dataclass(frozen=True)
class Separable:
    """V1's depthwise separable pair: k x k depthwise at stride s, then a 1x1 conv to c channels, n times."""

    kernel: int
    stride: int
    c: int
    n: int = 1
    shallow_drops: bool = False  # paper, Table 5: the shallow model removes these layers


@dataclass(frozen=True)
class Bottleneck:
    """V2's inverted residual with linear bottleneck: expansion t, c output channels, n repeats, stride s."""

    t: float
    c: int
    n: int
    s: int


@dataclass(frozen=True)
class Bneck:
    """V3's bneck: kernel, expansion size, output channels, squeeze-excite, non-linearity, stride."""

    kernel: int
    exp: int
    c: int
    se: bool
    nl: Activation
    s: int


@dataclass(frozen=True)
class VersionSpec:
    """Everything `resolve` needs to know about one version, including its width rule and options."""

    name: str
    source: str
    stem: Conv
    body: tuple[Separable | Bottleneck | Bneck, ...]
    # Width rule: "floor" is V1's max(int(c * alpha), min_channels); "divisible" is make_divisible(c * alpha, 8).
    rounding: Literal["floor", "divisible"]
    head: int = 0  # the last 1x1 conv's channels (V2: 1280); 0 = none (V1)
    head_expand: int = 0  # V3: the last 1x1 conv has head_expand x the last block's channels
    head_min_alpha_1: bool = False  # V2: the last conv never shrinks below its alpha=1 width
    pre_logits: int = 0  # V3: the 1x1 (no BN) layer after pooling: 1280 / 1024
    activation: Activation = "relu6"  # stem and head activation
    head_activation: Activation = "relu6"
    min_channels: int = 8
    divisor: int = 8
    se_ratio: float = 0.25  # squeeze width = make_divisible(expanded * se_ratio, divisor)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1  # PyTorch's convention: weight of the new batch statistic
    dropout: float = 0.2
    options: dict[str, object] = field(default_factory=dict)  # version options and their defaults
    # The widths and input sides the authors released or tabulated: the grid `mobilenet family` walks.
    published_alphas: tuple[float, ...] = (1.0,)
    published_resolutions: tuple[int, ...] = (224,)


# MobileNetV1, arXiv:1704.04861, Table 1; one row = "Conv dw / s" + "Conv 1x1 / s1" pair.
#                                kernel stride  c
V1 = VersionSpec(
    name="mobilenet_v1",
    source="Howard et al. 2017, MobileNets, arXiv:1704.04861, Table 1",
    stem=Conv(3, 2, 32),
    body=(
        Separable(3, 1, 64),
        Separable(3, 2, 128),
        Separable(3, 1, 128),
        Separable(3, 2, 256),
        Separable(3, 1, 256),
        Separable(3, 2, 512),
        Separable(3, 1, 512, n=5, shallow_drops=True),  # paper: "5x" at 14x14x512
        Separable(3, 2, 1024),
        # deviation: the paper prints s2 on a 7x7 input; TF-slim's reference code and the paper's 569M
        # multiply-adds need stride 1 here.
        Separable(3, 1, 1024),
    ),
    rounding="floor",  # TF-slim mobilenet_v1.py: depth = max(int(d * depth_multiplier), min_depth)
    # deviation: the paper writes ReLU; TF-slim's reference implementation and released checkpoints use ReLU6.
    activation="relu6",
    head_activation="relu6",
    bn_eps=1e-3,  # TF-slim's batch_norm epsilon
    dropout=1e-3,  # TF-slim: dropout_keep_prob=0.999
    options={"shallow": False, "activation": "relu6"},
    published_alphas=(1.0, 0.75, 0.5, 0.25),  # paper, Tables 6-7
    published_resolutions=(224, 192, 160, 128),
)

# MobileNetV2, arXiv:1801.04381, Table 2.
#                     t    c    n  s
V2 = VersionSpec(
    name="mobilenet_v2",
    source="Sandler et al. 2018, MobileNetV2, arXiv:1801.04381, Table 2",
    stem=Conv(3, 2, 32),
    body=(
        Bottleneck(1, 16, 1, 1),
        Bottleneck(6, 24, 2, 2),
        Bottleneck(6, 32, 3, 2),
        Bottleneck(6, 64, 4, 2),
        Bottleneck(6, 96, 3, 1),
        Bottleneck(6, 160, 3, 2),
        Bottleneck(6, 320, 1, 1),
    ),
    rounding="divisible",
    head=1280,
    # paper, section 6.1: "for multipliers less than one, we apply width multiplier to all layers except the very
    # last convolutional layer"; torchvision and TF-slim do the same.
    head_min_alpha_1=True,
    activation="relu6",
    head_activation="relu6",
    dropout=0.2,
    # t: the expansion factor of every row with t=6 (the first row keeps t=1)
    options={"t": 6.0, "activation": "relu6"},
    published_alphas=(1.4, 1.3, 1.0, 0.75, 0.5, 0.35),  # TF-slim mobilenet_v2 README, checkpoint table
    published_resolutions=(224, 192, 160, 128, 96),
)

# MobileNetV3-Large, arXiv:1905.02244, Table 1.
#                         k   exp   c    SE     NL     s
V3_LARGE = VersionSpec(
    name="mobilenet_v3_large",
    source="Howard et al. 2019, Searching for MobileNetV3, arXiv:1905.02244, Table 1",
    stem=Conv(3, 2, 16),
    body=(
        Bneck(3, 16, 16, False, "relu", 1),
        Bneck(3, 64, 24, False, "relu", 2),
        Bneck(3, 72, 24, False, "relu", 1),
        Bneck(5, 72, 40, True, "relu", 2),
        Bneck(5, 120, 40, True, "relu", 1),
        Bneck(5, 120, 40, True, "relu", 1),
        Bneck(3, 240, 80, False, "hswish", 2),
        Bneck(3, 200, 80, False, "hswish", 1),
        Bneck(3, 184, 80, False, "hswish", 1),
        Bneck(3, 184, 80, False, "hswish", 1),
        Bneck(3, 480, 112, True, "hswish", 1),
        Bneck(3, 672, 112, True, "hswish", 1),
        Bneck(5, 672, 160, True, "hswish", 2),
        Bneck(5, 960, 160, True, "hswish", 1),
        Bneck(5, 960, 160, True, "hswish", 1),
    ),
    rounding="divisible",
    # paper: conv2d 1x1 to 960 = 6 x 160. torchvision computes it as 6 x the resolved last block width, which
    # differs from make_divisible(960 * alpha) for some alphas; we follow it for weight compatibility.
    head_expand=6,
    pre_logits=1280,  # paper: conv2d 1x1, NBN, 1280, HS
    activation="hswish",
    head_activation="hswish",
    bn_eps=1e-3,  # torchvision / TF-slim V3
    bn_momentum=0.01,
    dropout=0.2,
    options={"minimal": False, "head": "scaled", "expansion": "scaled"},
    published_alphas=(1.0, 0.75),  # paper, Table 3; TF-slim mobilenet_v3 checkpoints
)

# MobileNetV3-Small, arXiv:1905.02244, Table 2.
#                         k   exp   c    SE     NL     s
V3_SMALL = VersionSpec(
    name="mobilenet_v3_small",
    source="Howard et al. 2019, Searching for MobileNetV3, arXiv:1905.02244, Table 2",
    stem=Conv(3, 2, 16),
    body=(
        Bneck(3, 16, 16, True, "relu", 2),
        Bneck(3, 72, 24, False, "relu", 2),
        Bneck(3, 88, 24, False, "relu", 1),
        Bneck(5, 96, 40, True, "hswish", 2),
        Bneck(5, 240, 40, True, "hswish", 1),
        Bneck(5, 240, 40, True, "hswish", 1),
        Bneck(5, 120, 48, True, "hswish", 1),
        Bneck(5, 144, 48, True, "hswish", 1),
        Bneck(5, 288, 96, True, "hswish", 2),
        Bneck(5, 576, 96, True, "hswish", 1),
        Bneck(5, 576, 96, True, "hswish", 1),
    ),
    rounding="divisible",
    # deviation: Table 2 marks SE on the 576-channel 1x1 conv; the released TF-slim and torchvision models have
    # none there, and neither do we.
    head_expand=6,
    pre_logits=1024,  # paper: conv2d 1x1, NBN, 1024, HS
    activation="hswish",
    head_activation="hswish",
    bn_eps=1e-3,
    bn_momentum=0.01,
    dropout=0.2,
    options={"minimal": False, "head": "scaled", "expansion": "scaled"},
    published_alphas=(1.0, 0.75),  # paper, Table 4; TF-slim mobilenet_v3 checkpoints
)

VERSIONS: dict[str, VersionSpec] = {spec.name: spec for spec in (V1, V2, V3_LARGE, V3_SMALL)}

# The versions torchvision implements, whose checkpoints `mobilenet.convert` reads (it has no MobileNetV1).
TORCHVISION_ARCHS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")

# The papers' input side (rho = 1): every table's cost figures are at 224 x 224.
BASE_RESOLUTION = 224
