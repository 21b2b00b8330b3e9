"""`mobilenet <verb>`: the command-line face of the library. Bad usage exits with code 2 and a one-line reason."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import torch

from mobilenet import __version__
from mobilenet.model import create_model
from mobilenet.specs import VERSIONS


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit code 2."""


def add_model_arguments(parser: argparse.ArgumentParser, name: bool = True) -> None:
    """The `create_model` knobs, shared by every verb that builds a model."""
    if name:
        parser.add_argument("name", help="model name, e.g. mobilenet_v2 (see `mobilenet family`)")
    group = parser.add_argument_group("model")
    group.add_argument("--alpha", type=float, default=1.0, help="width multiplier (default 1.0)")
    group.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    group.add_argument("--in-chans", type=int, default=3, help="input channels (default 3)")
    group.add_argument(
        "--small-input", action="store_true", help="stem and first downsampling stage at stride 1 (28-64 px images)"
    )
    group.add_argument("--shallow", action="store_true", default=None, help="V1: drop the five 14x14 layers")
    group.add_argument("--t", type=float, default=None, help="V2: expansion factor (default 6)")
    group.add_argument("--minimal", action="store_true", default=None, help="V3: no SE, no h-swish, 3x3 only")
    group.add_argument("--head", choices=("scaled", "fixed"), default=None, help="V3: pre-logits width policy")


def model_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """`create_model` keyword arguments from parsed `add_model_arguments` options (only those the user set)."""
    kwargs: dict[str, object] = {
        "alpha": args.alpha,
        "num_classes": args.num_classes,
        "in_chans": args.in_chans,
        "small_input": args.small_input,
    }
    for option in ("shallow", "t", "minimal", "head"):
        value = getattr(args, option)
        if value is not None:
            kwargs[option] = value
    return kwargs


def count_params(name: str, **kwargs: object) -> int:
    """Trainable parameters of a family member, built on the meta device (no memory, instant)."""
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def cmd_family(args: argparse.Namespace) -> int:
    rows = []
    for spec in VERSIONS.values():
        for alpha in spec.published_alphas:
            rows.append({"name": spec.name, "alpha": alpha, "params": count_params(spec.name, alpha=alpha)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<22}{'alpha':>6}{'params':>14}")
    for row in rows:
        print(f"{row['name']:<22}{row['alpha']:>6.2f}{row['params']:>14,}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from mobilenet.convert import from_torchvision, read_state_dict
    from mobilenet.weights import save

    state = read_state_dict(args.source)
    if args.prefix:
        state = {key.removeprefix(args.prefix): value for key, value in state.items() if key.startswith(args.prefix)}
        if not state:
            raise UsageError(f"no key of {args.source} starts with {args.prefix!r}")
    model = from_torchvision(state, args.arch, alpha=args.alpha, num_classes=args.num_classes)
    path = save(model, args.out, metadata={"converted_from": f"torchvision {args.arch}"})
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {path}: {args.arch} alpha={args.alpha}, {model.config.num_classes} classes, {params:,} params")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mobilenet", description="The MobileNet family: build, count, train, deploy and measure."
    )
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    family = verbs.add_parser("family", help="every version at its published widths, with parameter counts")
    family.add_argument("--json", action="store_true", help="machine-readable output")
    family.set_defaults(func=cmd_family)

    convert = verbs.add_parser("convert", help="convert a torchvision MobileNetV2/V3 checkpoint to ours")
    convert.add_argument("source", help="torchvision state dict (.pth/.pt loaded with weights_only, .safetensors)")
    convert.add_argument("--arch", required=True, choices=("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"))
    convert.add_argument("--alpha", type=float, default=1.0, help="torchvision's width_mult (default 1.0)")
    convert.add_argument("--num-classes", type=int, default=None, help="default: read from the classifier")
    convert.add_argument("--prefix", default="", help="take only keys under this prefix, with it stripped")
    convert.add_argument("--out", required=True, help="output .safetensors path")
    convert.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as error:
        print(f"mobilenet {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mobilenet {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
