"""`mobilenet <verb>`: the command-line face of the library. Bad usage exits with code 2 and a one-line reason."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mobilenet import __version__
from mobilenet._io import check_output
from mobilenet.bench import BACKENDS
from mobilenet.specs import VERSIONS


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit code 2."""


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high (high: unbounded when None)."""
    valid = f"an integer in {low}..{high}" if high is not None else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {valid}, got {value}")
        return value

    return parse


def _real(low: float, strict: bool) -> Callable[[str], float]:
    """An argparse type: a finite number > low (`strict`) or >= low."""
    valid = f"a number {'>' if strict else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > low if strict else value >= low) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """An option value out of its range is bad input like any other: one line and exit code 2 (`main`), not argparse's
    usage text; other parse errors (an unknown verb, flag or choice) keep argparse's usage and exit code 2."""

    def error(self, message: str):
        if ": must be " in message:  # from the range-checking types above
            raise UsageError(f"{self.prog}: error: {message}")
        super().error(message)


COUNT, THREADS = _integer(1), _integer(1, 1024)
POSITIVE, NON_NEGATIVE = _real(0, strict=True), _real(0, strict=False)


def add_model_arguments(parser: argparse.ArgumentParser, name: bool = True) -> None:
    """The `create_model` knobs, shared by every verb that builds a model."""
    if name:
        parser.add_argument("name", help="model name, e.g. mobilenet_v2 (see `mobilenet family`)")
    group = parser.add_argument_group("model")
    group.add_argument("--alpha", type=float, default=1.0, help="width multiplier (default 1.0)")
    group.add_argument("--num-classes", type=COUNT, default=1000, help="classifier outputs (default 1000)")
    group.add_argument("--in-chans", type=COUNT, default=3, help="input channels (default 3)")
    group.add_argument(
        "--small-input", action="store_true", help="stem and first downsampling stage at stride 1 (28-64 px images)"
    )
    add_version_options(group)


def add_version_options(group) -> None:
    """The per-version `create_model` options (None: the version's default), shared by model verbs and `train`."""
    group.add_argument("--shallow", action="store_true", default=None, help="V1: drop the five 14x14 layers")
    group.add_argument("--t", type=float, default=None, help="V2: expansion factor (default 6)")
    group.add_argument("--activation", choices=("relu6", "relu"), default=None, help="V1/V2: ReLU6 (default) or ReLU")
    group.add_argument("--minimal", action="store_true", default=None, help="V3: no SE, no h-swish, 3x3 only")
    group.add_argument("--head", choices=("scaled", "fixed"), default=None, help="V3: pre-logits width policy")
    group.add_argument(
        "--expansion", choices=("scaled", "input"), default=None, help="V3: expanded-width rule (torchvision/TF-slim)"
    )


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The family sweep's knobs, shared by `select` and `report`."""
    parser.add_argument("--backend", choices=BACKENDS, default="onnx", help="what runs the model (default onnx)")
    parser.add_argument(
        "--accuracy",
        default="published",
        help="'published' (ImageNet tables, with sources) or a JSON results file such as weights/manifest.json",
    )
    parser.add_argument("--models", nargs="*", default=None, help="only these versions (e.g. mobilenet_v2)")
    parser.add_argument("--threads", type=THREADS, default=None, help="intra-op threads (default: torch's)")
    parser.add_argument(
        "--predict", action="store_true", help="fast: predict latency from the roofline, do not measure"
    )
    parser.add_argument(
        "--cache", default=None, help="latency cache directory (default $MOBILENET_CACHE or ~/.cache/mobilenet)"
    )
    parser.add_argument("--no-cache", action="store_true", help="measure everything, store nothing")
    parser.add_argument("--refresh", action="store_true", help="re-measure every member, replacing its cached figure")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def model_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """`create_model` keyword arguments from parsed `add_model_arguments` options (only those the user set)."""
    kwargs: dict[str, object] = {
        "alpha": args.alpha,
        "num_classes": args.num_classes,
        "in_chans": args.in_chans,
        "small_input": args.small_input,
    }
    for option in ("shallow", "t", "activation", "minimal", "head", "expansion"):
        value = getattr(args, option)
        if value is not None:
            kwargs[option] = value
    return kwargs


def _millions(value: float) -> str:
    return f"{value / 1e6:,.2f}M"


def cmd_family(args: argparse.Namespace) -> int:
    from mobilenet.cost import profile

    rows = []
    for spec in VERSIONS.values():
        for alpha in spec.published_alphas:
            for resolution in spec.published_resolutions:
                report = profile(spec.name, resolution=resolution, alpha=alpha, num_classes=args.num_classes)
                rows.append(
                    {
                        "name": spec.name,
                        "alpha": alpha,
                        "resolution": resolution,
                        "macs": report.macs,
                        "params": report.params,
                        "receptive_field": report.receptive_field,
                    }
                )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"The MobileNet family at its published widths and resolutions ({args.num_classes} classes).")
    print("MACs: multiply-adds of every conv and linear layer; params: every trainable parameter (torchvision's).")
    print(f"{'model':<20}{'alpha':>6}{'res':>5}{'MACs':>11}{'params':>12}{'RF px':>7}")
    previous = None
    for row in rows:
        if previous and previous != row["name"]:
            print()
        previous = row["name"]
        print(
            f"{row['name']:<20}{row['alpha']:>6.2f}{row['resolution']:>5}{_millions(row['macs']):>11}"
            f"{row['params']:>12,}{row['receptive_field']:>7}"
        )
    return 0


def _hardware(args: argparse.Namespace):
    from mobilenet.cost.roofline import HardwareProfile, probe

    if (args.peak_gmacs is None) != (args.bandwidth_gbs is None):
        raise UsageError("give both --peak-gmacs and --bandwidth-gbs, or neither to measure this machine")
    if args.peak_gmacs is not None:
        return HardwareProfile.given(args.peak_gmacs, args.bandwidth_gbs, args.threads)
    return probe(args.threads)


def cmd_profile(args: argparse.Namespace) -> int:
    from mobilenet.cost import profile
    from mobilenet.cost.roofline import roofline

    report = profile(args.name, resolution=args.resolution, **model_kwargs(args))
    given = args.peak_gmacs is not None or args.bandwidth_gbs is not None
    roof = roofline(report, _hardware(args)) if args.roofline or given or args.measure else None
    check = None
    if args.measure:
        from mobilenet import create_model
        from mobilenet.bench.layers import check_roofline

        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        check = check_roofline(create_model(args.name, **model_kwargs(args)), roof)
    if args.json:
        data = report.to_dict()
        if roof is not None:
            data["roofline"] = roof.to_dict()
        if check is not None:
            data["measured"] = check.to_dict()
        print(json.dumps(data, indent=2))
        return 0
    options = " ".join(f"{key}={value}" for key, value in model_kwargs(args).items() if key != "alpha")
    print(f"{report.name} alpha={args.alpha} at {report.resolution}x{report.resolution} ({options})")
    print(f"  MACs            {report.macs:>14,}   (multiply-adds of conv + linear layers; FLOPs = 2 x MACs)")
    print(f"  params          {report.params:>14,}   (every trainable parameter)")
    print(f"    conv + linear {report.params_conv_linear:>14,}   (no BN: TF-slim's convention)")
    print(f"    BN scale/shift{report.params_bn:>14,}   (+ {report.bn_statistics:,} running statistics: Keras total)")
    print(f"  receptive field {report.receptive_field:>14,}   px (convolution path)")
    elementwise = ", ".join(f"{kind} {count:,}" for kind, count in report.elementwise.items())
    print(f"  element-wise    {elementwise}")
    if roof is not None:
        hw = roof.hardware
        print(
            f"  roofline        {roof.predicted_ms:.2f} ms predicted on {hw.peak_macs_per_s / 1e9:.1f} GMAC/s, "
            f"{hw.bandwidth_bytes_per_s / 1e9:.1f} GB/s ({hw.source}); ridge {hw.ridge:.2f} MAC/byte"
        )
    if check is not None:
        print(
            f"  measured        {check.measured_ms:.2f} ms (eager fp32, batch 1, median; per layer: PyTorch profiler)"
        )
    print()
    if args.by_layer:
        _print_layers(report, roof, check)
    else:
        _print_kinds(report, roof)
    if check is not None:
        print("\npredicted against measured, per kind (ms):")
        for kind, row in check.by_kind().items():
            times = f"predicted {row['predicted_ms']:>8.3f}  measured {row['measured_ms']:>8.3f}"
            print(f"  {kind:<16}{row['layers']:>4} layers  {times}  "
                  f"({row['measured_ms'] / max(row['predicted_ms'], 1e-9):.1f}x)")  # fmt: skip
        print("where they disagree most:")
        for t in check.worst():
            print(f"  {t.name:<28}{t.kind:<15}{t.bound:>8}-bound  predicted {t.predicted_ms:.3f}  measured "
                  f"{t.measured_ms:.3f} ms ({t.ratio:.1f}x)")  # fmt: skip
    return 0


def _print_kinds(report, roof) -> None:
    print(
        f"{'kind':<16}{'layers':>7}{'MACs':>15}{'share':>8}{'params':>12}{'share':>8}"
        + ("  memory-bound" if roof else "")
    )
    bound = {}
    if roof is not None:
        for row in roof.rows:
            bound.setdefault(row.kind, [0, 0])
            bound[row.kind][0] += row.bound == "memory"
            bound[row.kind][1] += 1
    for kind, row in report.by_kind().items():
        line = (
            f"{kind:<16}{row['layers']:>7}{row['macs']:>15,}{row['macs_share']:>8.2%}"
            f"{row['params']:>12,}{row['params_share']:>8.2%}"
        )
        if roof is not None:
            line += f"  {bound[kind][0]}/{bound[kind][1]}"
        print(line)


def _print_layers(report, roof, check=None) -> None:
    header = f"{'layer':<24}{'kind':<15}{'in':>14}{'out':>14}{'MACs':>13}{'params':>10}{'MAC/B':>7}{'RF':>5}"
    print(header + (f"{'ms':>8}  bound" if roof else "") + (f"{'measured':>10}" if check else ""))
    for index, layer in enumerate(report.layers):
        shape_in = "x".join(map(str, layer.in_shape))
        shape_out = "x".join(map(str, layer.out_shape))
        line = (
            f"{layer.name:<24}{layer.kind:<15}{shape_in:>14}{shape_out:>14}{layer.macs:>13,}{layer.params:>10,}"
            f"{layer.intensity:>7.2f}{layer.receptive_field:>5}"
        )
        if roof is not None:
            line += f"{roof.rows[index].predicted_ms:>8.3f}  {roof.rows[index].bound:<7}"
        if check is not None:
            line += f"{check.layers[index].measured_ms:>10.3f}"
        print(line)


def cmd_convert(args: argparse.Namespace) -> int:
    from mobilenet.convert import from_torchvision, read_state_dict
    from mobilenet.weights import save

    check_output(args.out)
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


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from mobilenet import create_model
    from mobilenet.bench.latency import make_runner, time_calls

    model = create_model(args.name, **model_kwargs(args))
    shape = (args.batch_size, model.config.in_chans, args.resolution, args.resolution)
    model.check_input(torch.empty(shape, device="meta"))
    run, facts = make_runner(model, args.backend, args.resolution, batch=args.batch_size, threads=args.threads)
    timing = time_calls(run, batch=args.batch_size, min_runs=args.min_runs, min_time_s=args.min_time)
    result = {"name": args.name, **model_kwargs(args), "resolution": args.resolution, **facts, **timing.to_dict()}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    size = f", {facts['size_mb']:.2f} MB file" if "size_mb" in facts else ""
    print(f"{args.name} alpha={args.alpha} {args.resolution}px batch {args.batch_size}, {args.backend}, "
          f"{facts['threads']} thread(s){size}")  # fmt: skip
    print(f"  median {timing.median_ms:.3f} ms   p10 {timing.p10_ms:.3f}   p90 {timing.p90_ms:.3f}   "
          f"{timing.images_per_s:,.0f} images/s   ({timing.runs} timed calls)")  # fmt: skip
    if timing.noisy:
        print(f"  warning: p90/p10 = {timing.spread:.2f}: the machine was busy; the median is not to be trusted",
              file=sys.stderr)  # fmt: skip
    return 0


def _sweep(args: argparse.Namespace, hardware=None):
    """The candidates of `select` and `report`: entries, then latency and size on this machine (`hardware`: the
    roofline's profile for --predict, probed here when not given)."""
    from mobilenet.bench.select import LatencyCache, cache_dir, entries_from_file, published_entries, sweep

    entries = published_entries() if args.accuracy == "published" else entries_from_file(args.accuracy)
    if args.models:
        unknown = sorted(set(args.models) - {e.name for e in entries})
        if unknown:
            raise UsageError(f"no candidates named {', '.join(unknown)} in {args.accuracy}")
        entries = [e for e in entries if e.name in args.models]
    cache = None
    if not args.predict and not args.no_cache:
        import torch

        from mobilenet.cost.roofline import machine_id

        directory = Path(args.cache) if args.cache else cache_dir()
        cache = LatencyCache.open(directory, machine_id(), args.backend, args.threads or torch.get_num_threads(), 1)
    candidates = sweep(
        entries,
        args.backend,
        args.threads,
        cache=cache,
        predict=args.predict,
        hardware=hardware,
        progress=not args.quiet and not getattr(args, "json", False),
        refresh=args.refresh,
    )
    return candidates, cache


def cmd_select(args: argparse.Namespace) -> int:
    from mobilenet.bench.select import choose

    if args.latency_ms is None and args.size_mb is None:
        raise UsageError("give a budget: --latency-ms, --size-mb or both")
    candidates, cache = _sweep(args)
    choice = choose(candidates, args.latency_ms, args.size_mb)
    if args.json:
        print(json.dumps(choice.to_dict(), indent=2))
        return 0 if choice.pick else 1
    mode = "PREDICTED by the roofline, not measured" if args.predict else f"measured here ({args.backend})"
    print(f"{len(candidates)} candidates, latency {mode}; accuracy from "
          f"{'the published ImageNet tables' if args.accuracy == 'published' else args.accuracy}")  # fmt: skip
    if cache is not None:
        print(f"latency cache: {cache.path}")
    print("\nPareto frontier (accuracy against latency; no member is both faster and more accurate):")
    width = max(len(c.label) for c in candidates) + 2
    print(f"  {'member':<{width}} {'latency':>10} {'size':>9} {'top-1':>7}")
    for c in choice.frontier:
        mark = "  <- pick" if c is choice.pick else ""
        print(f"  {c.label:<{width}} {c.latency_ms:>7.2f} ms {c.size_mb:>6.2f} MB {c.entry.accuracy:>6.1f}%{mark}")
    budgets = ", ".join(f"{v:g} {u}" for v, u in ((args.latency_ms, "ms"), (args.size_mb, "MB")) if v is not None)
    print(f"\nbudget: {budgets}")
    print(choice.message if choice.pick is None else
          f"{choice.message}\n  accuracy source: {choice.pick.entry.accuracy_source}\n"
          f"  latency source: {choice.pick.latency_source}")  # fmt: skip
    if choice.reasons:
        print("nearest alternatives:")
        for c, why in choice.reasons:
            print(f"  {c.label:<{width}} {c.entry.accuracy:>5.1f}%: {why}")
    return 0 if choice.pick else 1


def cmd_report(args: argparse.Namespace) -> int:
    from mobilenet.report.data import ReportData, collect
    from mobilenet.report.html import data_path, write_report

    check_output(args.out)
    if args.data:  # draw the page again from saved data: nothing is profiled or measured
        data = ReportData.load(args.data)
    else:
        from mobilenet.bench.select import choose
        from mobilenet.cost.roofline import probe

        check_output(data_path(args.out))
        hardware = probe(args.threads)  # once: the report's roofline and, with --predict, the sweep's
        candidates, _ = _sweep(args, hardware)
        choice = choose(candidates, args.latency_ms, args.size_mb)
        data = collect(choice, hardware, args.latency_ms, args.size_mb, args.backend, measure=not args.predict)
    path = write_report(args.out, data)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and its data {data_path(path)}: {data.choice['message']}")
    return 0


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mobilenet.train import TrainConfig, TrainingDiverged, train

    if args.resume:
        fixed = ("verb", "func", "out", "resume", "quiet", "json")
        given = [name for name, value in vars(args).items() if name not in fixed and value != parser.get_default(name)]
        if given:
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in given)
            raise UsageError(
                f"--resume continues the run as saved in {args.out}/config.json, so {flags} cannot "
                f"change it; drop {flags}, or start a new run with another --out"
            )
        config = TrainConfig(out=args.out)  # replaced by RUN_DIR/config.json
    else:
        model_fields = ("small_input", "t", "shallow", "activation", "minimal", "head", "expansion", "dropout")
        options = {key: getattr(args, key) for key in model_fields if getattr(args, key) is not None}
        fields = ("dataset", "data_dir", "download", "image_size", "epochs", "batch_size", "train_samples",
                  "val_samples", "optimizer", "lr", "momentum", "weight_decay", "label_smoothing", "warmup_epochs",
                  "ema_decay", "bn_momentum", "padding", "flip", "erasing", "bf16", "channels_last", "compile",
                  "seed")  # fmt: skip
        config = TrainConfig(
            out=args.out,
            model=args.model,
            alpha=args.alpha,
            model_options=options,
            num_threads=args.threads,
            **{name: getattr(args, name) for name in fields},
        )
    try:
        result = train(config, resume=args.resume, progress=not args.quiet)
    except TrainingDiverged as error:
        print(f"mobilenet train: {error}", file=sys.stderr)
        return 1
    if not result:  # not the main process of a torchrun group
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        best = result.get("test_best", {})
        print(f"best validation top-1 {result['best_val_acc']:.2f}%; test top-1 {best.get('top1', float('nan')):.2f}% "
              f"(top-5 {best.get('top5', float('nan')):.2f}%) with {args.out}/best.safetensors")  # fmt: skip
    return 0


def _load_classifier(path: str):
    """(callable on normalized batches, in_chans, num_classes, input size or None) of a checkpoint or ONNX file."""
    if str(path).endswith(".onnx"):
        from mobilenet.deploy.runtime import OnnxModel

        model = OnnxModel(path)
        return model, model.in_chans, model.num_classes, model.input_size
    from mobilenet.weights import load

    model = load(path)
    return model, model.config.in_chans, model.config.num_classes, None


def cmd_eval(args: argparse.Namespace) -> int:
    from mobilenet.data import load_dataset
    from mobilenet.train.evaluate import evaluate, plot_confusion

    if args.plot:
        check_output(args.plot)
    model, in_chans, num_classes, size = _load_classifier(args.checkpoint)
    dataset = load_dataset(args.dataset, args.split, args.data_dir)
    if num_classes is not None and num_classes != len(dataset.classes):
        raise UsageError(f"{args.checkpoint} has {num_classes} outputs but {args.dataset} has "
                         f"{len(dataset.classes)} classes")  # fmt: skip
    if in_chans != dataset.info.channels:
        raise UsageError(f"{args.checkpoint} takes {in_chans} channel(s), {args.dataset} has {dataset.info.channels}")
    result = evaluate(model, dataset, batch_size=args.batch_size, image_size=args.image_size or size)
    if args.plot:
        plot_confusion(result, dataset.classes, args.plot, title=f"{args.checkpoint} on {args.dataset} {args.split}")
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "dataset": args.dataset, "split": args.split,
                          **result.to_dict()}, indent=2))  # fmt: skip
        return 0
    print(f"{args.checkpoint} on {args.dataset} ({args.split}, {result.samples:,} images)")
    print(f"  top-1 {result.top1:.2f}%   top-5 {result.top5:.2f}%   loss {result.loss:.4f}")
    for cls, accuracy in result.per_class.items():
        print(f"  {cls:<14}{accuracy:>7.2f}%")
    if args.plot:
        print(f"  confusion matrix: {args.plot}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    import time

    from mobilenet.bench.latency import onnx_call, time_calls
    from mobilenet.data import load_dataset
    from mobilenet.deploy.quantize import quantize_onnx
    from mobilenet.deploy.runtime import OnnxModel
    from mobilenet.train.evaluate import evaluate

    check_output(args.out)
    calibration = load_dataset(args.calibrate, "train", args.data_dir)
    out = quantize_onnx(args.model, args.out, calibration, samples=args.samples, method=args.method,
                        per_channel=args.per_channel, activations=args.activations,
                        exclude=tuple(args.exclude), portable=args.portable,
                        float_stem=args.float_stem)  # fmt: skip
    report = {"fp32": {"path": args.model}, "int8": {"path": str(out)}}
    models = {name: OnnxModel(report[name]["path"], threads=args.threads) for name in report}
    for name, model in models.items():  # timed first, each alone (see mobilenet.bench.latency)
        time.sleep(0.2)  # let the previous session's worker threads stop spinning
        report[name]["size_mb"] = os.path.getsize(report[name]["path"]) / 1e6
        report[name]["latency_ms"] = time_calls(onnx_call(model)).median_ms
    if not args.no_eval:
        test = load_dataset(args.calibrate, "test", args.data_dir)
        for name, model in models.items():
            report[name]["top1"] = evaluate(model, test, image_size=model.input_size).top1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    operators = "standard ONNX operators only" if args.portable else "h-swish/h-sigmoid as ONNX Runtime int8 ops"
    print(f"wrote {out} (int8 QDQ, per-channel={args.per_channel}, {args.activations} activations, {args.method} "
          f"calibration on {args.samples} {args.calibrate} training images; {operators})")  # fmt: skip
    print(f"{'':6}{'size MB':>9}{'latency ms':>12}{'test top-1':>12}   (batch 1, {args.threads or 'all'} threads)")
    for name in ("fp32", "int8"):
        row = report[name]
        top1 = f"{row['top1']:.2f}%" if "top1" in row else "-"
        print(f"{name:<6}{row['size_mb']:>9.2f}{row['latency_ms']:>12.3f}{top1:>12}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mobilenet.deploy import export_onnx
    from mobilenet.metadata import input_spec
    from mobilenet.weights import load_with_metadata

    check_output(args.out)
    model, stored = load_with_metadata(args.checkpoint)
    config = model.config
    spec = input_spec(
        args.checkpoint, stored, config.in_chans, config.num_classes, default_size=32 if config.small_input else 224
    )
    resolution = spec.size if args.resolution is None else args.resolution
    metadata = {"mean": json.dumps(spec.mean), "std": json.dumps(spec.std)}
    if "dataset" in stored:
        metadata["dataset"] = stored["dataset"]
    if spec.labels:
        metadata["labels"] = json.dumps(spec.labels)
    report = export_onnx(model, args.out, resolution, metadata=metadata, opset=args.opset)
    size = report.path.stat().st_size / 1e6
    print(f"wrote {report.path} ({size:.2f} MB, opset {report.opset}, {resolution}x{resolution}, dynamic batch)")
    print(f"  checked in ONNX Runtime: max |onnx - torch| = {report.max_abs_diff:.3g} "
          f"({report.relative_diff:.2g} of the output scale {report.output_scale:.3g}; limit 1e-4)")  # fmt: skip
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from mobilenet.data.datasets import IMAGE_SUFFIXES
    from mobilenet.deploy.predictor import Classifier, Prediction

    classifier = Classifier(args.weights, threads=args.threads)
    predictions, errors, interrupted = [], {}, False
    try:  # each result as it comes: an interrupted run has shown (and, with --json, returns) what it did
        for outcome in classifier.classify(args.images, k=args.top_k):
            if isinstance(outcome, Prediction):
                predictions.append(outcome)
                if not args.json:
                    ranked = ", ".join(f"{label} {probability:.1%}" for label, probability in outcome.top)
                    print(f"{outcome.source}: {ranked}", flush=True)
            else:
                errors[outcome.source] = outcome.error
                print(f"mobilenet predict: {outcome.source}: {outcome.error}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
    if args.json:
        document = {"predictions": [p.to_dict() for p in predictions], "errors": errors}
        print(json.dumps(document | ({"interrupted": True} if interrupted else {}), indent=2))
    if interrupted:
        print(f"mobilenet predict: interrupted after {len(predictions)} image(s)", file=sys.stderr)
        return 130
    if not predictions and not errors:
        print(
            f"mobilenet predict: no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(args.images)}",
            file=sys.stderr,
        )
        return 1
    return 1 if errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mobilenet", description="The MobileNet family: build, count, train, deploy and measure.")
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    family = verbs.add_parser(
        "family", help="every version at its published widths and resolutions: MACs, params, receptive field"
    )
    family.add_argument("--num-classes", type=COUNT, default=1000, help="classifier outputs (default 1000)")
    family.add_argument("--json", action="store_true", help="machine-readable output")
    family.set_defaults(func=cmd_family)

    prof = verbs.add_parser(
        "profile",
        help="exact cost of one member: MACs, params, per layer or per kind, receptive field, roofline",
        description="Count a family member on the meta device (no weights are allocated).",
    )
    add_model_arguments(prof)
    prof.add_argument("--resolution", type=COUNT, default=224, help="input side in pixels (default 224)")
    view = prof.add_mutually_exclusive_group()
    view.add_argument("--by-kind", action="store_true", help="one row per layer kind (the default view)")
    view.add_argument("--by-layer", action="store_true", help="one row per conv and linear layer")
    prof.add_argument("--roofline", action="store_true", help="predict per-layer time on this machine (probe ~0.2 s)")
    prof.add_argument("--peak-gmacs", type=POSITIVE, default=None, help="roofline with this peak GMAC/s (no probe)")
    prof.add_argument("--bandwidth-gbs", type=POSITIVE, default=None, help="roofline with this memory GB/s (no probe)")
    prof.add_argument("--measure", action="store_true",
                      help="also time every layer (PyTorch profiler) and the network, beside the roofline")  # fmt: skip
    prof.add_argument("--threads", type=THREADS, default=None, help="probe and measurement threads (default: torch's)")
    prof.add_argument("--json", action="store_true", help="the whole report as JSON")
    prof.set_defaults(func=cmd_profile)

    be = verbs.add_parser(
        "bench",
        help="latency of one member on this machine: median, p10, p90, images/s, per backend",
        description="Warm up, then time calls until the median is stable (at least --min-runs calls and --min-time "
        "seconds). What is timed: one forward call on a batch in memory. See mobilenet.bench.latency.",
    )
    add_model_arguments(be)
    be.add_argument("--resolution", type=COUNT, default=224, help="input side in pixels (default 224)")
    be.add_argument("--batch-size", type=COUNT, default=1, help="images per call (default 1)")
    be.add_argument("--threads", type=THREADS, default=None, help="intra-op threads (default: torch's)")
    be.add_argument("--backend", choices=BACKENDS, default="torch", help="what runs the model (default torch)")
    be.add_argument("--min-runs", type=COUNT, default=30, help="timed calls at least (default 30)")
    be.add_argument("--min-time", type=NON_NEGATIVE, default=1.0, help="seconds of timed calls at least (default 1)")
    be.add_argument("--json", action="store_true", help="the result as JSON (median_ms, p10_ms, p90_ms, ...)")
    be.set_defaults(func=cmd_bench)

    se = verbs.add_parser(
        "select",
        help="the most accurate member within a latency and size budget, measured on this machine",
        description="Sweep the family (every published V1/V2/V3 configuration, or the entries of your own results "
        "file), measure latency here (cached per machine, backend and threads: a second call is instant), take size "
        "from the deployed file, and print the Pareto frontier, the pick and why the nearest alternatives lost. "
        "Exit code 1 when no member meets the budgets.",
    )
    se.add_argument("--latency-ms", type=POSITIVE, default=None, help="latency budget, batch 1 (e.g. 10)")
    se.add_argument("--size-mb", type=POSITIVE, default=None, help="size budget of the deployed file (e.g. 5)")
    add_sweep_arguments(se)
    se.add_argument("--json", action="store_true", help='{"pick": ..., "candidates": [...], ...}')
    se.set_defaults(func=cmd_select)

    rep = verbs.add_parser(
        "report",
        help="one self-contained HTML page: accuracy against latency, roofline, cost per kind, alpha/rho scaling",
        description="Sweep the family as `select` does (same cache), then write the plots and the tables behind them "
        "into one HTML file that needs nothing else to open.",
    )
    rep.add_argument("--out", default="report.html", help="output .html; its data goes beside it, as .json")
    rep.add_argument("--data", default=None, help="draw the page again from a saved report .json (nothing measured)")
    rep.add_argument("--latency-ms", type=POSITIVE, default=10.0, help="latency budget for the pick (default 10)")
    rep.add_argument("--size-mb", type=POSITIVE, default=5.0, help="size budget for the pick (default 5)")
    add_sweep_arguments(rep)
    rep.set_defaults(func=cmd_report)

    tr = verbs.add_parser(
        "train",
        help="train a family member on real data (Fashion-MNIST by default); resumable; torchrun-ready",
        description="Train on one process, or data-parallel under `torchrun --nproc-per-node N` (batch size is per "
        "process). Ctrl-C saves; --resume continues exactly where it stopped.",
    )
    tr.add_argument("--out", required=True, help="RUN_DIR: config, metrics, checkpoints")
    tr.add_argument("--resume", action="store_true", help="continue the run in --out (its saved config is used)")
    tr.add_argument("--model", default="mobilenet_v2", help="model name (default mobilenet_v2)")
    tr.add_argument("--alpha", type=float, default=1.0, help="width multiplier")
    group = tr.add_argument_group("model options")
    group.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                       help="stride-1 stem and first stage (default: on for images <= 64 px)")  # fmt: skip
    add_version_options(group)
    group.add_argument("--dropout", type=float, default=None, help="before the classifier (default: the version's)")
    group = tr.add_argument_group("data")
    group.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, mnist, cifar10 or folder")
    group.add_argument("--data-dir", default=None, help="directory of the dataset's files (or the image folder)")
    group.add_argument("--download", action="store_true", help="fetch from the original host, checksums verified")
    group.add_argument("--image-size", type=int, default=224, help="image folders: side after resize and crop")
    group.add_argument("--train-samples", type=int, default=None, help="train on a seeded subset of this size")
    group.add_argument("--val-samples", type=int, default=5000, help="held out from the training set (default 5000)")
    group.add_argument("--padding", type=int, default=None, help="random-crop padding (default side // 8)")
    group.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="horizontal flips")
    group.add_argument("--erasing", type=float, default=0.5, help="random-erasing probability (default 0.5)")
    group = tr.add_argument_group("optimization")
    group.add_argument("--epochs", type=int, default=30)
    group.add_argument("--batch-size", type=int, default=128, help="per process (default 128)")
    group.add_argument("--optimizer", choices=("sgd", "rmsprop", "adamw"), default="sgd")
    group.add_argument("--lr", type=float, default=None, help="peak learning rate (default: per optimizer, scaled)")
    group.add_argument("--momentum", type=float, default=0.9)
    group.add_argument("--weight-decay", type=float, default=None, help="never applied to BN or biases")
    group.add_argument("--label-smoothing", type=float, default=0.1)
    group.add_argument("--warmup-epochs", type=float, default=1.0)
    group.add_argument("--ema-decay", type=float, default=0.999, help="EMA of weights; 0 turns it off")
    group.add_argument("--bn-momentum", type=float, default=0.1, help="BN running-statistics momentum")
    group.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bfloat16 autocast")
    group.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--threads", type=int, default=None, help="torch threads per process")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.add_argument("--json", action="store_true", help="print the final result as JSON")
    tr.set_defaults(func=functools.partial(cmd_train, parser=tr))

    ev = verbs.add_parser("eval", help="top-1, top-5, per-class accuracy and confusion matrix of a checkpoint")
    ev.add_argument("checkpoint", help="a .safetensors checkpoint or an .onnx file (fp32 or int8)")
    ev.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, mnist, cifar10 or folder")
    ev.add_argument("--data-dir", default=None)
    ev.add_argument("--split", choices=("train", "test"), default="test")
    ev.add_argument(
        "--image-size", type=_integer(1, 4096), default=None, help="image folders: side after resize and crop"
    )
    ev.add_argument("--batch-size", type=COUNT, default=500, help="images per call (default 500)")
    ev.add_argument("--plot", default=None, help="write the confusion matrix here (PNG)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    ex = verbs.add_parser(
        "export", help="ONNX with BN folded, dynamic batch, checked in ONNX Runtime, labels and input in metadata"
    )
    ex.add_argument("checkpoint", help="a .safetensors file written by `mobilenet train` or mobilenet.save")
    ex.add_argument("--out", required=True, help="output .onnx path")
    ex.add_argument("--resolution", type=COUNT, default=None, help="input side (default: the training image size)")
    ex.add_argument(
        "--opset", type=int, default=18, help="ONNX opset, from 17 to the onnx package's newest (default 18)"
    )
    ex.set_defaults(func=cmd_export)

    qu = verbs.add_parser(
        "quantize", help="static int8 (QDQ, per-channel weights) with ONNX Runtime, calibrated on training images"
    )
    qu.add_argument("model", help="an fp32 .onnx file from `mobilenet export`")
    qu.add_argument("--out", required=True, help="output .onnx path")
    qu.add_argument("--calibrate", default="fashion-mnist", help="dataset whose TRAINING images calibrate")
    qu.add_argument("--data-dir", default=None)
    qu.add_argument("--samples", type=COUNT, default=512, help="calibration images (default 512)")
    qu.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    qu.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True)
    qu.add_argument("--activations", choices=("uint8", "int8"), default="uint8")
    qu.add_argument("--exclude", nargs="*", default=[], help="node names to keep in float")
    qu.add_argument("--portable", action="store_true",
                    help="standard ONNX operators only: h-swish and h-sigmoid stay float islands in ONNX Runtime "
                         "(default: lowered to its int8 QLinearAdd/QLinearMul contrib operators)")  # fmt: skip
    qu.add_argument("--float-stem", action=argparse.BooleanOptionalAction, default=True,
                    help="keep the first convolution (on the image) in float: faster in ONNX Runtime")  # fmt: skip
    qu.add_argument("--threads", type=THREADS, default=None, help="ONNX Runtime threads for the latency figure")
    qu.add_argument("--no-eval", action="store_true", help="skip the test-set accuracy comparison")
    qu.add_argument("--json", action="store_true")
    qu.set_defaults(func=cmd_quantize)

    pr = verbs.add_parser("predict", help="top-k labels for PNG/JPEG images with an ONNX file or a checkpoint")
    pr.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    pr.add_argument("--weights", required=True, help="a .onnx file (fp32 or int8) or a .safetensors checkpoint")
    pr.add_argument("--top-k", type=COUNT, default=3, help="labels per image (default 3)")
    pr.add_argument("--threads", type=THREADS, default=None, help="ONNX Runtime or torch threads")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=cmd_predict)

    convert = verbs.add_parser("convert", help="convert a torchvision MobileNetV2/V3 checkpoint to ours")
    convert.add_argument("source", help="torchvision state dict (.pth/.pt loaded with weights_only, .safetensors)")
    convert.add_argument("--arch", required=True, choices=("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"))
    convert.add_argument("--alpha", type=float, default=1.0, help="torchvision's width_mult (default 1.0)")
    convert.add_argument("--num-classes", type=COUNT, default=None, help="default: read from the classifier")
    convert.add_argument("--prefix", default="", help="take only keys under this prefix, with it stripped")
    convert.add_argument("--out", required=True, help="output .safetensors path")
    convert.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"mobilenet {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mobilenet {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mobilenet family | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
