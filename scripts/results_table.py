"""Print docs/results.md's family table from training run directories.

    python scripts/results_table.py RUN_DIR...

Each RUN_DIR is one `mobilenet train --out` directory with its config.json, metrics.jsonl and result.json. MACs and
parameters are counted (mobilenet.profile) for the model the run trained, at the dataset's image size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mobilenet.cost import profile
from mobilenet.data import DATASETS
from mobilenet.train import TrainConfig


def row(run: Path) -> dict[str, object]:
    config = json.loads((run / "config.json").read_text())
    result = json.loads((run / "result.json").read_text())
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if config["dataset"] not in DATASETS:
        raise SystemExit(f"{run}: the table knows {', '.join(DATASETS)}, not {config['dataset']!r}")
    info = DATASETS[config["dataset"]]
    model = TrainConfig.from_dict({**config, "out": str(run)}).model  # also reads run configs of older versions
    model = model.replace(num_classes=len(info.classes), in_chans=info.channels)
    options = model.changed_options()
    report = profile(model, resolution=info.size)
    return {
        "run": run.name,
        "model": model.name,
        "alpha": model.alpha,
        "options": ", ".join(f"{k}={v}" for k, v in options.items()) or "-",
        "macs": report.macs,
        "params": report.params,
        "epochs": config["epochs"],
        "batch": config["batch_size"],
        "best_val": result["best_val_acc"],
        "test_top1": result["test_best"]["top1"],
        "test_top5": result["test_best"]["top5"],
        "train_s": sum(e["seconds"] for e in epochs),
    }


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    rows = sorted((row(Path(p)) for p in paths), key=lambda r: (r["model"], -r["macs"]))
    print("| model | α | options | MACs | params | epochs | val top-1 | test top-1 | test top-5 | training s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['alpha']} | {r['options']} | {r['macs'] / 1e6:.1f}M | {r['params']:,} | "
            f"{r['epochs']} | {r['best_val']:.2f}% | {r['test_top1']:.2f}% | {r['test_top5']:.2f}% | "
            f"{r['train_s']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
