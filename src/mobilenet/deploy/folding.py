"""Fold every BatchNorm into the convolution before it, for inference."""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mobilenet._io import InputTypeError
from mobilenet.layers import ConvBNAct
from mobilenet.model import MobileNet


def fuse(model: MobileNet, inplace: bool = False) -> MobileNet:
    """A copy of `model` (or `model` itself with `inplace`) in eval mode with each `ConvBNAct`'s BN folded into its
    conv (which gains a bias) and replaced by `nn.Identity`. Module names stay as they were."""
    if not isinstance(model, MobileNet):
        raise InputTypeError(f"fuse() takes a mobilenet.MobileNet, got {type(model).__name__}")
    fused = model if inplace else copy.deepcopy(model)
    fused.eval()
    for module in fused.modules():
        if isinstance(module, ConvBNAct) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = nn.Identity()
    return fused


def is_fused(model: nn.Module) -> bool:
    return not any(isinstance(module, nn.BatchNorm2d) for module in model.modules())
