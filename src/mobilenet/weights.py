"""Weights on disk: safetensors files that carry the model's full config, so that a file rebuilds its model alone.

Nothing here unpickles: safetensors holds tensors and a string-to-string metadata header, nothing executable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mobilenet._io import InputError, InputTypeError, atomic_write
from mobilenet.metadata import CONFIG_KEY, stored_config
from mobilenet.model import MobileNet, build
from mobilenet.resolve import ModelConfig

FORMAT = "mobilenet"


def save(model: MobileNet, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write `model`'s weights and buffers as safetensors, its config in the metadata (with `metadata`: best made by
    `mobilenet.metadata.file_metadata`, the schema every file the project writes shares); atomic."""
    if not isinstance(model, MobileNet):
        raise InputTypeError(f"save() takes a mobilenet.MobileNet, got {type(model).__name__}")
    header = {**(metadata or {}), "format": FORMAT, CONFIG_KEY: json.dumps(model.config.to_dict())}
    tensors = {key: value.detach().contiguous().cpu() for key, value in model.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; ValueError naming the file when it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such weights file: {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError) as error:
        raise InputError(
            f"{path} is not a readable safetensors file ({error}); it may be truncated or of another format"
        ) from error
    return tensors, metadata


def read_config(path: str | os.PathLike) -> ModelConfig:
    """The model config stored in a file written by `save`."""
    _, metadata = read_safetensors(path)
    return stored_config(path, metadata)


def load(path: str | os.PathLike) -> MobileNet:
    """Rebuild the model saved at `path` with `save`, weights loaded, in eval mode."""
    return load_with_metadata(path)[0]


def load_with_metadata(path: str | os.PathLike) -> tuple[MobileNet, dict[str, str]]:
    """`load(path)` and the file's metadata (classes, normalization, image size, ...), reading the file once.

    The config the file claims is checked against the tensors it holds on the meta device first, so that a file
    claiming a billion classes fails with a message instead of allocating them.
    """
    tensors, metadata = read_safetensors(path)
    config = stored_config(path, metadata)
    problems = state_dict_mismatch(build(config, device="meta").state_dict(), tensors)
    if problems:
        described = _describe_config(config)
        raise InputError(f"{path}: its tensors do not fit the model its config describes ({described}):\n{problems}")
    model = build(config)
    model.load_state_dict(tensors, strict=True)
    return model.eval(), metadata


def load_weights(model: MobileNet, path: str | os.PathLike) -> MobileNet:
    """Load the weights of `path` into an existing `model`; ValueError listing every mismatched key."""
    tensors, _ = read_safetensors(path)
    return load_state_dict(model, tensors, source=str(path))


def load_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict"):
    """`model.load_state_dict(state)`, strict, with an error that lists missing, unexpected and mis-shaped keys."""
    expected = model.state_dict()
    problems = state_dict_mismatch(expected, state)
    if problems:
        raise InputError(f"{source} does not fit {_describe(model)}:\n{problems}")
    model.load_state_dict(state, strict=True)
    return model


def state_dict_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    """A readable list of the keys where `given` does not fit `expected`; empty when it fits.

    Besides names and shapes, a tensor must hold the kind of number its place expects (floating point where the
    model has floating point, any precision; integers where it counts), and floating-point values must be finite:
    integer, boolean or NaN weights would load and then compute garbage.
    """
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    common = [key for key in expected if key in given]
    shapes = [
        f"{key}: expected {tuple(expected[key].shape)}, got {tuple(given[key].shape)}"
        for key in common
        if tuple(expected[key].shape) != tuple(given[key].shape)
    ]
    dtypes = [
        f"{key}: expected {expected[key].dtype}, got {given[key].dtype}"
        for key in common
        if expected[key].is_floating_point() != given[key].is_floating_point()
        or (not expected[key].is_floating_point() and given[key].dtype == torch.bool)
    ]
    nonfinite = [
        f"{key}: {int((~torch.isfinite(given[key])).sum())} NaN or infinite value(s)"
        for key in common
        if given[key].is_floating_point() and given[key].device.type != "meta" and not torch.isfinite(given[key]).all()
    ]
    lines = []
    for title, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape mismatch", shapes),
        ("dtype mismatch", dtypes),
        ("not finite", nonfinite),
    ):
        if keys:
            shown = "\n    ".join(keys[:12])
            more = f"\n    ... and {len(keys) - 12} more" if len(keys) > 12 else ""
            lines.append(f"  {title} ({len(keys)}):\n    {shown}{more}")
    return "\n".join(lines)


def _describe_config(config) -> str:
    return f"{config.name} (alpha={config.alpha}, num_classes={config.num_classes}, options={config.options})"


def _describe(model: torch.nn.Module) -> str:
    config = getattr(model, "config", None)
    return type(model).__name__ if config is None else _describe_config(config)
