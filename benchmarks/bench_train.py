"""Training throughput of our trainer against a plain fp32, NCHW, eager PyTorch loop, in the same run.

    .venv/bin/python benchmarks/bench_train.py [--model mobilenet_v2 --alpha 1.0 --steps 20 --repeats 3]

Same model (small-input stem, Fashion-MNIST's 28 px grayscale), same images, same batch size, same optimizer (SGD
with Nesterov momentum). "plain" is the loop anyone writes first: normalize, forward, cross-entropy, backward, step.
"ours" is a full step of `mobilenet.train`: batch augmentation (random crop, flip, erasing), label smoothing,
bf16 autocast, channels_last, EMA update. Also timed: ours with bf16 off, and with channels_last off, to show where
the gain comes from. Images per second = batch x steps / wall time, after 3 warm-up steps; median of `--repeats`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from mobilenet.cost.roofline import machine_id
from mobilenet.data import normalize
from mobilenet.model import build
from mobilenet.resolve import make_config
from mobilenet.train.trainer import TrainConfig, _Run, _World


def images_per_second(step, steps: int, batch: int) -> float:
    """Run `step(i)` 3 times to warm up, then time `steps` more."""
    for i in range(3):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return steps * batch / (time.perf_counter() - start)


def plain_loop(run: _Run, steps: int, batch: int) -> float:
    model = build(run.model_config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    info = run.train_set.info

    def step(i: int) -> None:
        indices = run.train_idx[i * batch : (i + 1) * batch]
        x = normalize(run.train_set.images[indices], info.mean, info.std)
        loss = F.cross_entropy(model(x), run.train_set.labels[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    return images_per_second(step, steps, batch)


def our_loop(run: _Run, steps: int, batch: int) -> float:
    def step(i: int) -> None:
        indices = run.train_idx[i * batch : (i + 1) * batch]
        x, y = run.batch(indices, torch.Generator().manual_seed(i))
        run.train_step(x, y, i)

    return images_per_second(step, steps, batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    variants = {"ours": {}, "ours, no bf16": {"bf16": False}, "ours, no channels_last": {"channels_last": False}}
    results: dict[str, list[float]] = {"plain fp32 NCHW eager": [], **{name: [] for name in variants}}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            name: _Run(
                TrainConfig(
                    out=tmp,
                    model=make_config(args.model, args.alpha, small_input=True),
                    batch_size=args.batch_size,
                    **options,
                ),
                _World(),
                progress=False,
            )
            for name, options in variants.items()
        }
        for _ in range(args.repeats):  # interleaved, so that machine noise hits every variant alike
            results["plain fp32 NCHW eager"].append(plain_loop(runs["ours"], args.steps, args.batch_size))
            for name, run in runs.items():
                results[name].append(our_loop(run, args.steps, args.batch_size))

    plain = statistics.median(results["plain fp32 NCHW eager"])
    print(f"machine: {machine_id()}; threads {torch.get_num_threads()}")
    print(
        f"{args.model} alpha={args.alpha}, small-input, 28 px, batch {args.batch_size}, {args.steps} steps, "
        f"median of {args.repeats}\n"
    )
    print("| loop | images/s | vs plain |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {median / plain:.2f}x |")


if __name__ == "__main__":
    main()
