"""`MobileNet`: one `nn.Module` for every version, built from resolved `Layer` rows; `create_model`."""

from __future__ import annotations

import torch
from torch import nn

from mobilenet._io import InputError, InputTypeError
from mobilenet.layers import ConvBNAct, DepthwiseSeparable, InvertedResidual, LinearAct
from mobilenet.resolve import Architecture, ModelConfig, make_config, resolve


class MobileNet(nn.Module):
    """A MobileNet V1/V2/V3 built from its resolved architecture.

    Children: `stem`, `blocks` (`blocks.N.dw/pw` for V1, `blocks.N.expand/dw/se/project` for V2/V3), `head` (the
    last 1x1 conv), `pool`, `pre_logits` (V3), `dropout`, `classifier`. With `features_only` the model stops after the
    deepest feature tap and `forward` returns the feature pyramid (see `feature_info`).
    """

    def __init__(self, arch: Architecture, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.arch = arch
        self.config: ModelConfig = arch.config
        spec = arch.spec
        bn = {"bn_eps": spec.bn_eps, "bn_momentum": spec.bn_momentum, "device": device}
        stem = arch.stem
        self.stem = ConvBNAct(stem.in_ch, stem.out_ch, stem.kernel, stem.stride, 1, stem.act, **bn)
        block_type = DepthwiseSeparable if spec.rounding == "floor" else InvertedResidual
        rows = arch.blocks[: arch.feature_taps[-1] + 1] if arch.config.features_only else arch.blocks
        self.blocks = nn.Sequential(*(block_type(row, **bn) for row in rows))
        self.feature_info = [
            {"module": f"blocks.{index}", "channels": arch.blocks[index].out_ch, "reduction": stride}
            for index, stride in zip(arch.feature_taps, arch.feature_strides(), strict=True)
        ]
        self.head = None
        self.pre_logits = None
        if arch.head is not None:
            head = arch.head
            self.head = ConvBNAct(head.in_ch, head.out_ch, 1, 1, 1, head.act, **bn)
        if arch.pre_logits is not None:
            self.pre_logits = LinearAct(arch.pre_logits, device)
        if arch.classifier is not None:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(arch.config.dropout)
            self.classifier = nn.Linear(arch.classifier.in_ch, arch.classifier.out_ch, device=device)
        if not next(self.parameters()).is_meta:  # a meta model has no values to initialise
            self.reset_parameters()

    @property
    def num_features(self) -> int:
        return self.arch.num_features

    def reset_parameters(self) -> None:
        """torchvision's initialisation: Kaiming-normal (fan_out) convs, unit BN, N(0, 0.01) linear layers."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the problem when `x` is not an (N, in_chans, H, W) batch the model can take."""
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{self.config.name} expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            hint = " (add the batch dimension with x.unsqueeze(0))" if x.dim() == 3 else ""
            raise InputError(f"{self.config.name} expects a 4-D batch (N, C, H, W), got shape {tuple(x.shape)}{hint}")
        channels = x.shape[1]
        if channels != self.config.in_chans:
            raise InputError(
                f"{self.config.name} was built for {self.config.in_chans} input channel(s), got a batch of shape "
                f"{tuple(x.shape)} with {channels}: create the model with in_chans={channels} or convert the images"
            )
        smallest = min(x.shape[2], x.shape[3])
        if smallest < self.arch.min_resolution:
            hint = "" if self.config.small_input else " or create the model with small_input=True"
            raise InputError(
                f"{self.config.name} downsamples by {self.arch.total_stride}; a {x.shape[2]}x{x.shape[3]} input is "
                f"too small: resize it to at least {self.arch.min_resolution} px{hint}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final feature map, before pooling."""
        x = self.blocks(self.stem(x))
        return x if self.head is None else self.head(x)

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The feature maps at the taps of `feature_info` (strides 4, 8, 16, 32 with the standard stem)."""
        x = self.stem(x)
        taps = set(self.arch.feature_taps)
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in taps:
                features.append(x)
        return features

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from the final feature map."""
        x = torch.flatten(self.pool(x), 1)
        if self.pre_logits is not None:
            x = self.pre_logits(x)
        return self.classifier(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            self.check_input(x)
        if self.config.features_only:
            return self.forward_pyramid(x)
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.config.options.items())
        return f"name={self.config.name!r}, alpha={self.config.alpha}" + (f", {options}" if options else "")


def create_model(
    name: str,
    alpha: float = 1.0,
    num_classes: int = 1000,
    in_chans: int = 3,
    small_input: bool = False,
    dropout: float | None = None,
    features_only: bool = False,
    **version_options: object,
) -> MobileNet:
    """Build a family member: `create_model("mobilenet_v2", alpha=0.5, num_classes=10)`.

    Args:
        name: one of `list_models()`.
        alpha: width multiplier; every layer's channels scale with it by the version's rounding rule.
        num_classes: classifier outputs.
        in_chans: input channels (1 for grayscale).
        small_input: keep the stem and the first downsampling stage at stride 1 (total stride 8, not 32), for
            28-64 px images.
        dropout: before the classifier; the version's default (V1 0.001, V2/V3 0.2) when None.
        features_only: build no head; `forward` returns the feature pyramid described by `model.feature_info`.
        **version_options: V1 `shallow`; V2 `t` (expansion factor, default 6); V3 `minimal` and `head`
            ("scaled" or "fixed"). Anything else raises TypeError.
    """
    config = make_config(name, alpha, num_classes, in_chans, small_input, dropout, features_only, **version_options)
    return build(config)


def build(config: ModelConfig, device: torch.device | str | None = None) -> MobileNet:
    """Build the model a validated config describes, its parameters on `device` (e.g. "meta": no memory)."""
    return MobileNet(resolve(config), device)
