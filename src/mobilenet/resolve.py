"""From a paper table and the user's knobs to concrete layers: the one place where width and rounding happen.

`make_config` validates what the user asked for; `resolve` expands repeats, applies the width multiplier with the
version's own rounding rule and returns an `Architecture`: one `Layer` row per built module, in order. Pure Python,
no torch, cheap enough to call for every member of the family.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from mobilenet._io import InputError, InputTypeError
from mobilenet.specs import BASE_RESOLUTION, VERSIONS, Activation, Bneck, Bottleneck, Separable, VersionSpec

MAX_ALPHA = 4.0  # the papers publish 0.25-1.4; past 4 a "mobile" network has 16x V2's cost and is a typo
MAX_EXPANSION = 32.0
HEAD_POLICIES = ("scaled", "fixed")
# V3's expanded width at alpha: "scaled" = make_divisible(exp * alpha) (torchvision); "input" = make_divisible(
# scaled input width * exp / paper input width) (TF-slim's `expand_input_by_factor`, its released 0.75 models).
EXPANSION_RULES = ("scaled", "input")
# V1/V2's `activation` option: the papers' ReLU6, or plain ReLU (to measure what the bound buys under quantization).
BOUNDED_ACTIVATIONS = ("relu6", "relu")


@dataclass(frozen=True)
class OptionRule:
    """What a version option may hold: a bool, a number in (0, `high`], or one of `choices`; `help` says what it
    does. The one definition of each option: configs are checked against it and the CLI's flags are made from it."""

    kind: type
    help: str
    choices: tuple[str, ...] = ()
    high: float = 0.0

    def check(self, name: str, value: object) -> object:
        if self.kind is bool:
            return _check_bool(name, value)
        if self.kind is float:
            if not _is_real(value) or not 0 < value <= self.high:
                raise InputError(f"{name} ({self.help}) must be a number in (0, {self.high:g}], got {value!r}")
            return float(value)
        if value not in self.choices:
            raise InputError(f"{name} must be one of {self.choices} ({self.help}), got {value!r}")
        return value


# Every version option any spec declares (`VersionSpec.options` names which a version takes, with its default).
OPTION_RULES: dict[str, OptionRule] = {
    "shallow": OptionRule(bool, "V1: drop the five 14x14 layers (the paper's shallow model)"),
    "t": OptionRule(float, "V2: expansion factor", high=MAX_EXPANSION),
    "activation": OptionRule(str, "V1/V2: every activation: ReLU6 (the papers) or ReLU", BOUNDED_ACTIVATIONS),
    "minimal": OptionRule(bool, "V3: minimalistic: no squeeze-excite, no h-swish, 3x3 kernels only"),
    "head": OptionRule(
        str, "V3: pre-logits width: 'scaled' with alpha (torchvision) or 'fixed' (TF-slim)", HEAD_POLICIES
    ),
    "expansion": OptionRule(
        str,
        "V3: expanded width: 'scaled' = the paper's times alpha (torchvision), 'input' = the factor times the scaled "
        "input width (TF-slim)",
        EXPANSION_RULES,
    ),
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to the nearest multiple of `divisor`, never below `min_value` nor below 90% of `value`.

    The rule of the TF-slim and torchvision reference implementations of MobileNetV2/V3.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:  # reference: "make sure that round down does not go down by more than 10%"
        rounded += divisor
    return rounded


def scale_width(spec: VersionSpec, channels: int, alpha: float) -> int:
    """Channels of a layer printed as `channels` in the paper, at width multiplier `alpha`, by the version's rule."""
    if spec.rounding == "floor":
        return max(int(channels * alpha), spec.min_channels)  # TF-slim mobilenet_v1.py, `depth()`
    return make_divisible(channels * alpha, spec.divisor)


def resolution(rho: float) -> int:
    """Input side for resolution multiplier rho: round(224 * rho) (0.571 -> 128, 0.714 -> 160, 0.857 -> 192)."""
    if not _is_real(rho) or not 0 < rho <= MAX_ALPHA:
        raise InputError(f"rho must be a number in (0, {MAX_ALPHA}], got {rho!r}")
    return round(BASE_RESOLUTION * rho)


class Options(Mapping[str, object]):
    """A version's options, complete and validated: a read-only, hashable mapping (so a config can be a cache key)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, object]) -> None:
        self._items = tuple(items.items())  # in the version's order, for a repr that reads like the spec

    def __getitem__(self, key: str) -> object:
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items))  # equal mappings hash equal, whatever their order

    def __repr__(self) -> str:
        return repr(dict(self._items))


@dataclass(frozen=True)
class ModelConfig:
    """Everything that determines a model: the arguments of `create_model`. Valid by construction: the constructor
    checks every field (raising TypeError/ValueError naming it) and completes the version's options with their
    defaults, so no invalid config can exist. Frozen and hashable; saved with the weights (`to_dict`/`from_dict`)."""

    name: str
    alpha: float = 1.0
    num_classes: int = 1000
    in_chans: int = 3
    small_input: bool = False
    dropout: float | None = None  # None: the version's own
    features_only: bool = False
    options: Mapping[str, object] = field(default_factory=dict)  # the version's own options; missing: defaults

    def __post_init__(self) -> None:
        spec = get_spec(self.name)
        if not _is_real(self.alpha) or not 0 < self.alpha <= MAX_ALPHA:
            raise InputError(f"alpha (width multiplier) must be a number in (0, {MAX_ALPHA}], got {self.alpha!r}")
        _check_int("num_classes", self.num_classes, 1)
        _check_int("in_chans", self.in_chans, 1)
        _check_bool("small_input", self.small_input)
        _check_bool("features_only", self.features_only)
        dropout = spec.dropout if self.dropout is None else self.dropout
        if not _is_real(dropout) or not 0 <= dropout < 1:
            raise InputError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if not isinstance(self.options, Mapping):
            raise InputTypeError(f"options must be a mapping of {self.name}'s options, got {self.options!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "dropout", float(dropout))
        object.__setattr__(self, "options", _version_options(spec, self.options))

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "alpha": self.alpha,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "small_input": self.small_input,
            "dropout": self.dropout,
            "features_only": self.features_only,
            **self.options,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ModelConfig:
        """The inverse of `to_dict` (the format checkpoints, ONNX files, run configs and results files store)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise InputError(f"a model config must be a JSON object with a 'name', got {data!r}")
        return make_config(**data)

    def changed_options(self) -> dict[str, object]:
        """The version options that differ from the version's defaults (what a label or a cache key names)."""
        defaults = get_spec(self.name).options
        return {key: value for key, value in self.options.items() if value != defaults[key]}

    def replace(self, **changes: object) -> ModelConfig:
        """A copy with `changes` (fields or version options), checked like any config."""
        data = self.to_dict()
        data.update(changes)
        return ModelConfig.from_dict(data)


@dataclass(frozen=True)
class Layer:
    """One built module: its name in the model, what it is, and its resolved widths.

    op "conv": k x k conv + BN + act (stem, head). "separable": V1's depthwise k x k + BN + act, then 1x1 + BN + act.
    "bottleneck": V2/V3's [1x1 expand + BN + act] -> depthwise k x k + BN + act -> [squeeze-excite] -> linear 1x1
    project + BN, with a skip connection when `residual`. "linear": a fully connected layer with bias (pre_logits,
    classifier).
    """

    name: str
    op: Literal["conv", "separable", "bottleneck", "linear"]
    in_ch: int
    out_ch: int
    kernel: int = 1
    stride: int = 1
    act: Activation | None = None
    mid_ch: int = 0  # bottleneck: the expanded width (== in_ch when there is no expansion layer)
    se_ch: int = 0  # bottleneck: squeeze-excite's reduced width; 0 = no squeeze-excite
    residual: bool = False

    @property
    def has_expand(self) -> bool:
        return self.op == "bottleneck" and self.mid_ch != self.in_ch


@dataclass(frozen=True)
class Architecture:
    """A resolved family member: the layers `mobilenet.model.MobileNet` builds, in order."""

    config: ModelConfig
    spec: VersionSpec
    stem: Layer
    blocks: tuple[Layer, ...]
    head: Layer | None  # the last 1x1 conv (V2, V3); V1 has none
    pre_logits: Layer | None  # V3's fully connected layer after pooling
    classifier: Layer | None  # None when features_only

    @property
    def layers(self) -> tuple[Layer, ...]:
        """Every layer, in forward order."""
        rows = (self.stem, *self.blocks, self.head, self.pre_logits, self.classifier)
        return tuple(row for row in rows if row is not None)

    @property
    def num_features(self) -> int:
        """Channels of the final feature map (the input of pooling)."""
        return (self.head or self.blocks[-1]).out_ch

    @property
    def total_stride(self) -> int:
        return math.prod(layer.stride for layer in (self.stem, *self.blocks))

    @property
    def min_resolution(self) -> int:
        """The smallest input side the network accepts: one pixel per output position of its last stride."""
        return self.total_stride

    def feature_map_size(self, resolution: int) -> int:
        """Side of the final feature map for a square input of side `resolution`."""
        check_resolution(self, resolution)
        size = resolution
        for layer in (self.stem, *self.blocks):
            size = conv_output_size(size, layer.kernel, layer.stride)
        return size

    @property
    def feature_taps(self) -> tuple[int, ...]:
        """Indices of the blocks whose outputs form the feature pyramid: the last block at each of the four
        deepest strides (4, 8, 16, 32 for the standard stem; 1, 2, 4, 8 with `small_input`)."""
        stride = self.stem.stride
        last_at_stride: dict[int, int] = {}
        for index, block in enumerate(self.blocks):
            stride *= block.stride
            last_at_stride[stride] = index
        return tuple(last_at_stride[s] for s in sorted(last_at_stride)[-4:])

    def feature_strides(self) -> tuple[int, ...]:
        """The total stride at each of `feature_taps`."""
        strides, stride = [], self.stem.stride
        taps = set(self.feature_taps)
        for index, block in enumerate(self.blocks):
            stride *= block.stride
            if index in taps:
                strides.append(stride)
        return tuple(strides)


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv with 'same'-style padding (kernel - 1) // 2, as every MobileNet layer uses."""
    padding = (kernel - 1) // 2
    return (size + 2 * padding - kernel) // stride + 1


def check_resolution(arch: Architecture, resolution: object) -> None:
    if not isinstance(resolution, int) or isinstance(resolution, bool):
        raise InputTypeError(f"resolution must be an int (pixels), got {type(resolution).__name__}")
    if resolution < arch.min_resolution:
        hint = "" if arch.config.small_input else ", or create the model with small_input=True"
        raise InputError(
            f"resolution {resolution} is too small for {arch.config.name}, which downsamples by "
            f"{arch.total_stride}: use at least {arch.min_resolution}{hint}"
        )


def list_models() -> list[str]:
    """The registered model names."""
    return sorted(VERSIONS)


def get_spec(name: object) -> VersionSpec:
    if not isinstance(name, str):
        raise InputTypeError(f"model name must be a str, got {type(name).__name__}")
    spec = VERSIONS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, VERSIONS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown model {name!r}{hint} Known models: {', '.join(list_models())}")
    return spec


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: object, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputTypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InputTypeError(f"{name} must be True or False, got {value!r}")
    return value


def _version_options(spec: VersionSpec, given: Mapping[str, object]) -> Options:
    """`given` completed with `spec`'s defaults and checked: unknown names, wrong types and values are refused."""
    unknown = sorted(set(given) - set(spec.options))
    if unknown:
        valid = ", ".join(sorted(spec.options)) or "none"
        raise InputTypeError(
            f"{spec.name} got unexpected keyword argument(s) {', '.join(unknown)}; its own options: {valid}"
        )
    resolved = {**spec.options, **given}
    return Options({key: OPTION_RULES[key].check(key, value) for key, value in resolved.items()})


def make_config(
    name: str,
    alpha: float = 1.0,
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
    dropout: float | None = None,
    features_only: bool = False,
    **options: object,
) -> ModelConfig:
    """`create_model`'s arguments as a `ModelConfig` (which checks them all); the version's options as keywords."""
    return ModelConfig(name, alpha, num_classes, in_chans, small_input, dropout, features_only, options)


def resolve(config: ModelConfig) -> Architecture:
    """Expand the version's table at the config's width into `Layer` rows."""
    spec = get_spec(config.name)
    alpha, options = config.alpha, config.options
    minimal = bool(options.get("minimal", False))
    act = options.get("activation", spec.activation)  # V1/V2 may swap ReLU6 for ReLU everywhere
    width = lambda c: scale_width(spec, c, alpha)  # noqa: E731 - the one width rule, named for readability

    # small_input keeps the stem and the first downsampling stage at stride 1 (total stride 32 -> 8).
    stride_one_left = 1 if config.small_input else 0
    stem_act = "relu" if minimal else act
    stem = Layer(
        "stem",
        "conv",
        config.in_chans,
        width(spec.stem.c),
        spec.stem.kernel,
        1 if config.small_input else spec.stem.stride,
        stem_act,
    )

    blocks: list[Layer] = []
    in_ch, paper_in_ch = stem.out_ch, spec.stem.c
    for row in spec.body:
        if isinstance(row, Separable):
            repeats = 0 if (row.shallow_drops and options.get("shallow")) else row.n
            kernel, first_stride, out_ch = row.kernel, row.stride, width(row.c)
        elif isinstance(row, Bottleneck):
            repeats, kernel, first_stride, out_ch = row.n, 3, row.s, width(row.c)
        else:
            repeats, kernel, first_stride, out_ch = 1, row.kernel, row.s, width(row.c)
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            if stride == 2 and stride_one_left:
                stride, stride_one_left = 1, 0
            name = f"blocks.{len(blocks)}"
            if isinstance(row, Separable):
                block = Layer(name, "separable", in_ch, out_ch, kernel, stride, act, mid_ch=in_ch)
            elif isinstance(row, Bottleneck):
                t = row.t if row.t == 1 else float(options["t"])
                block = Layer(
                    name,
                    "bottleneck",
                    in_ch,
                    out_ch,
                    kernel,
                    stride,
                    act,
                    mid_ch=round(in_ch * t),  # torchvision: hidden_dim = int(round(inp * expand_ratio))
                    residual=stride == 1 and in_ch == out_ch,
                )
            else:
                if options.get("expansion") == "input":
                    mid_ch = make_divisible(in_ch * row.exp / paper_in_ch, spec.divisor)
                else:
                    mid_ch = width(row.exp)
                block = _bneck(spec, row, name, in_ch, mid_ch, out_ch, stride, minimal)
            blocks.append(block)
            in_ch, paper_in_ch = out_ch, row.c

    head = pre_logits = classifier = None
    if not config.features_only:
        head_act = "relu" if minimal else options.get("activation", spec.head_activation)
        if spec.head:
            head_alpha = max(1.0, alpha) if spec.head_min_alpha_1 else alpha
            head = Layer("head", "conv", in_ch, make_divisible(spec.head * head_alpha, spec.divisor), 1, 1, head_act)
        elif spec.head_expand:
            head = Layer("head", "conv", in_ch, spec.head_expand * in_ch, 1, 1, head_act)
        features = (head or blocks[-1]).out_ch
        if spec.pre_logits:
            fixed = options.get("head") == "fixed"
            width_pre = spec.pre_logits if fixed else make_divisible(spec.pre_logits * alpha, spec.divisor)
            pre_logits = Layer("pre_logits", "linear", features, width_pre, act=head_act)
            features = width_pre
        classifier = Layer("classifier", "linear", features, config.num_classes)
    return Architecture(config, spec, stem, tuple(blocks), head, pre_logits, classifier)


def _bneck(
    spec: VersionSpec, row: Bneck, name: str, in_ch: int, mid_ch: int, out_ch: int, stride: int, minimal: bool
) -> Layer:
    # torchvision: squeeze width = _make_divisible(expanded // 4, 8), from the already-scaled expanded width
    se_ch = make_divisible(mid_ch * spec.se_ratio, spec.divisor) if row.se and not minimal else 0
    return Layer(
        name,
        "bottleneck",
        in_ch,
        out_ch,
        # TF-slim's "minimalistic" V3: 3x3 kernels only, ReLU only, no squeeze-excite
        3 if minimal else row.kernel,
        stride,
        "relu" if minimal else row.nl,
        mid_ch=mid_ch,
        se_ch=se_ch,
        residual=stride == 1 and in_ch == out_ch,
    )
