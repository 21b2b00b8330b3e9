"""The MobileNet building blocks, each built from one resolved `Layer` row.

Children are named after the papers' words (`expand`, `dw`, `se`, `project`; `conv`, `bn`, `act` inside), so that
fusion, quantization and weight conversion address names, never `nn.Sequential` indices.
"""

from __future__ import annotations

import torch
from torch import nn

from mobilenet.resolve import Layer
from mobilenet.specs import Activation

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
}


def make_activation(name: Activation | None) -> nn.Module:
    if name is None:
        return nn.Identity()
    return _ACTIVATIONS[name](inplace=True)


class ConvBNAct(nn.Module):
    """k x k convolution (no bias), BatchNorm, then an activation (`nn.Identity` for a linear layer)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: Activation | None = None,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        padding = (kernel - 1) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False, device=device)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum, device=device)
        self.act = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite as in MobileNetV3: global pool, 1x1 reduce + ReLU, 1x1 expand + hard-sigmoid, rescale."""

    def __init__(self, channels: int, squeeze: int, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1, device=device)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1, device=device)
        self.gate = nn.Hardsigmoid()  # paper, section 5.3: hard-sigmoid replaces the sigmoid of SENet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.gate(self.expand(self.act(self.reduce(scale))))
        return x * scale


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's block: depthwise k x k + BN + act, then pointwise 1x1 + BN + act."""

    def __init__(self, layer: Layer, **factory) -> None:
        super().__init__()
        bn = factory  # bn_eps, bn_momentum, device
        self.dw = ConvBNAct(layer.in_ch, layer.in_ch, layer.kernel, layer.stride, layer.in_ch, layer.act, **bn)
        self.pw = ConvBNAct(layer.in_ch, layer.out_ch, 1, 1, 1, layer.act, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3's block: [1x1 expand] -> depthwise k x k -> [squeeze-excite] -> linear 1x1 project, + skip."""

    def __init__(self, layer: Layer, **factory) -> None:
        super().__init__()
        bn = factory  # bn_eps, bn_momentum, device
        mid = layer.mid_ch
        self.residual = layer.residual
        self.expand = ConvBNAct(layer.in_ch, mid, 1, 1, 1, layer.act, **bn) if layer.has_expand else None
        self.dw = ConvBNAct(mid, mid, layer.kernel, layer.stride, mid, layer.act, **bn)
        self.se = SqueezeExcite(mid, layer.se_ch, bn.get("device")) if layer.se_ch else None
        # paper (V2, section 3.2): the projection is linear; a ReLU here would destroy information
        self.project = ConvBNAct(mid, layer.out_ch, 1, 1, 1, None, **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return x + out if self.residual else out


class LinearAct(nn.Module):
    """A fully connected layer with bias and an activation: V3's 1x1 'NBN' layer after pooling."""

    def __init__(self, layer: Layer, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.fc = nn.Linear(layer.in_ch, layer.out_ch, device=device)
        self.act = make_activation(layer.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))
