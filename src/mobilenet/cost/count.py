"""Counted cost: the real module traced on the `meta` device (shapes only, no memory, no weights).

Units and conventions, stated once:

- `macs`: multiply-accumulates of every convolution and fully connected layer, first conv and classifier
  included, batch 1 — the papers' "mult-adds". A k x k conv producing C_out x H x W from C_in / groups input
  channels costs k * k * (C_in / groups) * C_out * H * W. FLOPs, where a peer uses them, are 2 * macs.
- `params`: every trainable parameter (conv and linear weights and biases, BN's scale and shift) — torchvision's
  convention. The others are one sum away: `params_conv_linear` (no BN; TF-slim's tables), `params_bn`,
  `bn_statistics` (running mean and variance, 2 per BN channel; Keras's "total params" = params + bn_statistics).
- `elementwise`: the work the papers leave out, in elements touched per op (one per output element; a global
  pool counts its input elements): BN, each activation kind (h-swish and hard-sigmoid included), squeeze-excite's
  pooling and scaling, residual adds, the global pool.
- bytes: each conv/linear layer reads its input, weights and bias once and writes its output once, at
  `bytes_per_element` (4 for fp32); arithmetic intensity = macs / (bytes read + written).
"""

from __future__ import annotations

import copy
import functools
import json
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
from torch import nn

from mobilenet._io import InputError, InputTypeError
from mobilenet.layers import InvertedResidual, SqueezeExcite
from mobilenet.model import MobileNet, build
from mobilenet.resolve import ModelConfig, check_resolution, make_config
from mobilenet.specs import BASE_RESOLUTION, VERSIONS

Kind = Literal["standard", "depthwise", "pointwise", "squeeze_excite", "linear"]
KINDS: tuple[Kind, ...] = ("standard", "depthwise", "pointwise", "squeeze_excite", "linear")


class LayerCost(NamedTuple):
    """One conv or linear layer of a traced model (a NamedTuple: thousands are made per sweep)."""

    name: str
    kind: Kind
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int
    stride: int
    groups: int
    macs: int
    params: int  # this layer's weight + bias
    bias: int  # of which bias
    bytes_read: int
    bytes_written: int
    receptive_field: int  # input pixels one output position sees, along the convolution path

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, multiply-adds per byte moved."""
        return self.macs / self.bytes


@dataclass(frozen=True)
class CostReport:
    """The cost of one model at one input size. See the module docstring for the conventions."""

    name: str
    resolution: int
    layers: tuple[LayerCost, ...]
    params: int
    params_bn: int
    bn_statistics: int
    elementwise: dict[str, int] = field(default_factory=dict)
    receptive_field: int | None = None
    bytes_per_element: int = 4

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        """2 * macs, for comparison with peers that count a multiply and an add separately."""
        return 2 * self.macs

    @property
    def params_conv_linear(self) -> int:
        """Conv and linear weights and biases, no BN (TF-slim's convention)."""
        return sum(layer.params for layer in self.layers)

    def by_kind(self, biases: bool = True) -> dict[str, dict[str, float]]:
        """macs and params (and their shares of the conv + linear total) per layer kind, in `KINDS` order.

        `biases=False` counts weights only (the V1 paper's Table 2).
        """

        def params_of(layer: LayerCost) -> int:
            return layer.params if biases else layer.params - layer.bias

        total_macs = self.macs or 1
        total_params = sum(params_of(layer) for layer in self.layers) or 1
        rows: dict[str, dict[str, float]] = {}
        for kind in KINDS:
            layers = [layer for layer in self.layers if layer.kind == kind]
            if not layers:
                continue
            macs, params = sum(la.macs for la in layers), sum(params_of(la) for la in layers)
            rows[kind] = {
                "layers": len(layers),
                "macs": macs,
                "params": params,
                "macs_share": macs / total_macs,
                "params_share": params / total_params,
            }
        return rows

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "resolution": self.resolution,
            "macs": self.macs,
            "params": self.params,
            "params_conv_linear": self.params_conv_linear,
            "params_bn": self.params_bn,
            "bn_statistics": self.bn_statistics,
            "receptive_field": self.receptive_field,
            "bytes_per_element": self.bytes_per_element,
            "by_kind": self.by_kind(),
            "elementwise": dict(self.elementwise),
            "layers": [{**layer._asdict(), "intensity": layer.intensity} for layer in self.layers],
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def conv_kind(name: str, module: nn.Conv2d) -> Kind:
    if ".se." in f".{name}.":
        return "squeeze_excite"
    if module.groups > 1 and module.groups == module.in_channels == module.out_channels:
        return "depthwise"
    if module.kernel_size == (1, 1) and module.groups == 1:
        return "pointwise"
    return "standard"


# --- the meta twin --------------------------------------------------------------------------------------------
#
# A copy of the model on the meta device that runs the model's own forward code over its own module tree: conv and
# linear layers record their cost as they run, and shape-preserving element-wise ops (BN, activations,
# squeeze-excite's pool and scale, residual adds, the global pool) record their work without running it. Why not
# plain torch ops on meta: there, element-wise ops go through Python decompositions (0.1-1 ms each) and a
# convolution's shape inference costs 17-28 us, which makes a trace 3-5x slower than a real forward pass of the
# peers we measure against. Conv and linear layers compute their output shape with PyTorch's documented formula
# from their own attributes and check their input as the real op does; a test holds every shape equal to torch's
# own meta inference. No global hooks either: they force every module call onto PyTorch's slow path.


class _Recorder:
    """What one trace records. Each call of `_trace` makes its own and sets it in `_RECORDER` (a context variable:
    each thread sees its own), so that concurrent traces of one cached twin do not mix their layers."""

    def __init__(self, bytes_per_element: int = 4) -> None:
        self.layers: list[LayerCost] = []
        self.elementwise: Counter = Counter()
        self.bytes_per_element = bytes_per_element
        self.field, self.jump = 1, 1  # receptive field and input-pixel distance between outputs, so far

    def conv(self, module: nn.Conv2d, x: torch.Tensor, y: torch.Tensor) -> None:
        """Record a 2-D convolution from its input and output shapes."""
        kernel = module.kernel_size[0] * module.kernel_size[1]
        macs = y.numel() // y.shape[0] * (module.in_channels // module.groups) * kernel
        # R_L = 1 + sum (K_l - 1) * prod_{i<l} s_i along the forward order; squeeze-excite's 1x1 convs add nothing
        self.field += (module.kernel_size[0] - 1) * module.dilation[0] * self.jump
        self.jump *= module.stride[0]
        self.layers.append(_layer_cost(module, x, y, macs, conv_kind(module.twin_name, module), self))

    def linear(self, module: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> None:
        macs = y.numel() // y.shape[0] * module.in_features
        self.layers.append(_layer_cost(module, x, y, macs, "linear", self))


_RECORDER: ContextVar[_Recorder] = ContextVar("mobilenet.cost.count recorder")


def _empty(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """`x.new_empty(shape)`, without the Python decomposition `new_empty` goes through on meta tensors."""
    return torch.empty(shape, dtype=x.dtype, device=x.device)


class _TwinConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or isinstance(self.padding, str):
            y = super().forward(x)  # torch's own checks and errors, or 'same'/'valid' padding
        else:
            sides = [
                (side + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1  # torch.nn.Conv2d's documented shape
                for side, pad, dilation, kernel, stride in zip(
                    x.shape[2:], self.padding, self.dilation, self.kernel_size, self.stride, strict=True
                )
            ]
            y = _empty(x, (x.shape[0], self.out_channels, *sides))
        _RECORDER.get().conv(self, x, y)
        return y


class _TwinLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            return super().forward(x)  # torch's own error
        y = _empty(x, (*x.shape[:-1], self.out_features))
        _RECORDER.get().linear(self, x, y)
        return y


class _Elementwise(nn.Module):
    """Stands in for a BN or an activation: the shape passes through, the work is recorded."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _RECORDER.get().elementwise[self.kind] += x.numel()
        return x


class _TwinSqueezeExcite(SqueezeExcite):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.gate(self.expand(self.act(self.reduce(_empty(x, (x.shape[0], x.shape[1], 1, 1))))))
        elementwise = _RECORDER.get().elementwise
        elementwise["se_pool"] += x.numel()
        elementwise["se_scale"] += x.numel()
        return x


class _TwinInvertedResidual(InvertedResidual):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)  # `residual` is off in the twin: the add is recorded, not run
        _RECORDER.get().elementwise["residual_add"] += out.numel()
        return out


class _TwinGlobalPool(nn.AdaptiveAvgPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _RECORDER.get().elementwise["global_pool"] += x.numel()
        return _empty(x, (*x.shape[:2], *nn.modules.utils._pair(self.output_size)))


_ACTIVATION_NAMES = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hswish", nn.Hardsigmoid: "hsigmoid"}
_TWIN_CLASSES = {
    nn.Conv2d: _TwinConv2d,
    nn.Linear: _TwinLinear,
    SqueezeExcite: _TwinSqueezeExcite,
    nn.AdaptiveAvgPool2d: _TwinGlobalPool,
}


def _count_by_shapes(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    """Forward hook of a Conv2d or Linear subclass: its own forward runs (on meta), its cost is read from the
    shapes it took and gave."""
    recorder = _RECORDER.get()
    (recorder.conv if isinstance(module, nn.Conv2d) else recorder.linear)(module, inputs[0], output)


def _make_twin(model: nn.Module) -> list[str]:
    """Turn `model` (already a private meta copy) into a recording twin, in place. Returns the modules it cannot
    count ("name (Type)"): those holding parameters of their own that are neither a Conv2d or Linear (subclasses
    included), nor a BatchNorm2d (counted as element-wise work)."""
    uncounted = []
    for name, module in list(model.named_modules()):
        twin_class = _TWIN_CLASSES.get(type(module))
        if isinstance(module, InvertedResidual) and module.residual:
            twin_class, module.residual = _TwinInvertedResidual, False
        if twin_class is not None:
            module.__class__ = twin_class
        elif isinstance(module, nn.Conv2d | nn.Linear):  # a subclass: its forward may differ, so it runs as written
            module.register_forward_hook(_count_by_shapes)
        elif not isinstance(module, nn.BatchNorm2d) and next(module.parameters(recurse=False), None) is not None:
            uncounted.append(f"{name or 'the module'} ({type(module).__name__})")
        module.twin_name = name
        for child_name, child in list(module.named_children()):
            kind = "batchnorm" if isinstance(child, nn.BatchNorm2d) else _ACTIVATION_NAMES.get(type(child))
            if kind is not None:
                setattr(module, child_name, _Elementwise(kind))
    return uncounted


def _layer_cost(
    mod: nn.Module, x: torch.Tensor, y: torch.Tensor, macs: int, kind: Kind, recorder: _Recorder
) -> LayerCost:
    weight = mod.weight.numel()
    bias = mod.bias.numel() if mod.bias is not None else 0
    is_conv = isinstance(mod, nn.Conv2d)
    bytes_per_element = recorder.bytes_per_element
    x_elements, y_elements = x.numel() // x.shape[0], y.numel() // y.shape[0]
    return LayerCost(
        mod.twin_name,
        kind,
        tuple(x.shape[1:]),
        tuple(y.shape[1:]),
        mod.kernel_size[0] if is_conv else 1,
        mod.stride[0] if is_conv else 1,
        mod.groups if is_conv else 1,
        macs,
        weight + bias,
        bias,
        (x_elements + weight + bias) * bytes_per_element,
        y_elements * bytes_per_element,
        recorder.field,
    )


def _trace(model: nn.Module, input_shape: tuple[int, ...], bytes_per_element: int) -> _Recorder:
    """Run the twin `model` once on a meta input; return what it recorded (a recorder of this call's own)."""
    recorder = _Recorder(bytes_per_element)
    token = _RECORDER.set(recorder)
    try:
        with torch.no_grad():
            model(torch.empty(input_shape, device="meta"))
    finally:
        _RECORDER.reset(token)
    return recorder


def count_module(
    module: nn.Module, input_shape: tuple[int, ...], bytes_per_element: int = 4
) -> tuple[list[LayerCost], Counter]:
    """Per-layer costs and element-wise work of any module on an input of `input_shape` (batch 1 = per image).

    Traces a deep copy of `module` moved to the meta device (the copy holds the weights only until that move).
    Counted: every `nn.Conv2d` and `nn.Linear`, subclasses included (a subclass runs its own forward, and its cost
    is read from the shapes it takes and gives), as multiply-adds; `nn.BatchNorm2d`, ReLU, ReLU6, h-swish and
    h-sigmoid as element-wise work. Convolutions called as functions inside a forward are not seen.

    Raises:
        ValueError: naming every module that holds parameters of its own and is none of these (a `Conv1d`, a
            `LayerNorm`, ...): a count that silently left them out would be wrong.
    """
    twin = copy.deepcopy(module).to("meta").eval()
    uncounted = _make_twin(twin)
    if uncounted:
        raise InputError(
            f"count_module cannot count {len(uncounted)} module(s) that hold parameters: "
            f"{', '.join(uncounted[:12])}{' ...' if len(uncounted) > 12 else ''}; it counts Conv2d "
            f"and Linear layers (subclasses too), and BatchNorm2d and activations as element-wise "
            f"work"
        )
    recorder = _trace(twin, input_shape, bytes_per_element)
    return recorder.layers, recorder.elementwise


@dataclass(frozen=True)
class _Twin:
    model: MobileNet
    params: int
    params_bn: int
    bn_statistics: int


@functools.lru_cache(maxsize=128)
def _meta_twin(config: ModelConfig) -> _Twin:
    """The recording meta twin of a config, with its parameter counts.

    Cached: a meta model holds no memory, and the same member is profiled at many resolutions.
    """
    model = build(config, device="meta").eval()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params_bn = sum(p.numel() for bn in bns for p in bn.parameters())
    statistics = sum(bn.running_mean.numel() + bn.running_var.numel() for bn in bns)
    uncounted = _make_twin(model)
    if uncounted:  # every module of the family is counted: this is a bug, not bad input
        raise RuntimeError(f"the cost twin of {config} left modules uncounted: {uncounted}")
    return _Twin(model, params, params_bn, statistics)


def profile(
    model_or_name: MobileNet | ModelConfig | str,
    resolution: int = BASE_RESOLUTION,
    bytes_per_element: int = 4,
    **create_model_kwargs,
) -> CostReport:
    """The exact cost of a family member at `resolution` x `resolution`, traced on the meta device.

    `profile("mobilenet_v2", alpha=0.5, resolution=160)`, `profile(config)` for a `ModelConfig`, or `profile(model)`
    for a built `MobileNet` (its config is rebuilt on the meta device; its weights are not touched). Thread-safe:
    concurrent calls for one configuration share its cached twin, and each records into its own recorder.
    """
    if isinstance(model_or_name, (MobileNet, ModelConfig)):
        if create_model_kwargs:
            raise InputTypeError("profile(model or config) takes no create_model arguments; they come from the config")
        config = model_or_name if isinstance(model_or_name, ModelConfig) else model_or_name.config
    elif isinstance(model_or_name, str):
        config = make_config(model_or_name, **create_model_kwargs)
    else:
        kind = type(model_or_name).__name__
        raise InputTypeError(f"profile() takes a MobileNet, a ModelConfig or a model name, got {kind}")
    if config.features_only:
        raise InputError("profile() counts classifiers; build the model without features_only")
    twin = _meta_twin(config)
    check_resolution(twin.model.arch, resolution)
    shape = (1, config.in_chans, resolution, resolution)
    recorded = _trace(twin.model, shape, bytes_per_element)
    layers, elementwise = recorded.layers, recorded.elementwise
    return CostReport(
        name=config.name,
        resolution=resolution,
        layers=tuple(layers),
        params=twin.params,
        params_bn=twin.params_bn,
        bn_statistics=twin.bn_statistics,
        elementwise=dict(elementwise),
        receptive_field=max(layer.receptive_field for layer in layers),
        bytes_per_element=bytes_per_element,
    )


def family(num_classes: int = 1000) -> list[dict[str, object]]:
    """Every version at its published widths and resolutions, in the specs' order: `name`, `alpha`, `resolution`,
    `macs`, `params`, `receptive_field` (the `mobilenet family` table)."""
    rows = []
    for spec in VERSIONS.values():
        for alpha in spec.published_alphas:
            for resolution in spec.published_resolutions:
                report = profile(spec.name, resolution=resolution, alpha=alpha, num_classes=num_classes)
                rows.append(
                    {
                        "name": spec.name,
                        "alpha": alpha,
                        "resolution": resolution,
                        "macs": report.macs,
                        "params": report.params,
                        "receptive_field": report.receptive_field,
                    }
                )
    return rows
