"""`mobilenet predict`'s path against `Classifier.predict` on the same image files, in the same run.

The CLI runs `Classifier.classify` on the folder: it finds the files, reads each on its own (so that one bad file is a
message, not a failure of its batch), calls the model once per batch, and yields results batch by batch.
`Classifier.predict` takes a list of files and runs the same loop, raising at the first bad file. The third path is
what the CLI did before (one model call per file).
Paths are timed in interleaved rounds (each path once per round, in every order in turn), medians reported.

    .venv/bin/python benchmarks/bench_predict.py --images 2000 --rounds 12 --threads 2 [--json docs/bench_predict.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="Fashion-MNIST test images written as PNG files")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default=str(ROOT / "weights" / "mobilenet_v2_1.0_fashion_mnist.safetensors"))
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    from PIL import Image

    from mobilenet.cost.roofline import machine_id
    from mobilenet.data import load_dataset
    from mobilenet.deploy import export_onnx
    from mobilenet.deploy.predictor import Classifier, Prediction
    from mobilenet.weights import load_with_metadata

    test = load_dataset("fashion-mnist", "test")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i in range(args.images):
            Image.fromarray(test.images[i, 0].numpy(), mode="L").save(folder / f"{i:05d}.png")
        files = sorted(folder.iterdir())
        model, stored = load_with_metadata(args.weights)
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(
            model,
            onnx_path,
            int(stored.get("image_size", 28)),
            metadata={k: stored[k] for k in ("mean", "std") if k in stored},
        )
        classifier = Classifier(onnx_path, threads=args.threads)

        def cli() -> list[Prediction]:
            return [o for o in classifier.classify([folder], k=3) if isinstance(o, Prediction)]

        paths = {
            "cli (classify a folder)": cli,
            "Classifier.predict": lambda: classifier.predict(files, k=3),
            "one call per file (before)": lambda: [p for f in files for p in classifier.predict([f], k=3)],
        }
        reference = [p.top for p in paths["Classifier.predict"]()]
        for name, run in paths.items():  # every path gives the same answers (and warms up)
            assert [p.top for p in run()] == reference, name
        seconds: dict[str, list[float]] = {name: [] for name in paths}
        orders = list(itertools.permutations(paths))  # each path before and after each other equally often
        for round_index in range(args.rounds):
            for name in orders[round_index % len(orders)]:
                time.sleep(0.2)  # let the previous path's ONNX Runtime worker threads stop spinning
                started = time.perf_counter()
                paths[name]()
                seconds[name].append(time.perf_counter() - started)

    rows = []
    base = seconds["Classifier.predict"]
    print(f"{args.images} PNG files, {args.rounds} interleaved rounds, {args.threads} threads, {machine_id()}")
    print("  speed against Classifier.predict: the median over rounds of (predict's time / the path's), same round")
    for name, times in seconds.items():
        median = statistics.median(times)
        paired = statistics.median(b / t for b, t in zip(base, times, strict=True))
        rows.append(
            {
                "path": name,
                "median_s": median,
                "images_per_s": args.images / median,
                "speed_vs_predict": paired,
                "rounds_s": times,
            }
        )
        print(
            f"  {name:<28} {median:7.3f} s  {args.images / median:8.0f} images/s  {paired:5.2f}x predict "
            f"(rounds {min(b / t for b, t in zip(base, times, strict=True)):.2f}-"
            f"{max(b / t for b, t in zip(base, times, strict=True)):.2f})"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"machine": machine_id(), "threads": args.threads, "images": args.images, "rows": rows}, indent=1
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
