"""The report's per-layer times (`mobilenet.bench.layers.measure_layers`, forward hooks) against PyTorch's profiler.

    .venv/bin/python benchmarks/bench_layer_timing.py [--repeats 3] [--runs 20] [--threads 2] [--out FILE]

Both time the same span of each conv and linear layer of an eager fp32 model at batch 1: from its forward pre-hook
to its forward hook, by `time.perf_counter` (the library's) or as a `record_function` range under the autograd
profiler (what the library used until 2026-12-01). They are alternated `--repeats` times per model, `--runs` calls
each, after the same warm-up. Per model: each method's layer sum (median over repeats), the median over layers of
the hooks' time over the profiler's, and the network timed without either (`mobilenet.bench.latency.time_calls`).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch
from bench_latency_model import header, write  # this folder's: run as `python benchmarks/...`
from torch import nn

from mobilenet.bench.latency import time_calls
from mobilenet.bench.layers import measure_layers
from mobilenet.model import build
from mobilenet.resolve import make_config

MODELS = (("mobilenet_v1", 1.0), ("mobilenet_v2", 1.0), ("mobilenet_v3_small", 1.0))


@torch.inference_mode()
def profiled_layers(model: nn.Module, resolution: int, runs: int = 20, warmup: int = 5) -> dict[str, float]:
    """Milliseconds per call of every conv and linear layer, each a `record_function` range under the profiler."""
    from torch.autograd.profiler import profile, record_function

    x = torch.randn(1, model.config.in_chans, resolution, resolution, generator=torch.Generator().manual_seed(0))
    ranges: dict[str, object] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):

            def enter(module, inputs, name=name):
                ranges[name] = record_function(f"layer::{name}").__enter__()

            def leave(module, inputs, output, name=name):
                ranges.pop(name).__exit__(None, None, None)

            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        for _ in range(warmup):
            model(x)
        with profile() as prof:
            for _ in range(runs):
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {
        event.key.removeprefix("layer::"): event.cpu_time_total / 1e3 / runs
        for event in prof.key_averages()
        if event.key.startswith("layer::")
    }


def compare(name: str, alpha: float, resolution: int, repeats: int, runs: int) -> dict[str, object]:
    model = build(make_config(name, alpha)).eval()
    x = torch.randn(1, model.config.in_chans, resolution, resolution)
    methods = {"hooks": measure_layers, "profiler": profiled_layers}
    layers: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    network = []
    for _ in range(repeats):
        for method, measure in methods.items():
            layers[method].append(measure(model, resolution, runs=runs))
        with torch.inference_mode():
            network.append(time_calls(lambda: model(x)).median_ms)
    if set(layers["hooks"][0]) != set(layers["profiler"][0]):
        raise RuntimeError(f"{name}: the two methods timed different layers")
    per_layer = {
        method: {k: statistics.median(t[k] for t in times) for k in times[0]} for method, times in layers.items()
    }
    ratios = [per_layer["hooks"][k] / per_layer["profiler"][k] for k in per_layer["hooks"]]
    return {
        "model": f"{name} {alpha} @{resolution}",
        "layers": len(ratios),
        "hooks_sum_ms": statistics.median(sum(t.values()) for t in layers["hooks"]),
        "profiler_sum_ms": statistics.median(sum(t.values()) for t in layers["profiler"]),
        "hooks_over_profiler": statistics.median(ratios),
        "network_ms": statistics.median(network),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, alpha in MODELS:
        row = compare(name, alpha, 224, args.repeats, args.runs)
        rows.append(row)
        print(
            f"{row['model']}: layer sum hooks {row['hooks_sum_ms']:.2f} ms, profiler {row['profiler_sum_ms']:.2f} "
            f"ms; per layer hooks / profiler {row['hooks_over_profiler']:.3f} (median of {row['layers']}); "
            f"network {row['network_ms']:.2f} ms",
            flush=True,
        )
    write(header(args.threads) | {"models": rows}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
