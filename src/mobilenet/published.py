"""Figures the MobileNet authors and reference implementations published, as reference data.

Nothing here is computed: these are the numbers our own counts (`mobilenet.cost`) are tested against, and the
accuracies `mobilenet select` can rank by. Each table names its source and the counting convention it uses.
"""

from __future__ import annotations

from typing import NamedTuple

# --- MobileNetV1 (Howard et al. 2017, arXiv:1704.04861) --------------------------------------------------------

# TF-slim research/slim/nets/mobilenet_v1.py, module docstring: 1.0 at 224, conv weights only (no BN, no
# classifier), per layer. Layer k>=1 is the (depthwise, pointwise) pair of our `blocks.{k-1}`.
TFSLIM_V1_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("Conv2d_0", 864, 10_838_016),
    ("Conv2d_1_depthwise", 288, 3_612_672),
    ("Conv2d_1_pointwise", 2_048, 25_690_112),
    ("Conv2d_2_depthwise", 576, 1_806_336),
    ("Conv2d_2_pointwise", 8_192, 25_690_112),
    ("Conv2d_3_depthwise", 1_152, 3_612_672),
    ("Conv2d_3_pointwise", 16_384, 51_380_224),
    ("Conv2d_4_depthwise", 1_152, 903_168),
    ("Conv2d_4_pointwise", 32_768, 25_690_112),
    ("Conv2d_5_depthwise", 2_304, 1_806_336),
    ("Conv2d_5_pointwise", 65_536, 51_380_224),
    ("Conv2d_6_depthwise", 2_304, 451_584),
    ("Conv2d_6_pointwise", 131_072, 25_690_112),
    ("Conv2d_7_depthwise", 4_608, 903_168),
    ("Conv2d_7_pointwise", 262_144, 51_380_224),
    ("Conv2d_8_depthwise", 4_608, 903_168),
    ("Conv2d_8_pointwise", 262_144, 51_380_224),
    ("Conv2d_9_depthwise", 4_608, 903_168),
    ("Conv2d_9_pointwise", 262_144, 51_380_224),
    ("Conv2d_10_depthwise", 4_608, 903_168),
    ("Conv2d_10_pointwise", 262_144, 51_380_224),
    ("Conv2d_11_depthwise", 4_608, 903_168),
    ("Conv2d_11_pointwise", 262_144, 51_380_224),
    ("Conv2d_12_depthwise", 4_608, 225_792),
    ("Conv2d_12_pointwise", 524_288, 25_690_112),
    ("Conv2d_13_depthwise", 9_216, 451_584),
    ("Conv2d_13_pointwise", 1_048_576, 51_380_224),
)
TFSLIM_V1_TOTAL = (3_185_088, 567_716_352)  # (params, macs)

# V1 paper, Table 2: share of mult-adds and of parameters per layer type, in percent; conv and FC weights only,
# 1000-way FC. The paper prints Conv 3x3's mult-add share as 1.19; the column only sums to 100 with 1.91.
V1_TABLE2 = {
    "pointwise": (94.86, 74.59),  # "Conv 1x1"
    "depthwise": (3.06, 1.06),  # "Conv DW 3x3"
    "standard": (1.91, 0.02),  # "Conv 3x3" (the stem)
    "linear": (0.18, 24.33),  # "Fully Connected"
}

# V1 paper, Table 3: one 3x3 layer on a 14x14x512 map to 512 channels: (million mult-adds, million params).
V1_TABLE3 = {
    "convolution": (462, 2.36),
    "depthwise separable": (52.3, 0.27),
    "alpha = 0.75": (29.6, 0.15),
    "rho = 0.714": (15.1, 0.15),
}


class Published(NamedTuple):
    """One published family member: accuracy and cost as its source prints them."""

    name: str
    alpha: float
    resolution: int
    top1: float | None  # ImageNet top-1, percent
    macs_m: float  # million mult-adds, as printed
    params_m: float  # million parameters, as printed
    source: str
    options: tuple[tuple[str, object], ...] = ()


_V1 = "MobileNetV1 paper, arXiv:1704.04861"
_V2 = "TF-slim research/slim/nets/mobilenet/README.md, MobileNetV2 checkpoints"
_V3 = "TF-slim research/slim/nets/mobilenet/README.md, MobileNetV3 checkpoints"

# V1 paper, Tables 4-7 (1000 classes; mult-adds of conv and FC layers; parameters of conv and FC weights).
V1_TABLES = (
    Published("mobilenet_v1", 1.0, 224, 70.6, 569, 4.2, f"{_V1}, Tables 4, 6, 7"),
    Published("mobilenet_v1", 0.75, 224, 68.4, 325, 2.6, f"{_V1}, Tables 5, 6"),
    Published("mobilenet_v1", 0.5, 224, 63.7, 149, 1.3, f"{_V1}, Table 6"),
    Published("mobilenet_v1", 0.25, 224, 50.6, 41, 0.5, f"{_V1}, Table 6"),
    Published("mobilenet_v1", 1.0, 192, 69.1, 418, 4.2, f"{_V1}, Table 7"),
    Published("mobilenet_v1", 1.0, 160, 67.2, 290, 4.2, f"{_V1}, Table 7"),
    Published("mobilenet_v1", 1.0, 128, 64.4, 186, 4.2, f"{_V1}, Table 7"),
    Published("mobilenet_v1", 1.0, 224, 65.3, 307, 2.9, f"{_V1}, Table 5 (shallow)", (("shallow", True),)),
)
# V1 paper, Table 4: the same network with full 3x3 convolutions instead of depthwise separable ones.
V1_TABLE4_FULL_CONV = (71.7, 4866, 29.3)  # (top-1, million mult-adds, million params)

# TF-slim's MobileNetV1 checkpoint table (float models of the 2018_02_22 release; research/slim/nets/mobilenet_v1.md):
# every width x resolution with its ImageNet top-1, 1001 classes. (alpha, resolution, macs_m, params_m, top1)
_V1_SLIM = "TF-slim research/slim/nets/mobilenet_v1.md, MobileNet_v1 checkpoints (2018_02_22)"
_V1_SLIM_ROWS = (
    (1.0, 224, 569, 4.24, 70.9),
    (1.0, 192, 418, 4.24, 70.0),
    (1.0, 160, 291, 4.24, 68.0),
    (1.0, 128, 186, 4.24, 65.2),
    (0.75, 224, 317, 2.59, 68.4),
    (0.75, 192, 233, 2.59, 67.2),
    (0.75, 160, 162, 2.59, 65.3),
    (0.75, 128, 104, 2.59, 62.1),
    (0.5, 224, 150, 1.34, 63.3),
    (0.5, 192, 110, 1.34, 61.7),
    (0.5, 160, 77, 1.34, 59.1),
    (0.5, 128, 49, 1.34, 56.3),
    (0.25, 224, 41, 0.47, 49.8),
    (0.25, 192, 34, 0.47, 47.7),
    (0.25, 160, 21, 0.47, 45.5),
    (0.25, 128, 14, 0.47, 41.5),
)
V1_CHECKPOINTS = tuple(Published("mobilenet_v1", a, r, top1, m, p, _V1_SLIM) for a, r, m, p, top1 in _V1_SLIM_ROWS)
# Rows of that table whose printed MACs our count (= TF-slim's own V1 definition, tested against its docstring) does
# not reproduce: (alpha, resolution) -> why. Every other row agrees to the printed unit.
V1_CHECKPOINTS_UNREPRODUCED = {
    (0.75, 224): "printed 317M; the network counts 325.4M, as the paper's Table 6 (325M) does",
    (0.75, 192): "printed 233M; counted 239.3M: like every 0.75 row, 2.6% under the count",
    (0.75, 160): "printed 162M; counted 166.4M",
    (0.75, 128): "printed 104M; counted 106.8M",
    (0.25, 192): "printed 34M; counted 30.2M, between the 0.25 rows at 160 (21M) and 224 (41M) as rho^2 says",
}

# TF-slim's MobileNetV2 table: MACs in millions rounded down, first conv and a 1001-way classifier with bias
# included; parameters = conv and classifier weights and biases, no BN; the last conv kept at 1280 for alpha < 1.
# (alpha, resolution, macs_m, params_m, top1)
_V2_ROWS = (
    (1.4, 224, 582, 6.06, 75.0),
    (1.3, 224, 509, 5.34, 74.4),
    (1.0, 224, 300, 3.47, 71.8),
    (1.0, 192, 221, 3.47, 70.7),
    (1.0, 160, 154, 3.47, 68.8),
    (1.0, 128, 99, 3.47, 65.3),
    (1.0, 96, 56, 3.47, 60.3),
    (0.75, 224, 209, 2.61, 69.8),
    (0.75, 192, 153, 2.61, 68.7),
    (0.75, 160, 107, 2.61, 66.4),
    (0.75, 128, 69, 2.61, 63.2),
    (0.75, 96, 39, 2.61, 58.8),
    (0.5, 224, 97, 1.95, 65.4),
    (0.5, 192, 71, 1.95, 63.9),
    (0.5, 160, 50, 1.95, 61.0),
    (0.5, 128, 32, 1.95, 57.7),
    (0.5, 96, 18, 1.95, 51.2),
    (0.35, 224, 59, 1.66, 60.3),
    (0.35, 192, 43, 1.66, 58.2),
    (0.35, 160, 30, 1.66, 55.7),
    (0.35, 128, 20, 1.66, 50.8),
    (0.35, 96, 11, 1.66, 45.5),
)
V2_TABLE = tuple(Published("mobilenet_v2", a, r, top1, m, p, _V2) for a, r, m, p, top1 in _V2_ROWS)

# TF-slim's MobileNetV3 table (1001 classes; all at 224). Its 0.75 models expand by a factor of the scaled input
# width (`expansion="input"`) and, judging by their size, keep the 1280 pre-logits layer (`head="fixed"`).
_FIXED_INPUT = (("expansion", "input"), ("head", "fixed"))
V3_TABLE = (
    Published("mobilenet_v3_large", 1.0, 224, 75.2, 217, 5.4, _V3),
    Published("mobilenet_v3_large", 0.75, 224, 73.3, 155, 4.0, _V3, _FIXED_INPUT),
    Published("mobilenet_v3_large", 1.0, 224, 72.3, 209, 3.9, f"{_V3} (minimalistic)", (("minimal", True),)),
    Published("mobilenet_v3_small", 1.0, 224, 67.5, 66, 2.9, _V3),
    Published("mobilenet_v3_small", 0.75, 224, 65.4, 44, 2.4, _V3, _FIXED_INPUT),
    Published("mobilenet_v3_small", 1.0, 224, 61.9, 65, 2.0, f"{_V3} (minimalistic)", (("minimal", True),)),
)

# torchvision's model cards (ImageNet weights, 1000 classes): every trainable parameter; MACs as "GFLOPS".
TORCHVISION = {
    "mobilenet_v2": {"params": 3_504_872, "macs": 300_774_272, "top1": 71.878},
    "mobilenet_v3_large": {"params": 5_483_032, "macs_g": 0.22, "top1": 74.042},
    "mobilenet_v3_small": {"params": 2_542_856, "macs_g": 0.06, "top1": 67.668},
}

PUBLISHED = (*V1_TABLES, *V2_TABLE, *V3_TABLE)

# Rows our counts of the released architectures do not reproduce, and why (docs/cost.md has the figures).
UNREPRODUCED = {
    ("mobilenet_v3_small", 1.0, ()): "TF-slim's README prints 66M / 2.9M; its own V3_SMALL definition, torchvision "
    "and we count 56.5M / 2.53M (torchvision publishes 0.06 GFLOPS and 2,542,856 parameters for the same network). "
    "The README row matches no released definition.",
    ("mobilenet_v3_small", 0.75, _FIXED_INPUT): "TF-slim prints 44M / 2.4M; its definition at depth_multiplier 0.75 "
    "gives 43.4M / 2.03M. The 0.4M-parameter gap matches neither head policy.",
    ("mobilenet_v3_small", 1.0, (("minimal", True),)): "TF-slim prints 65M MACs; its V3_SMALL_MINIMALISTIC "
    "definition gives 52.3M (parameters agree: 2.0M). Like the other small rows, ~10M MACs above the code.",
}


# --- int8 accuracies --------------------------------------------------------------------------------------------
# What an int8 model of a configuration reached, as its source prints it: the selection uses these for int8
# backends instead of the float figure, labelled with how the model was quantized.
QAT = "quantization-aware training"
UNSTATED = "int8 checkpoint; the source does not say how it was quantized"


class PublishedInt8(NamedTuple):
    name: str
    alpha: float
    resolution: int
    top1: float  # ImageNet top-1 of the int8 model, percent
    method: str  # QAT, or UNSTATED
    source: str
    options: tuple[tuple[str, object], ...] = ()


# TF-slim's quantized MobileNetV1 checkpoints (research/slim/nets/mobilenet_v1.md, the 2018_08_02 release: trained
# with tf.contrib.quantize's simulated quantization, top-1 "validation on the actual TensorFlow Lite model").
_V1_QUANT = "TF-slim research/slim/nets/mobilenet_v1.md, MobileNet_v1_*_quant (2018_08_02, TFLite int8)"
_V1_QUANT_ROWS = (
    (1.0, 224, 70.1),
    (1.0, 192, 69.2),
    (1.0, 160, 67.2),
    (1.0, 128, 63.4),
    (0.75, 224, 66.8),
    (0.75, 192, 66.1),
    (0.75, 160, 62.3),
    (0.75, 128, 55.8),
    (0.5, 224, 60.7),
    (0.5, 192, 60.0),
    (0.5, 160, 57.7),
    (0.5, 128, 54.5),
    (0.25, 224, 48.0),
    (0.25, 192, 46.0),
    (0.25, 160, 43.4),
    (0.25, 128, 39.5),
)
_CONTRIB_QUANTIZE = "TensorFlow r1.15 tensorflow/contrib/quantize/README.md (8-bit weights and activations)"
_V3_8BIT = "TF-slim research/slim/nets/mobilenet/README.md, MobileNetV3 8-bit checkpoints"
_TORCHVISION_QAT = "torchvision model card, quantized weights (QNNPACK, quantization-aware training)"
PUBLISHED_INT8 = (
    *(PublishedInt8("mobilenet_v1", a, r, top1, QAT, _V1_QUANT) for a, r, top1 in _V1_QUANT_ROWS),
    PublishedInt8("mobilenet_v2", 1.0, 224, 70.8, QAT, _CONTRIB_QUANTIZE),
    PublishedInt8("mobilenet_v2", 1.0, 224, 71.658, QAT, _TORCHVISION_QAT),
    PublishedInt8("mobilenet_v3_large", 1.0, 224, 73.9, UNSTATED, _V3_8BIT),
    PublishedInt8("mobilenet_v3_large", 1.0, 224, 73.004, QAT, _TORCHVISION_QAT),
    PublishedInt8("mobilenet_v3_large", 1.0, 224, 71.3, UNSTATED, f"{_V3_8BIT} (minimalistic)", (("minimal", True),)),
    PublishedInt8("mobilenet_v3_small", 1.0, 224, 64.9, UNSTATED, _V3_8BIT),
)
