"""int8 against fp32 on this machine: quantize a file, then time and evaluate both, side by side (`mobilenet
quantize`)."""

from __future__ import annotations

import os
import time

from mobilenet._io import check_output
from mobilenet.bench.latency import runtime_call, time_calls
from mobilenet.data import load_dataset
from mobilenet.deploy.quantize import quantize_by
from mobilenet.deploy.recipe import QuantizeRecipe
from mobilenet.deploy.runtime import OnnxModel
from mobilenet.train.evaluation import evaluate as evaluate_model


def quantize_and_compare(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    dataset: str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    recipe: QuantizeRecipe | None = None,
    threads: int | None = None,
    evaluate: bool = True,
) -> dict[str, dict[str, object]]:
    """Quantize `model_path` to `out_path` by `recipe` (default: `QuantizeRecipe()`), calibrated on `dataset`'s
    training images, then put the two files side by side: {"fp32": {...}, "int8": {...}}, each with `path`,
    `size_mb`, `latency_ms` (ONNX Runtime, batch 1, `threads`, median: each file timed alone) and, with `evaluate`,
    `top1` on `dataset`'s test split."""
    recipe = recipe or QuantizeRecipe()
    check_output(out_path)
    calibration = load_dataset(dataset, "train", data_dir)
    test = load_dataset(dataset, "test", data_dir) if evaluate else None  # a missing split fails before the work
    out = quantize_by(model_path, out_path, calibration, recipe)
    report: dict[str, dict[str, object]] = {"fp32": {"path": str(model_path)}, "int8": {"path": str(out)}}
    models = {name: OnnxModel(row["path"], threads=threads) for name, row in report.items()}
    for name, model in models.items():
        time.sleep(0.2)  # let the previous session's worker threads stop spinning (see mobilenet.bench.latency)
        report[name]["size_mb"] = os.path.getsize(report[name]["path"]) / 1e6
        report[name]["latency_ms"] = time_calls(runtime_call(model)).median_ms
    if test is not None:
        for name, model in models.items():
            report[name]["top1"] = evaluate_model(model, test, image_size=model.input_size).top1
    return report
