"""Weight conversion from torchvision's MobileNetV2 / V3 state dicts to ours (same function, named children).

torchvision has no MobileNetV1. Its modules are `nn.Sequential` chains addressed by index; the mapping below walks
our resolved layers in order and names, for each of our modules, the torchvision module it corresponds to.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from mobilenet._io import InputError, check_output
from mobilenet.model import MobileNet, create_model
from mobilenet.resolve import Architecture
from mobilenet.specs import TORCHVISION_ARCHS
from mobilenet.weights import load_state_dict, read_safetensors, save, state_dict_mismatch

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def read_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict from a mapping, a `.safetensors` file or a `.pth`/`.pt` file (loaded with weights_only=True).

    Unwraps the usual containers (`{"state_dict": ...}`, `{"model": ...}`) and DistributedDataParallel's
    `module.` prefix.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(source)
        if path.suffix == ".safetensors":
            state, _ = read_safetensors(path)
        else:
            if not path.is_file():
                raise FileNotFoundError(f"no such weights file: {path}")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # torch raises UnpicklingError, RuntimeError or EOFError by format
                raise InputError(
                    f"{path} could not be read as a PyTorch state dict with weights_only=True ({error}); "
                    "re-save it with torch.save(model.state_dict(), path)"
                ) from error
    for container in ("state_dict", "model", "model_state_dict"):
        if container in state and isinstance(state[container], Mapping):
            state = dict(state[container])
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise InputError(f"not a state dict: entries {bad[:5]} are not tensors")
    return state


def from_torchvision(
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    arch: str,
    alpha: float = 1.0,
    num_classes: int | None = None,
    **options: object,
) -> MobileNet:
    """Our model computing the same function as torchvision's `arch(width_mult=alpha)` with these weights.

    Args:
        source: a torchvision state dict, or a `.pth`/`.safetensors` file holding one.
        arch: "mobilenet_v2", "mobilenet_v3_large" or "mobilenet_v3_small".
        alpha: torchvision's `width_mult`.
        num_classes: read from the classifier's weight when None.
        **options: further `create_model` options (e.g. `dropout`).

    Returns:
        the model in eval mode.
    """
    if arch not in TORCHVISION_ARCHS:
        raise InputError(f"torchvision has no {arch!r}; convertible: {', '.join(TORCHVISION_ARCHS)}")
    state = read_state_dict(source)
    classifier = "classifier.1.weight" if arch == "mobilenet_v2" else "classifier.3.weight"
    if num_classes is None:
        if classifier not in state:
            raise InputError(
                f"no {classifier!r} in the state dict, so it is not a torchvision {arch}; first keys: {list(state)[:5]}"
            )
        num_classes = int(state[classifier].shape[0])
    in_chans = int(state["features.0.0.weight"].shape[1]) if "features.0.0.weight" in state else 3
    if arch != "mobilenet_v2":
        options.setdefault("head", "scaled")  # torchvision scales V3's pre-logits layer with width_mult
    model = create_model(arch, alpha=alpha, num_classes=num_classes, in_chans=in_chans, **options)

    mapping = dict(torchvision_key_map(model.arch))
    expected = model.state_dict()
    renamed = {}
    for ours, theirs in mapping.items():
        if theirs in state:
            renamed[ours] = state[theirs]
        elif ours.endswith("num_batches_tracked"):
            renamed[ours] = expected[ours]  # a counter some exports drop; it does not affect the function
    leftover = sorted(set(state) - set(mapping.values()))
    problems = state_dict_mismatch(expected, renamed)
    if leftover or problems:
        extra = f"\n  torchvision keys with no place in {arch}: {leftover[:12]}" if leftover else ""
        raise InputError(
            f"the weights do not fit torchvision's {arch} at alpha={alpha} with {num_classes} classes "
            f"(wrong arch or alpha?); keys named as in our model:\n{problems}{extra}"
        )
    load_state_dict(model, renamed, source=f"torchvision {arch}")
    return model.eval()


def torchvision_key_map(arch: Architecture) -> Iterator[tuple[str, str]]:
    """(our key, torchvision key) for every parameter and buffer of the model `arch` describes."""

    def conv_bn(ours: str, conv: str, bn: str) -> Iterator[tuple[str, str]]:
        yield f"{ours}.conv.weight", f"{conv}.weight"
        for key in _BN_KEYS:
            yield f"{ours}.bn.{key}", f"{bn}.{key}"

    v2 = arch.config.name == "mobilenet_v2"
    yield from conv_bn("stem", "features.0.0", "features.0.1")
    for index, block in enumerate(arch.blocks):
        ours, theirs = f"blocks.{index}", f"features.{index + 1}.{'conv' if v2 else 'block'}"
        parts = ["expand"] if block.has_expand else []
        parts.append("dw")
        if block.se_ch:
            parts.append("se")
        for position, part in enumerate(parts):
            if part == "se":
                for ours_name, theirs_name in (("reduce", "fc1"), ("expand", "fc2")):
                    for key in ("weight", "bias"):
                        yield f"{ours}.se.{ours_name}.{key}", f"{theirs}.{position}.{theirs_name}.{key}"
            else:
                yield from conv_bn(f"{ours}.{part}", f"{theirs}.{position}.0", f"{theirs}.{position}.1")
        last = len(parts)
        if v2:  # V2's projection is a bare conv and BN, not a Conv2dNormActivation
            yield from conv_bn(f"{ours}.project", f"{theirs}.{last}", f"{theirs}.{last + 1}")
        else:
            yield from conv_bn(f"{ours}.project", f"{theirs}.{last}.0", f"{theirs}.{last}.1")
    head = f"features.{len(arch.blocks) + 1}"
    yield from conv_bn("head", f"{head}.0", f"{head}.1")
    if v2:
        yield from (("classifier.weight", "classifier.1.weight"), ("classifier.bias", "classifier.1.bias"))
    else:
        for ours, theirs in (("pre_logits.fc", "classifier.0"), ("classifier", "classifier.3")):
            yield from ((f"{ours}.weight", f"{theirs}.weight"), (f"{ours}.bias", f"{theirs}.bias"))


def convert_file(
    source: str | os.PathLike,
    out: str | os.PathLike,
    arch: str,
    alpha: float = 1.0,
    num_classes: int | None = None,
    prefix: str = "",
) -> tuple[Path, MobileNet]:
    """Convert a torchvision checkpoint file (only its keys under `prefix`, with the prefix removed, when given) into
    our safetensors file `out`; returns the file written and the model."""
    check_output(out)
    state = read_state_dict(source)
    if prefix:
        state = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
        if not state:
            raise InputError(f"no key of {source} starts with {prefix!r}")
    model = from_torchvision(state, arch, alpha=alpha, num_classes=num_classes)
    return save(model, out, metadata={"converted_from": f"torchvision {arch}"}), model
