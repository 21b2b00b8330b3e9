"""`mobilenet <verb>`: the command-line face of the library. Each verb parses its flags and calls one library
function; flags several verbs share are declared once (`_SHARED`), and every default and choice comes from the
library (`TrainConfig`, `ModelConfig`, `OPTION_RULES`, `QuantizeRecipe`, ...), so the two cannot drift apart.

Bad input (the library's `InputError`, a missing or existing file) exits with code 2 and one line naming the
problem; anything else is a bug and shows its traceback. The CLI imports no torch until a verb runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence

from mobilenet import __version__
from mobilenet._io import InputError, check_output, check_output_dir
from mobilenet.bench import BACKENDS, MIN_RUNS, MIN_TIME_S, ROUNDS
from mobilenet.bench.runner import CALIBRATION_PRECISION
from mobilenet.bench.runner import ROUNDS as SWEEP_ROUNDS
from mobilenet.data.catalog import DATASET_NAMES, IMAGE_SUFFIXES
from mobilenet.deploy.recipe import ACTIVATION_TYPES, METHODS, TOP_K, QuantizeRecipe
from mobilenet.resolve import OPTION_RULES, ModelConfig, make_config
from mobilenet.specs import BASE_RESOLUTION, TORCHVISION_ARCHS
from mobilenet.train.config import EVAL_BATCH_SIZE, OPTIMIZERS, TrainConfig, default_small_input


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


def _real(low: float, strict: bool, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a finite number > low (`strict`) or >= low, and < high when given."""
    valid = f"a number {'>' if strict else '>='} {low:g}" + (f" and < {high:g}" if high is not None else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value > low if strict else value >= low) or value == float("inf") or (high and value >= high):
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """An option value out of its range is bad input like any other: one line and exit code 2 (`main`), not argparse's
    usage text; other parse errors (an unknown verb, flag or choice) keep argparse's usage and exit code 2."""

    def error(self, message: str):
        if ": must be " in message:  # from the range-checking types above
            raise InputError(f"{self.prog}: error: {message}")
        super().error(message)


COUNT, THREADS, SIDE, SWEEP_COUNT = _integer(1), _integer(1, 1024), _integer(1, 4096), _integer(3)
POSITIVE, NON_NEGATIVE, FRACTION = _real(0, strict=True), _real(0, strict=False), _real(0, strict=False, high=1)

# Flags that several verbs take, declared once: name -> (flags, add_argument keywords). A verb may change the default.
_SHARED: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "json": (("--json",), {"action": "store_true", "help": "machine-readable output (JSON)"}),
    "quiet": (("--quiet",), {"action": "store_true", "help": "no progress bar"}),
    "threads": (("--threads",), {"type": THREADS, "default": None, "help": "intra-op threads (default: runtime's)"}),
    "resolution": (
        ("--resolution",),
        {"type": COUNT, "default": BASE_RESOLUTION, "help": "input side in pixels (default %(default)s)"},
    ),
    "batch_size": (("--batch-size",), {"type": COUNT, "help": "images per call (default %(default)s)"}),
    "num_classes": (("--num-classes",), {"type": COUNT, "help": "classifier outputs (default %(default)s)"}),
    "dataset": (
        ("--dataset",),
        {
            "choices": DATASET_NAMES,
            "default": TrainConfig.dataset,
            "help": "dataset (default %(default)s; folder: DIR/train/<class>/*, DIR/test/...)",
        },
    ),
    "data_dir": (("--data-dir",), {"default": None, "help": "directory of the dataset's files (or the image folder)"}),
    "file_backend": (
        ("--backend",),
        {
            "dest": "backend",
            "choices": BACKENDS,
            "default": None,
            "help": "what runs the file (default: onnx for .onnx, torch for checkpoints); "
            "a runtime that cannot run it correctly refuses it",
        },
    ),
}


def _add(parser, *names: str, aliases: tuple[str, ...] = (), **defaults: object) -> None:
    """Add the shared flags `names` to `parser`, with the defaults given here for this verb (and `aliases`: older
    spellings of the one flag, still accepted)."""
    for name in names:
        flags, keywords = _SHARED[name]
        keywords = {"dest": name, **keywords} | ({"default": defaults[name]} if name in defaults else {})
        parser.add_argument(*flags, *(aliases if len(names) == 1 else ()), **keywords)


_MODEL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model name and the `create_model` knobs, for every verb that builds a model."""
    parser.add_argument("name", help="model name, e.g. mobilenet_v2 (see `mobilenet family`)")
    group = parser.add_argument_group("model")
    group.add_argument(
        "--alpha", type=POSITIVE, default=_MODEL_DEFAULTS["alpha"], help="width multiplier (default %(default)s)"
    )
    _add(group, "num_classes", num_classes=_MODEL_DEFAULTS["num_classes"])
    group.add_argument(
        "--in-chans", type=COUNT, default=_MODEL_DEFAULTS["in_chans"], help="input channels (default %(default)s)"
    )
    group.add_argument(
        "--small-input", action="store_true", help="stem and first downsampling stage at stride 1 (28-64 px images)"
    )
    add_version_options(group)


def add_version_options(group) -> None:
    """The per-version options, one flag each, made from `OPTION_RULES` (None: the version's default)."""
    for name, rule in OPTION_RULES.items():
        flag = f"--{name.replace('_', '-')}"
        if rule.kind is bool:
            group.add_argument(flag, action="store_true", default=None, help=rule.help)
        elif rule.kind is float:
            group.add_argument(flag, type=POSITIVE, default=None, help=rule.help)
        else:
            group.add_argument(flag, choices=rule.choices, default=None, help=rule.help)


def version_options(args: argparse.Namespace) -> dict[str, object]:
    """The version options the user set."""
    return {name: getattr(args, name) for name in OPTION_RULES if getattr(args, name) is not None}


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The `ModelConfig` of parsed `add_model_arguments` flags (checked where it is made)."""
    return make_config(
        args.name, args.alpha, args.num_classes, args.in_chans, args.small_input, **version_options(args)
    )


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The family sweep's knobs, shared by `select` and `report`."""
    parser.add_argument(
        "--backend",
        nargs="+",
        choices=BACKENDS,
        default=None,
        help="what runs the models (default: every deployment backend this machine supports)",
    )
    parser.add_argument(
        "--accuracy",
        default="published",
        help="'published' (ImageNet tables, with sources) or a JSON results file such as weights/manifest.json",
    )
    parser.add_argument("--models", nargs="*", default=None, help="only these versions (e.g. mobilenet_v2)")
    _add(parser, "threads")
    parser.add_argument(
        "--predict", action="store_true", help="fast: predict every latency with the calibrated latency model"
    )
    parser.add_argument("--recalibrate", action="store_true", help="time the latency model's calibration members again")
    parser.add_argument(
        "--cache", default=None, help="latency cache directory (default $MOBILENET_CACHE or ~/.cache/mobilenet)"
    )
    parser.add_argument("--no-cache", action="store_true", help="measure everything, store nothing")
    parser.add_argument(
        "--measure-all", action="store_true", help="time every candidate, not only those that can decide the pick"
    )
    parser.add_argument("--refresh", action="store_true", help="re-measure every member, replacing its cached figure")
    _add(parser, "quiet")


def _millions(value: float) -> str:
    return f"{value / 1e6:,.2f}M"


def cmd_family(args: argparse.Namespace) -> int:
    from mobilenet.cost import family

    rows = family(args.num_classes)
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
    """The roofline's machine the user gave (--peak-gmacs and --bandwidth-gbs), or None (probe this one)."""
    from mobilenet.cost.roofline import HardwareProfile

    if (args.peak_gmacs is None) != (args.bandwidth_gbs is None):
        raise InputError("give both --peak-gmacs and --bandwidth-gbs, or neither to measure this machine")
    return None if args.peak_gmacs is None else HardwareProfile.given(args.peak_gmacs, args.bandwidth_gbs, args.threads)


def cmd_profile(args: argparse.Namespace) -> int:
    from mobilenet.bench.layers import profile_member

    config = model_config(args)
    result = profile_member(config, args.resolution, _hardware(args), args.roofline, args.measure, args.threads)
    report, roof, check = result.report, result.roofline, result.measured
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    fields = {"num_classes": config.num_classes, "in_chans": config.in_chans, "small_input": config.small_input}
    options = " ".join(f"{key}={value}" for key, value in (fields | dict(config.options)).items())
    print(f"{report.name} alpha={config.alpha} at {report.resolution}x{report.resolution} ({options})")
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
        print(f"  measured        {check.measured_ms:.2f} ms (eager fp32, batch 1, median; per layer: timed by hooks)")
    print()
    if args.by_layer:
        _print_layers(report, roof, check)
    else:
        _print_kinds(report, roof)
    if check is not None:
        print("\npredicted against measured, per kind (ms):")
        for kind, row in check.by_kind().items():
            times = f"predicted {row['predicted_ms']:>8.3f}  measured {row['measured_ms']:>8.3f}"
            print(
                f"  {kind:<16}{row['layers']:>4} layers  {times}  "
                f"({row['measured_ms'] / max(row['predicted_ms'], 1e-9):.1f}x)"
            )
        print("where they disagree most:")
        for t in check.worst():
            print(
                f"  {t.name:<28}{t.kind:<15}{t.bound:>8}-bound  predicted {t.predicted_ms:.3f}  measured "
                f"{t.measured_ms:.3f} ms ({t.ratio:.1f}x)"
            )
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
    from mobilenet.convert import convert_file

    path, model = convert_file(args.source, args.out, args.arch, args.alpha, args.num_classes, args.prefix)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {path}: {args.arch} alpha={args.alpha}, {model.config.num_classes} classes, {params:,} params")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from mobilenet.bench.latency import measure

    config = model_config(args)
    if args.backend == "all":
        return _bench_all(args, config)
    timing, facts = measure(
        config, args.resolution, args.backend, args.batch_size, args.threads, args.min_runs, args.min_time
    )
    result = {
        "name": config.name,
        "alpha": config.alpha,
        "config": config.to_dict(),
        "resolution": args.resolution,
        **facts,
        **timing.to_dict(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    size = f", {facts['size_mb']:.2f} MB file" if "size_mb" in facts else ""
    print(
        f"{config.name} alpha={config.alpha} {args.resolution}px batch {args.batch_size}, {args.backend}, "
        f"{facts['threads']} thread(s){size}"
    )
    print(
        f"  median {timing.median_ms:.3f} ms   p10 {timing.p10_ms:.3f}   p90 {timing.p90_ms:.3f}   "
        f"{timing.images_per_s:,.0f} images/s   ({timing.runs} timed calls)"
    )
    if timing.noisy:
        print(
            f"  warning: p90/p10 = {timing.spread:.2f}: the machine was busy; the median is not to be trusted",
            file=sys.stderr,
        )
    return 0


def _bench_all(args: argparse.Namespace, config: ModelConfig) -> int:
    from mobilenet.bench.latency import compare_backends
    from mobilenet.cost.roofline import machine_id

    rows = compare_backends(config, args.resolution, None, args.batch_size, args.threads, rounds=args.rounds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{config.name} alpha={config.alpha} {args.resolution}px batch {args.batch_size}, {rows[0]['threads']} "
        f"thread(s), every deployment backend this machine supports, {args.rounds} interleaved rounds "
        f"({machine_id()})"
    )
    print(f"  {'backend':<16}{'median ms':>10}{'p10':>8}{'p90':>8}{'file MB':>9}{'x onnx':>8}")
    for row in rows:
        ratio = f"{row['ratio']:.2f}" if row["ratio"] else "-"
        print(
            f"  {row['backend']:<16}{row['median_ms']:>10.3f}{row['p10_ms']:>8.3f}{row['p90_ms']:>8.3f}"
            f"{row['size_mb']:>9.2f}{ratio:>8}"
        )
    return 0


def _candidates(args: argparse.Namespace):
    """The candidates of `select` and `report`."""
    from mobilenet.bench.select import candidates

    return candidates(
        args.accuracy,
        args.models,
        args.backend,
        args.threads,
        args.predict,
        args.cache,
        use_cache=not args.no_cache,
        refresh=args.refresh,
        progress=not args.quiet and not getattr(args, "json", False),
        latency_ms=args.latency_ms,
        size_mb=args.size_mb,
        measure_all=args.measure_all,
        recalibrate=args.recalibrate,
        device=getattr(args, "device", None),
    )


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}%"


def cmd_select(args: argparse.Namespace) -> int:
    from mobilenet.bench.select import choose

    if args.latency_ms is None and args.size_mb is None:
        raise InputError("give a budget: --latency-ms, --size-mb or both")
    if args.out:
        check_output_dir(args.out, what="--out")
    if args.grid and args.out:
        raise InputError("--out writes a trained pick; a --grid configuration has no weights (train it first)")
    if args.grid:
        from mobilenet.bench.grid import search

        candidates = search(
            args.accuracy,
            args.models,
            args.backend,
            args.threads,
            args.cache,
            latency_ms=args.latency_ms,
            size_mb=args.size_mb,
            device=args.device,
            recalibrate=args.recalibrate,
            progress=not args.quiet and not args.json,
        )
        caches = {}
    else:
        candidates, caches = _candidates(args)
    choice = choose(candidates, args.latency_ms, args.size_mb)
    if args.out and choice.pick is not None:
        from mobilenet.bench.select import write_pick

        choice = dataclasses.replace(
            choice, message=f"{choice.message}\n  written: {write_pick(choice.pick, args.out)}"
        )
    if args.json:
        print(json.dumps(choice.to_dict(), indent=2))
        return 0 if choice.pick else 1
    backends = sorted({c.backend for c in candidates})
    measured = sum(c.measured for c in candidates)
    mode = f"{measured} measured here, the rest predicted"
    if args.predict or args.grid or args.device:
        mode = "all PREDICTED by the latency model" + (f" of {args.device}" if args.device else "")
    print(
        f"{len(candidates)} candidates (members x backends {', '.join(backends)}), latency {mode}; accuracy "
        f"{'from the published ImageNet tables' if args.accuracy == 'published' else 'from ' + str(args.accuracy)}"
        f", per precision"
    )
    for cache in caches.values():
        if cache is not None and cache.data:
            print(f"latency cache: {cache.path}")
    print("\nPareto frontier (accuracy against latency; no member is both faster and more accurate):")
    width = max(len(c.label) for c in candidates) + 2
    print(f"  {'member':<{width}} {'latency':>10} {'size':>9} {'top-1':>7}")
    for c in choice.frontier:
        mark = "  <- pick" if c is choice.pick else ("" if c.measured else "  (predicted)")
        print(f"  {c.label:<{width}} {c.latency_ms:>7.2f} ms {c.size_mb:>6.2f} MB {_percent(c.accuracy):>7}{mark}")
    budgets = ", ".join(f"{v:g} {u}" for v, u in ((args.latency_ms, "ms"), (args.size_mb, "MB")) if v is not None)
    print(f"\nbudget: {budgets}")
    print(
        choice.message if choice.pick is None else f"{choice.message}\n  latency source: {choice.pick.latency_source}"
    )
    if choice.reasons:
        print("nearest alternatives:")
        for c, why in choice.reasons:
            print(f"  {c.label:<{width}} {_percent(c.accuracy):>6}: {why}")
    if args.grid:
        _print_grid(candidates, width)
    return 0 if choice.pick else 1


def _print_grid(candidates, width: int) -> None:
    from mobilenet.bench.grid import NO_ACCURACY
    from mobilenet.cost import profile

    grid = [c for c in candidates if c.accuracy_source == NO_ACCURACY]
    grid.sort(key=lambda c: -profile(c.entry.config, resolution=c.entry.resolution).macs)
    print(
        f"\nbeyond the published grid: the widest of each version and resolution within the budgets, most MACs "
        f"first ({len(grid)}; accuracy unknown until trained):"
    )
    for c in grid[:15]:
        macs = profile(c.entry.config, resolution=c.entry.resolution).macs
        print(f"  {c.label:<{width}} {c.latency_ms:>7.2f} ms {c.size_mb:>6.2f} MB {macs / 1e6:>8.1f}M MACs (predicted)")


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.kit:
        if args.rounds != SWEEP_ROUNDS or args.precision != CALIBRATION_PRECISION:
            raise InputError(
                "--rounds and --precision time here; with --kit, give them to the runner on the device "
                "(python DIR/mobilenet_runner.py --rounds N --precision P)"
            )
        from mobilenet.bench.timing import KIT_BACKENDS, write_kit

        check_output_dir(args.kit, what="--kit")
        wanted = tuple(args.backend) if args.backend else KIT_BACKENDS
        kit = write_kit(args.kit, wanted)
        then = f"mobilenet select --device measurements-NAME-{wanted[0]}.json --latency-ms 10 --size-mb 5"
        print(
            f"wrote the calibration kit {kit} ({', '.join(wanted)}). On the device (numpy and onnxruntime or "
            f"openvino installed):\n  python {kit}/mobilenet_runner.py --backend {wanted[0]} --device NAME\n"
            f"then here: {then}"
        )
        return 0
    import torch

    from mobilenet.bench.select import cache_dir
    from mobilenet.bench.timing import calibrate
    from mobilenet.deploy.backends import deploy_backends, supported

    for name in args.backend or ():
        reason = supported(name)
        if reason:
            raise InputError(f"backend {name}: {reason}")
    backends = list(args.backend) if args.backend else deploy_backends()
    directory = args.cache or cache_dir()
    models = calibrate(
        backends,
        args.threads or torch.get_num_threads(),
        directory,
        not args.quiet,
        rounds=args.rounds,
        precision=args.precision,
    )
    if args.json:
        print(json.dumps({b: m.to_dict() for b, m in models.items()}, indent=2))
        return 0
    for model in models.values():
        print(f"{model.describe()}; timing took {model.seconds:.0f} s; stored in {directory}")
        for row in model.calibration:
            print(f"  {row['key']:<44} measured {row['measured_ms']:>7.2f} ms  fitted {row['fitted_ms']:>7.2f} ms")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mobilenet.report.data import ReportData, collect
    from mobilenet.report.html import data_path, write_report

    check_output(args.out)
    if args.data:  # draw the page again from saved data: nothing is profiled or measured
        data = ReportData.load(args.data)
    else:
        from mobilenet.bench.select import cache_dir, choose, stored_models
        from mobilenet.cost.roofline import probe

        check_output(data_path(args.out))
        candidates, _ = _candidates(args)
        hardware = probe(args.threads)  # the report's roofline
        choice = choose(candidates, args.latency_ms, args.size_mb)
        models = stored_models(
            sorted({c.backend for c in candidates}), args.threads, None if args.no_cache else args.cache or cache_dir()
        )
        data = collect(
            choice, hardware, args.latency_ms, args.size_mb, args.backend, measure=not args.predict, models=models
        )
    path = write_report(args.out, data)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and its data {data_path(path)}: {data.choice['message']}")
    return 0


# `train`'s flags beside the model's, one per `TrainConfig` field: field -> (group, add_argument keywords). The
# default of each is the field's own; `--threads` is the field `num_threads`.
_TRAIN_FLAGS: dict[str, tuple[str, dict[str, object]]] = {
    "download": ("data", {"action": "store_true", "help": "fetch from the original host, checksums verified"}),
    "image_size": ("data", {"type": SIDE, "help": "image folders: side after resize and crop (default %(default)s)"}),
    "train_samples": ("data", {"type": COUNT, "help": "train on a seeded subset of this size"}),
    "val_samples": ("data", {"type": _integer(0), "help": "held out from the training set (default %(default)s)"}),
    "padding": ("data", {"type": _integer(0), "help": "random-crop padding (default side // 8)"}),
    "flip": (
        "data",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "horizontal flips (default: where the dataset's classes survive a mirror)",
        },
    ),
    "erasing": (
        "data",
        {"type": _real(0, strict=False, high=1.000001), "help": "random-erasing probability (default %(default)s)"},
    ),
    "epochs": ("optimization", {"type": COUNT, "help": "(default %(default)s)"}),
    "batch_size": ("optimization", {"type": COUNT, "help": "per process (default %(default)s)"}),
    "optimizer": ("optimization", {"choices": OPTIMIZERS, "help": "(default %(default)s)"}),
    "lr": ("optimization", {"type": POSITIVE, "help": "peak learning rate (default: per optimizer, scaled)"}),
    "momentum": ("optimization", {"type": FRACTION, "help": "(default %(default)s)"}),
    "weight_decay": ("optimization", {"type": NON_NEGATIVE, "help": "never applied to BN or biases"}),
    "label_smoothing": ("optimization", {"type": FRACTION, "help": "(default %(default)s)"}),
    "warmup_epochs": ("optimization", {"type": NON_NEGATIVE, "help": "(default %(default)s)"}),
    "ema_decay": ("optimization", {"type": FRACTION, "help": "EMA of weights; 0 turns it off (default %(default)s)"}),
    "bn_momentum": (
        "optimization",
        {"type": _real(0, strict=True, high=1.000001), "help": "BN running-statistics momentum (default %(default)s)"},
    ),
    "bf16": ("optimization", {"action": argparse.BooleanOptionalAction, "help": "bfloat16 autocast"}),
    "channels_last": ("optimization", {"action": argparse.BooleanOptionalAction, "help": "channels-last memory"}),
    "compile": ("optimization", {"action": "store_true", "help": "torch.compile the model"}),
    "seed": ("optimization", {"type": _integer(0), "help": "(default %(default)s)"}),
    "num_threads": ("optimization", {"type": THREADS, "help": "torch threads per process"}),
}
_TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="RUN_DIR: config, metrics, checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (its saved config is used)")
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=_TRAIN_DEFAULTS["model"], help="model name (default %(default)s)")
    group.add_argument("--alpha", type=POSITIVE, default=_MODEL_DEFAULTS["alpha"], help="width multiplier")
    group.add_argument(
        "--small-input",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stride-1 stem and first stage (default: on for images <= 64 px)",
    )
    add_version_options(group)
    group.add_argument(
        "--dropout",
        type=_real(0, strict=False, high=1),
        default=None,
        help="before the classifier (default: the version's)",
    )
    groups = {"data": parser.add_argument_group("data"), "optimization": parser.add_argument_group("optimization")}
    _add(groups["data"], "dataset", "data_dir")
    for name, (group_name, keywords) in _TRAIN_FLAGS.items():
        flag = "--threads" if name == "num_threads" else f"--{name.replace('_', '-')}"
        metavar = {"metavar": "THREADS"} if name == "num_threads" else {}
        groups[group_name].add_argument(flag, dest=name, default=_TRAIN_DEFAULTS[name], **keywords, **metavar)
    _add(parser, "quiet")
    parser.add_argument("--json", action="store_true", help="print the final result as JSON")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` of parsed `train` flags."""
    small_input = default_small_input(args.dataset, args.image_size) if args.small_input is None else args.small_input
    model = make_config(args.model, args.alpha, small_input=small_input, dropout=args.dropout, **version_options(args))
    return TrainConfig(
        out=args.out,
        model=model,
        dataset=args.dataset,
        data_dir=args.data_dir,
        **{name: getattr(args, name) for name in _TRAIN_FLAGS},
    )


def cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mobilenet.train import TrainingDiverged, train

    if args.resume:
        fixed = ("verb", "func", "out", "resume", "quiet", "json")
        given = [name for name, value in vars(args).items() if name not in fixed and value != parser.get_default(name)]
        if given:
            flags = ", ".join(f"--{'threads' if name == 'num_threads' else name.replace('_', '-')}" for name in given)
            raise InputError(
                f"--resume continues the run as saved in {args.out}/config.json, so {flags} cannot "
                f"change it; drop {flags}, or start a new run with another --out"
            )
        config = TrainConfig(out=args.out)  # replaced by RUN_DIR/config.json
    else:
        config = train_config(args)
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
        print(
            f"best validation top-1 {result['best_val_acc']:.2f}%; test top-1 {best.get('top1', float('nan')):.2f}% "
            f"(top-5 {best.get('top5', float('nan')):.2f}%) with {args.out}/best.safetensors"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mobilenet.deploy.predictor import evaluate_file
    from mobilenet.train.evaluation import plot_confusion

    if args.plot:
        check_output(args.plot)
    result, classes = evaluate_file(
        args.file, args.dataset, args.split, args.data_dir, args.batch_size, args.image_size, args.threads, args.backend
    )
    if args.plot:
        plot_confusion(result, classes, args.plot, title=f"{args.file} on {args.dataset} {args.split}")
    if args.json:
        print(
            json.dumps({"file": args.file, "dataset": args.dataset, "split": args.split, **result.to_dict()}, indent=2)
        )
        return 0
    print(f"{args.file} on {args.dataset} ({args.split}, {result.samples:,} images)")
    print(f"  top-1 {result.top1:.2f}%   top-5 {result.top5:.2f}%   loss {result.loss:.4f}")
    for cls, accuracy in result.per_class.items():
        print(f"  {cls:<14}{accuracy:>7.2f}%")
    if args.plot:
        print(f"  confusion matrix: {args.plot}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from mobilenet.bench.compare import quantize_and_compare

    recipe = QuantizeRecipe(
        args.samples,
        args.method,
        args.per_channel,
        args.activations,
        tuple(args.exclude),
        args.portable,
        args.float_stem,
    )
    report = quantize_and_compare(
        args.file, args.out, args.dataset, args.data_dir, recipe, args.threads, evaluate=not args.no_eval
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    operators = "standard ONNX operators only" if args.portable else "h-swish/h-sigmoid as ONNX Runtime int8 ops"
    print(
        f"wrote {report['int8']['path']} (int8 QDQ, per-channel={args.per_channel}, {args.activations} "
        f"activations, {args.method} calibration on {args.samples} {args.dataset} training images; "
        f"{operators})"
    )
    print(f"{'':6}{'size MB':>9}{'latency ms':>12}{'test top-1':>12}   (batch 1, {args.threads or 'all'} threads)")
    for name in ("fp32", "int8"):
        row = report[name]
        top1 = f"{row['top1']:.2f}%" if "top1" in row else "-"
        print(f"{name:<6}{row['size_mb']:>9.2f}{row['latency_ms']:>12.3f}{top1:>12}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mobilenet.deploy.onnx import export_checkpoint

    report = export_checkpoint(args.checkpoint, args.out, args.resolution, args.opset)
    size = report.path.stat().st_size / 1e6
    side = report.resolution
    print(f"wrote {report.path} ({size:.2f} MB, opset {report.opset}, {side}x{side}, dynamic batch)")
    print(
        f"  checked in ONNX Runtime: max |onnx - torch| = {report.max_abs_diff:.3g} "
        f"({report.relative_diff:.2g} of the output scale {report.output_scale:.3g}; limit 1e-4)"
    )
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from mobilenet.deploy.predictor import Classifier, Prediction

    classifier = Classifier(args.weights, threads=args.threads, backend=args.backend)
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


def _add_family(verbs) -> None:
    family = verbs.add_parser(
        "family", help="every version at its published widths and resolutions: MACs, params, receptive field"
    )
    _add(family, "num_classes", "json", num_classes=_MODEL_DEFAULTS["num_classes"])
    family.set_defaults(func=cmd_family)


def _add_profile(verbs) -> None:
    prof = verbs.add_parser(
        "profile",
        help="exact cost of one member: MACs, params, per layer or per kind, receptive field, roofline",
        description="Count a family member on the meta device (no weights are allocated).",
    )
    add_model_arguments(prof)
    _add(prof, "resolution")
    view = prof.add_mutually_exclusive_group()
    view.add_argument("--by-kind", action="store_true", help="one row per layer kind (the default view)")
    view.add_argument("--by-layer", action="store_true", help="one row per conv and linear layer")
    prof.add_argument("--roofline", action="store_true", help="predict per-layer time on this machine (probe ~0.2 s)")
    prof.add_argument("--peak-gmacs", type=POSITIVE, default=None, help="roofline with this peak GMAC/s (no probe)")
    prof.add_argument("--bandwidth-gbs", type=POSITIVE, default=None, help="roofline with this memory GB/s (no probe)")
    prof.add_argument(
        "--measure",
        action="store_true",
        help="also time every layer (forward hooks) and the network, beside the roofline",
    )
    _add(prof, "threads", "json")
    prof.set_defaults(func=cmd_profile)


def _add_bench(verbs) -> None:
    be = verbs.add_parser(
        "bench",
        help="latency of one member on this machine: median, p10, p90, images/s, per backend",
        description="Warm up, then time calls until the median is stable (at least --min-runs calls and --min-time "
        "seconds). What is timed: one forward call on a batch in memory. See mobilenet.bench.latency.",
    )
    add_model_arguments(be)
    _add(be, "resolution", "batch_size", "threads", batch_size=1)
    be.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        default="torch",
        help="what runs the model (default torch); all: every deployment backend this machine supports, "
        "timed in interleaved rounds, with the ratio to onnx",
    )
    be.add_argument("--rounds", type=COUNT, default=ROUNDS, help="with --backend all: rounds (default %(default)s)")
    be.add_argument("--min-runs", type=COUNT, default=MIN_RUNS, help="timed calls at least (default %(default)s)")
    be.add_argument(
        "--min-time",
        type=NON_NEGATIVE,
        default=MIN_TIME_S,
        help="seconds of timed calls at least (default %(default)s)",
    )
    _add(be, "json")
    be.set_defaults(func=cmd_bench)


def _add_select(verbs) -> None:
    se = verbs.add_parser(
        "select",
        help="the most accurate member within a latency and size budget, measured on this machine",
        description="Survey the family (every published V1/V2/V3 configuration, or the entries of your own results "
        "file) in every deployment backend this machine supports: predict each latency with the backend's latency "
        "model (calibrated once per machine, runtime and thread count: `mobilenet calibrate`), measure what decides "
        "the pick in interleaved rounds (cached: a second call measures nothing), take size from the deployed file, "
        "and print the Pareto frontier, the pick and why the nearest alternatives lost, each figure marked measured "
        "or predicted. --grid searches beyond the published grid; --device selects for another device from its "
        "measurements. Exit code 1 when no member meets the budgets.",
    )
    se.add_argument("--latency-ms", type=POSITIVE, default=None, help="latency budget, batch 1 (e.g. 10)")
    se.add_argument("--size-mb", type=POSITIVE, default=None, help="size budget of the deployed file (e.g. 5)")
    se.add_argument(
        "--out",
        default=None,
        help="write the pick's ready-to-run file into this folder (candidates "
        "from a results file that names its checkpoints, such as weights/manifest.json)",
    )
    se.add_argument(
        "--grid",
        action="store_true",
        help="also search beyond the published grid: the widest alpha (to 0.01; V1 in steps of 0.25, its widths of "
        "aligned channels) of each version at each resolution "
        "(and V2 expansion) within the budgets, latency predicted, size counted; accuracy only where your results "
        "give it",
    )
    se.add_argument(
        "--device",
        default=None,
        metavar="MEASUREMENTS",
        help="select for another device: the measurements file its calibration kit wrote there "
        "(`mobilenet calibrate --kit`); every latency is predicted for it",
    )
    add_sweep_arguments(se)
    _add(se, "json")
    se.set_defaults(func=cmd_select)


def _add_calibrate(verbs) -> None:
    ca = verbs.add_parser(
        "calibrate",
        help="fit the latency model of each backend on this machine, or write a calibration kit for another device",
        description="Time the calibration members (off the published grid, spanning the family) in interleaved "
        "rounds and fit each backend's latency model, stored beside the latency cache for this machine, runtime "
        "version and thread count (select and report calibrate by themselves when none is stored). With --kit DIR, "
        "write the members' ONNX files and a one-file runner that needs only numpy and ONNX Runtime or OpenVINO: "
        "run `python DIR/mobilenet_runner.py --backend onnx --device NAME` on the device, then "
        "`mobilenet select --device measurements-NAME-onnx.json`.",
    )
    ca.add_argument("--kit", default=None, metavar="DIR", help="write a calibration kit into DIR instead of timing")
    ca.add_argument(
        "--backend",
        nargs="+",
        choices=BACKENDS,
        default=None,
        help="backends (default: every supported deployment one)",
    )
    _add(ca, "threads")
    ca.add_argument(
        "--rounds",
        type=SWEEP_COUNT,
        default=SWEEP_ROUNDS,
        help="interleaved rounds per member (default %(default)s; 15 cost about a minute more here and did not "
        "make the model reliably better: docs/bench.md)",
    )
    ca.add_argument(
        "--precision",
        type=POSITIVE,
        default=CALIBRATION_PRECISION,
        help="re-time a member whose median is known less well than this relative standard error, once "
        "(default %(default)s: the rounds and no more; re-timing to 0.03 cost half a minute here and did not make "
        "the model better: docs/bench.md)",
    )
    ca.add_argument(
        "--cache", default=None, help="latency cache directory (default $MOBILENET_CACHE or ~/.cache/mobilenet)"
    )
    _add(ca, "json")
    _add(ca, "quiet")
    ca.set_defaults(func=cmd_calibrate)


def _add_report(verbs) -> None:
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


def _add_train(verbs) -> None:
    tr = verbs.add_parser(
        "train",
        help="train a family member on real data (Fashion-MNIST by default); resumable; torchrun-ready",
        description="Train on one process, or data-parallel under `torchrun --nproc-per-node N` (batch size is per "
        "process). Ctrl-C saves; --resume continues exactly where it stopped.",
    )
    add_train_arguments(tr)
    tr.set_defaults(func=functools.partial(cmd_train, parser=tr))


def _add_eval(verbs) -> None:
    ev = verbs.add_parser("eval", help="top-1, top-5, per-class accuracy and confusion matrix of a model file")
    ev.add_argument("file", help="a .safetensors checkpoint or an .onnx file (fp32 or int8)")
    _add(ev, "dataset", "data_dir")
    ev.add_argument("--split", choices=("train", "test"), default="test")
    ev.add_argument("--image-size", type=SIDE, default=None, help="image folders: side after resize and crop")
    _add(ev, "batch_size", "threads", "file_backend", batch_size=EVAL_BATCH_SIZE)
    ev.add_argument("--plot", default=None, help="write the confusion matrix here (PNG)")
    _add(ev, "json")
    ev.set_defaults(func=cmd_eval)


def _add_export(verbs) -> None:
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


def _add_quantize(verbs) -> None:
    qu = verbs.add_parser(
        "quantize", help="static int8 (QDQ, per-channel weights) with ONNX Runtime, calibrated on training images"
    )
    qu.add_argument("file", help="an fp32 .onnx file from `mobilenet export`")
    qu.add_argument("--out", required=True, help="output .onnx path")
    _add(qu, "dataset", aliases=("--calibrate",))  # its training images calibrate, its test images evaluate
    _add(qu, "data_dir")
    qu.add_argument(
        "--samples", type=COUNT, default=QuantizeRecipe.samples, help="calibration images (default %(default)s)"
    )
    qu.add_argument("--method", choices=METHODS, default=QuantizeRecipe.method, help="calibrator (default %(default)s)")
    qu.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=QuantizeRecipe.per_channel)
    qu.add_argument("--activations", choices=ACTIVATION_TYPES, default=QuantizeRecipe.activations)
    qu.add_argument("--exclude", nargs="*", default=list(QuantizeRecipe.exclude), help="node names to keep in float")
    qu.add_argument(
        "--portable",
        action="store_true",
        default=QuantizeRecipe.portable,
        help="standard ONNX operators only: h-swish and h-sigmoid stay float islands in ONNX Runtime "
        "(default: lowered to its int8 QLinearAdd/QLinearMul contrib operators)",
    )
    qu.add_argument(
        "--float-stem",
        action=argparse.BooleanOptionalAction,
        default=QuantizeRecipe.float_stem,
        help="keep the first convolution (on the image) in float: faster in ONNX Runtime",
    )
    _add(qu, "threads")
    qu.add_argument("--no-eval", action="store_true", help="skip the test-set accuracy comparison")
    _add(qu, "json")
    qu.set_defaults(func=cmd_quantize)


def _add_predict(verbs) -> None:
    pr = verbs.add_parser("predict", help="top-k labels for PNG/JPEG images with an ONNX file or a checkpoint")
    pr.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    pr.add_argument("--weights", required=True, help="a .onnx file (fp32 or int8) or a .safetensors checkpoint")
    pr.add_argument("--top-k", type=COUNT, default=TOP_K, help="labels per image (default %(default)s)")
    _add(pr, "threads", "file_backend", "json")
    pr.set_defaults(func=cmd_predict)


def _add_convert(verbs) -> None:
    convert = verbs.add_parser("convert", help="convert a torchvision MobileNetV2/V3 checkpoint to ours")
    convert.add_argument("source", help="torchvision state dict (.pth/.pt loaded with weights_only, .safetensors)")
    convert.add_argument("--arch", required=True, choices=TORCHVISION_ARCHS)
    convert.add_argument(
        "--alpha",
        type=POSITIVE,
        default=_MODEL_DEFAULTS["alpha"],
        help="torchvision's width_mult (default %(default)s)",
    )
    _add(convert, "num_classes", num_classes=None)
    convert.add_argument("--prefix", default="", help="take only keys under this prefix, with it stripped")
    convert.add_argument("--out", required=True, help="output .safetensors path")
    convert.set_defaults(func=cmd_convert)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mobilenet", description="The MobileNet family: build, count, train, deploy and measure.")
    parser.add_argument("--version", action="version", version=f"mobilenet {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    _add_family(verbs)
    _add_profile(verbs)
    _add_bench(verbs)
    _add_select(verbs)
    _add_calibrate(verbs)
    _add_report(verbs)
    _add_train(verbs)
    _add_eval(verbs)
    _add_export(verbs)
    _add_quantize(verbs)
    _add_predict(verbs)
    _add_convert(verbs)
    return parser


# What bad input looks like when it reaches `main`: the library's InputError, and the operating system's word on a
# path the user named. Anything else is a bug, and its traceback is shown.
_INPUT_ERRORS = (InputError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except InputError as error:
        print(error, file=sys.stderr)
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except _INPUT_ERRORS as error:
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
