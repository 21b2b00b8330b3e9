"""Every deployment backend's top-1 on the committed Fashion-MNIST weights (weights/manifest.json), test set.

Each checkpoint is exported, quantized twice (ONNX Runtime's lowered h-swish file and the portable QDQ file; the
library's recipe, 512 training images) and every file is evaluated in each backend this machine supports that can
run it: fp32 backends on the fp32 file, int8 backends on their own int8 file.

    .venv/bin/python benchmarks/backend_accuracy.py [--json docs/backend_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import mobilenet
from mobilenet.cost.roofline import machine_id
from mobilenet.data import load_dataset
from mobilenet.deploy.artifacts import build_artifact, load_artifact
from mobilenet.deploy.backends import deploy_backends
from mobilenet.train.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    backends = deploy_backends()
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    rows = []
    for item in json.loads((ROOT / "weights" / "manifest.json").read_text()):
        model = mobilenet.load(ROOT / "weights" / item["file"])
        row = {"file": item["file"], "torch fp32": evaluate(model, test).top1}
        with tempfile.TemporaryDirectory() as tmp:
            for backend in backends:
                path = build_artifact(model, backend, 28, tmp, train)
                row[backend] = evaluate(load_artifact(path, backend, args.threads), test, image_size=28).top1
        rows.append(row)
        print(" | ".join(f"{k} {v:.2f}" if isinstance(v, float) else str(v) for k, v in row.items()), flush=True)
    if args.json:
        document = {"machine": machine_id(), "backends": backends, "rows": rows}
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
