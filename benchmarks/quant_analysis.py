"""Quantization analysis of trained checkpoints, measured: activation ranges, per-layer SQNR of int8 against fp32,
weight error against Δ²/12, and top-1 lost under several quantization schemes. Writes JSON and plots.

    .venv/bin/python benchmarks/quant_analysis.py NAME=CHECKPOINT... [--out docs] [--samples 512]

e.g. `relu6=weights/mobilenet_v2_1.0_fashion_mnist.safetensors relu=runs/gpu/v2_1.0_relu_e60/best.safetensors`
(the ReLU twin: `scripts/train_family.sh runs/gpu v2_1.0_relu_e60`). Every checkpoint is exported with
`mobilenet.deploy.export_onnx`, quantized with `quantize_onnx` (ONNX Runtime, QDQ) under each scheme, and evaluated on
the dataset's test set; activation ranges are measured on `--samples` training images and SQNR on the first 128 of
them (never test images), on the default scheme's `portable` file (every activation between QDQ pairs, which ONNX
Runtime's debugger needs; the deployed file differs from it by one rounding of each h-sigmoid).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from mobilenet.data import load_dataset, normalize
from mobilenet.deploy import export_onnx, fuse
from mobilenet.deploy.analysis import activation_ranges, activation_sqnr, weight_quantization_error
from mobilenet.deploy.quantize import quantize_onnx
from mobilenet.deploy.runtime import OnnxModel
from mobilenet.train.evaluation import evaluate
from mobilenet.weights import load_with_metadata

SQNR_IMAGES = 128  # ONNX Runtime's debugger keeps every intermediate tensor of every image in memory
# scheme -> quantize_onnx keyword arguments
SCHEMES = {
    "per-channel, MinMax (default)": {},
    "per-tensor weights, MinMax": {"per_channel": False},
    "per-channel, percentile": {"method": "percentile"},
}


def analyse(name: str, checkpoint: Path, samples: int, tmp: Path) -> dict[str, object]:
    model, metadata = load_with_metadata(checkpoint)
    dataset = metadata.get("dataset", "fashion-mnist")
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    size = int(metadata.get("image_size", 28))
    images, _ = train.batch(torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[:samples], size)
    x = normalize(images, train.info.mean, train.info.std)

    ranges = activation_ranges(model, x)
    weights = weight_quantization_error(fuse(model))
    fp32 = tmp / f"{name}.onnx"
    export_onnx(
        model,
        fp32,
        size,
        metadata={
            "dataset": dataset,
            "image_size": str(size),
            "mean": json.dumps(list(train.info.mean)),
            "std": json.dumps(list(train.info.std)),
        },
    )
    fp32_top1 = evaluate(OnnxModel(fp32), test, image_size=size).top1
    schemes, sqnr = {}, []
    for scheme, options in SCHEMES.items():
        int8 = quantize_onnx(fp32, tmp / f"{name}.{len(schemes)}.int8.onnx", train, samples=samples, **options)
        top1 = evaluate(OnnxModel(int8), test, image_size=size).top1
        schemes[scheme] = {"int8_top1": top1, "change": top1 - fp32_top1}
        if not options:  # the debugger finds each tensor through its QDQ pair: lowered activations have none
            qdq = quantize_onnx(fp32, tmp / f"{name}.qdq.onnx", train, samples=samples, portable=True)
            sqnr = [vars(row) for row in activation_sqnr(fp32, qdq, list(x[:SQNR_IMAGES].split(32)))]
        print(f"  {name}: {scheme}: fp32 {fp32_top1:.2f}% -> int8 {top1:.2f}%")
    return {
        "checkpoint": str(checkpoint),
        "activation": model.config.options.get("activation", "model default"),
        "fp32_top1": fp32_top1,
        "schemes": schemes,
        "activation_ranges": {k: dict(zip(("min", "max", "p9999_abs"), r, strict=True)) for k, r in ranges.items()},
        "sqnr": sqnr,
        "weight_error": [vars(row) | {"ratio": row.ratio} for row in weights],
    }


def plot(results: dict[str, dict], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, path: Path) -> Path:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    paths = []
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, r in results.items():
        acts = {k: v for k, v in r["activation_ranges"].items() if not k.endswith("project")}
        ax.plot(range(len(acts)), [v["max"] for v in acts.values()], marker="o", ms=3, label=f"{name}: max")
    ax.axhline(6, color="grey", ls="--", lw=1, label="ReLU6 bound")
    ax.set_yscale("log")
    ax.set_xlabel("activation layer (graph order)")
    ax.set_ylabel("largest activation on calibration images")
    ax.set_title("Activation ranges per layer")
    ax.legend()
    paths.append(save(fig, out / "quant_activation_ranges.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for name, r in results.items():
        ax.plot(range(len(r["sqnr"])), [row["sqnr_db"] for row in r["sqnr"]], marker="o", ms=3, label=name)
    ax.set_xlabel("quantized tensor (graph order)")
    ax.set_ylabel("SQNR of int8 against fp32 (dB)")
    ax.set_title("Accumulated quantization noise per layer (per-channel weights, MinMax)")
    ax.legend()
    paths.append(save(fig, out / "quant_sqnr.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    name, r = next(iter(results.items()))
    for kind, marker in (("conv", "o"), ("depthwise", "s"), ("linear", "^")):
        rows = [(i, row["ratio"]) for i, row in enumerate(r["weight_error"]) if row["kind"] == kind]
        if rows:
            ax.scatter(*zip(*rows, strict=True), marker=marker, label=kind)
    ax.axhline(1, color="grey", ls="--", lw=1, label="Δ²/12")
    ax.set_xlabel("layer (graph order)")
    ax.set_ylabel("measured MSE / (Δ²/12)")
    ax.set_title(f"Weight quantization error against the uniform model ({name}, int8 per channel)")
    ax.legend()
    paths.append(save(fig, out / "quant_weight_error.png"))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="NAME=CHECKPOINT.safetensors")
    parser.add_argument("--out", default="docs", help="directory for quantization.json and the plots")
    parser.add_argument("--samples", type=int, default=512, help="calibration and analysis images")
    args = parser.parse_args()
    pairs = [item.split("=", 1) for item in args.checkpoints]
    if any(len(pair) != 2 for pair in pairs):
        parser.error("give each checkpoint as NAME=PATH")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in pairs:
            results[name] = analyse(name, Path(path), args.samples, Path(tmp))
    (out / "quantization.json").write_text(json.dumps(results, indent=1))
    for path in plot(results, out):
        print(f"wrote {path}")
    for name, r in results.items():
        acts = [v["max"] for k, v in r["activation_ranges"].items() if not k.endswith("project")]
        sqnr = [row["sqnr_db"] for row in r["sqnr"]]
        print(
            f"{name}: largest activation {max(acts):.2f}, median layer max {statistics.median(acts):.2f}; "
            f"SQNR median {statistics.median(sqnr):.1f} dB, min {min(sqnr):.1f}, logits {sqnr[-1]:.1f}"
        )


if __name__ == "__main__":
    main()
