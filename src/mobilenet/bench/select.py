"""Pick the family member that fits a latency and a size budget, on this machine.

The sources' promise: M(α, ρ) lets a designer "select the configuration that maximizes accuracy for a specific
latency budget and size budget". `sweep` measures every candidate's latency here (`mobilenet.bench.latency`, cached
per machine, backend and threads), takes its size from the file the backend runs, and its accuracy from the published
ImageNet tables (`mobilenet.published`, with their sources) or from the user's own results; `choose` returns the
Pareto frontier of accuracy against latency, the most accurate member within both budgets, and why the nearest
alternatives lost. The fast mode predicts latency from the roofline (`mobilenet.cost.roofline`) instead of measuring,
and says so in every candidate's `latency_source`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mobilenet._io import InputError, atomic_write, write_text
from mobilenet.bench.latency_model import LatencyModel, from_measurements, load_model, member_key, model_path
from mobilenet.bench.runner import ROUNDS
from mobilenet.bench.timing import latency_models, time_pairs
from mobilenet.cost import profile
from mobilenet.cost.roofline import machine_id
from mobilenet.data.catalog import DATASETS
from mobilenet.data.datasets import load_dataset
from mobilenet.deploy.artifacts import build_artifact, load_artifact
from mobilenet.deploy.backends import deploy_backends, get_backend, runtime_version, supported
from mobilenet.published import PUBLISHED, PUBLISHED_INT8, V1_CHECKPOINTS
from mobilenet.resolve import ModelConfig, check_resolution, make_config, resolve
from mobilenet.specs import BASE_RESOLUTION
from mobilenet.train.evaluation import evaluate
from mobilenet.weights import load

PUBLISHED_FLOAT = "published float"
MEASURED = "measured on your data"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Entry:
    """One configuration to consider: the model (its `ModelConfig`), the input side, and its accuracy (percent top-1)
    with where that figure comes from."""

    config: ModelConfig
    resolution: int
    accuracy: float | None  # None: unknown (an unpublished configuration, or none for this precision)
    accuracy_source: str
    kind: str = PUBLISHED_FLOAT  # where the figure comes from (PUBLISHED_FLOAT or MEASURED)
    weights: str | None = None  # the trained checkpoint a results file names, if any
    dataset: str = "imagenet"  # what the figure was measured on

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def alpha(self) -> float:
        return self.config.alpha

    @property
    def options(self) -> tuple[tuple[str, object], ...]:
        """The version options that differ from the version's defaults, sorted (what labels and keys name)."""
        return tuple(sorted(self.config.changed_options().items()))

    def key(self) -> str:
        c, options = self.config, ",".join(f"{k}={v}" for k, v in self.options)
        return (
            f"{c.name}|a={c.alpha}|r={self.resolution}|{options}|c={c.in_chans}|k={c.num_classes}|small={c.small_input}"
        )


def _or_none(value: float) -> float | None:
    """`value`, or None for nan (not measured, no model): JSON has no nan, and `select --json` is read by more than
    Python."""
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Candidate:
    """A configuration run by one backend: its latency and size here, and its accuracy for that backend's
    precision (None: unknown, never picked). `measured`: the latency was timed and the size is the file's; otherwise
    both are estimates (the latency model's time, the weights' bytes), shown but not picked while anything was
    measured."""

    entry: Entry
    latency_ms: float
    latency_source: str  # "measured: onnx, 2 threads, ..." or "predicted: latency model here (...)"
    size_mb: float
    size_source: str
    spread: float = float("nan")  # p90 / p10 of a measured latency (see mobilenet.bench.latency.NOISY_SPREAD)
    backend: str = "onnx"
    accuracy: float | None = None
    accuracy_source: str = ""
    accuracy_kind: str = ""  # empty: the entry's own figure
    measured: bool = True
    predicted_ms: float = float("nan")  # the latency model's figure, beside a measured one (nan: no model)

    def __post_init__(self) -> None:
        if not self.accuracy_kind:  # the entry's own figure, for the entry's precision
            object.__setattr__(self, "accuracy", self.entry.accuracy)
            object.__setattr__(self, "accuracy_source", self.entry.accuracy_source)
            object.__setattr__(self, "accuracy_kind", self.entry.kind)

    def to_dict(self) -> dict[str, object]:
        e = self.entry
        return {
            "name": e.name,
            "alpha": e.alpha,
            "resolution": e.resolution,
            "options": dict(e.options),
            "backend": self.backend,
            "config": e.config.to_dict(),
            "label": self.label,
            "latency_ms": self.latency_ms,
            "size_mb": self.size_mb,
            "accuracy": self.accuracy,
            "accuracy_source": self.accuracy_source,
            "accuracy_kind": self.accuracy_kind,
            "latency_source": self.latency_source,
            "size_source": self.size_source,
            "latency_spread": _or_none(self.spread),
            "measured": self.measured,
            "predicted_ms": _or_none(self.predicted_ms),
        }

    @property
    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.entry.options)
        return f"{self.entry.name} {self.entry.alpha} @{self.entry.resolution}{extra} on {self.backend}"


def published_entries() -> list[Entry]:
    """Every published configuration with an ImageNet top-1 (`mobilenet.published`): TF-slim's 16 V1 checkpoints
    and the V1 paper's shallow model, TF-slim's 22 V2 and 6 V3 checkpoints. (The V1 paper's other rows are the same
    networks as TF-slim's, from earlier training, within -0.8..+0.9 point: the released checkpoints are what a user
    gets.)"""
    rows = [
        *V1_CHECKPOINTS,
        *(p for p in PUBLISHED if p.name == "mobilenet_v1" and p.options),
        *(p for p in PUBLISHED if p.name != "mobilenet_v1"),
    ]
    return [
        Entry(make_config(p.name, p.alpha, **dict(p.options)), p.resolution, p.top1, f"ImageNet top-1, {p.source}")
        for p in rows
        if p.top1 is not None
    ]


def _accuracy(path: Path, i: int, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise InputError(f"accuracy file {path}, entry {i}: top-1 must be a percentage in [0, 100], got {value!r}")
    return float(value)


def entries_from_file(path: str | os.PathLike) -> list[Entry]:
    """The user's own results: a JSON list of objects with `top1` (or `accuracy`, a percentage) and the model, as
    `config` (a `ModelConfig.to_dict()`, what `mobilenet train` writes into result.json) or as `model` (or `name`),
    `alpha` and optional `options`, `small_input`, `num_classes`, `in_chans`; optional `resolution` and `dataset`
    (default fashion-mnist: its size, channels and classes apply to what is not given). `weights/manifest.json` is
    such a file.

    Raises InputError naming the file and the entry for anything that would rank wrongly: a missing field, a top-1
    outside [0, 100] or not a number (NaN included), a model the library cannot build, or two entries for the same
    configuration.
    """
    path = Path(path)
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"accuracy file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"accuracy file {path} is not JSON ({error})") from None
    except OSError as error:
        raise InputError(f"accuracy file {path} cannot be read ({error.strerror})") from None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"accuracy file {path} must hold a non-empty JSON list of results")
    entries, seen = [], {}
    for i, row in enumerate(rows):
        has_model = isinstance(row, dict) and (
            "config" in row or ("alpha" in row and ("model" in row or "name" in row))
        )
        accuracy = row.get("top1", row.get("accuracy")) if isinstance(row, dict) else None
        if not has_model or accuracy is None:
            raise InputError(
                f"accuracy file {path}, entry {i}: needs 'model', 'alpha' and 'top1' (or 'config' and 'top1'), "
                f"got {row!r}"
            )
        dataset = row.get("dataset", "fashion-mnist")
        if dataset not in DATASETS and "resolution" not in row:
            raise InputError(f"accuracy file {path}, entry {i}: unknown dataset {dataset!r}; give 'resolution'")
        info = DATASETS.get(dataset)
        try:
            resolution = row.get("resolution", info.size if info else BASE_RESOLUTION)
            if isinstance(resolution, bool) or not isinstance(resolution, int) or not 1 <= resolution <= 4096:
                raise InputError(f"resolution must be an integer in 1..4096, got {resolution!r}")
            config = ModelConfig.from_dict(row["config"]) if "config" in row else _legacy_config(row, info, resolution)
            check_resolution(resolve(config), resolution)
            weights = row.get("file")
            if weights is not None and not (path.parent / str(weights)).is_file():
                raise InputError(f"'file' {weights!r} is not a file next to the results file")
            weights = str(path.parent / weights) if weights is not None else None
            source = f"{dataset} top-1, {path.name}"
            entry = Entry(config, resolution, _accuracy(path, i, accuracy), source, MEASURED, weights, dataset)
        except (TypeError, ValueError) as error:
            if str(error).startswith("accuracy file"):
                raise
            raise InputError(f"accuracy file {path}, entry {i}: {error}") from None
        if entry.key() in seen:
            raise InputError(
                f"accuracy file {path}: entries {seen[entry.key()]} and {i} are the same configuration "
                f"({entry.name} alpha={entry.alpha} @{resolution}); keep one"
            )
        seen[entry.key()] = i
        entries.append(entry)
    return entries


def _legacy_config(row: dict[str, object], info, resolution: int) -> ModelConfig:
    """The model of a results row that names it field by field (what `weights/manifest.json` and older files hold)."""
    options = row.get("options") or {}
    if not isinstance(options, dict):
        raise InputError(f"options must be an object, got {options!r}")
    return make_config(
        row.get("model", row.get("name")),
        row["alpha"],
        num_classes=row.get("num_classes", len(info.classes) if info else 1000),
        in_chans=row.get("in_chans", info.channels if info else 3),
        small_input=row.get("small_input", resolution <= 64),
        **options,
    )


def cache_dir() -> Path:
    """`$MOBILENET_CACHE`, else `$XDG_CACHE_HOME/mobilenet`, else `~/.cache/mobilenet`."""
    if os.environ.get("MOBILENET_CACHE"):
        return Path(os.environ["MOBILENET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mobilenet"


_ENTRY_FIELDS = {
    "median_ms": float,
    "p10_ms": float,
    "p90_ms": float,
    "runs": int,
    "spread": float,
    "size_mb": float,
    "measured_at": str,
}


def _valid_entry(value: object) -> bool:
    """Is `value` a cached measurement `sweep` can use (every field, of its type, latencies positive)?"""
    if not isinstance(value, dict):
        return False
    for name, kind in _ENTRY_FIELDS.items():
        field_value = value.get(name)
        if isinstance(field_value, bool) or not isinstance(field_value, (int, float) if kind is float else kind):
            return False
    return all(value[name] > 0 and value[name] != float("inf") for name in ("median_ms", "p10_ms", "p90_ms", "size_mb"))


def _warn(message: str) -> None:
    print(f"mobilenet: warning: {message}", file=sys.stderr)


@dataclass
class LatencyCache:
    """Measured latencies and sizes of one machine, backend and thread count, in one JSON file.

    It is a cache, so nothing in it can stop a sweep: unreadable or malformed content is set aside (renamed to
    `*.corrupt-<time>.json`, one warning naming both files) and its valid entries kept; `save` merges with what
    other processes wrote meanwhile, under a lock, rather than overwriting it; an unwritable folder is one warning,
    and the sweep goes on without storing.
    """

    path: Path
    machine: str
    data: dict[str, dict[str, object]] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)  # keys measured by this process: they win a merge
    writable: bool = True

    @classmethod
    def open(cls, directory: Path, machine: str, backend: str, threads: int, batch: int) -> LatencyCache:
        digest = hashlib.sha1(f"{machine}|{backend}|{threads}|{batch}".encode()).hexdigest()[:12]
        path = Path(directory) / f"latency-{backend}-{threads}t-b{batch}-{digest}.json"
        return cls(path, machine, _read_entries(path, set_aside=True))

    def store(self, key: str, entry: dict[str, object]) -> None:
        """Keep `entry` under `key` and write the cache through to its file."""
        self.data[key] = entry
        self.fresh.add(key)
        self.save()

    def save(self) -> None:
        """Write the entries held, merged under the lock with what the file holds now: an entry this process
        measured replaces the file's; for any other key the file's (perhaps newer) entry stays."""
        if not self.writable:
            return
        try:
            with _locked(self.path):
                merged = _read_entries(self.path, set_aside=False)
                for key, value in self.data.items():
                    if key in self.fresh or key not in merged:
                        merged[key] = value
                self.data = merged
                write_text(self.path, json.dumps({"machine": self.machine, "entries": merged}, indent=1))
        except (OSError, ValueError) as error:  # InputError (a ValueError) from check_output names the path
            self.writable = False
            _warn(f"latency cache {self.path} cannot be written ({error}); measuring without storing")


class _locked:
    """An exclusive advisory lock on `<path>.lock` (fcntl), held across read-merge-write; a no-op without fcntl."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")

    def __enter__(self) -> _locked:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _read_entries(path: Path, set_aside: bool) -> dict[str, dict[str, object]]:
    """The valid entries of the cache file at `path` ({} when there is none). With `set_aside`, a file with anything
    unreadable or malformed is renamed aside with one warning (its valid entries are returned, to be written back)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as error:
        _warn(f"latency cache {path} cannot be read ({error.strerror}); measuring again")
        return {}
    entries: dict[str, dict[str, object]] = {}
    problem = None
    try:
        document = json.loads(raw.decode("utf-8"))
        stored = document.get("entries") if isinstance(document, dict) else None
        if not isinstance(stored, dict):
            problem = "its 'entries' is not an object"
        else:
            entries = {key: value for key, value in stored.items() if _valid_entry(value)}
            if len(entries) < len(stored):
                problem = f"{len(stored) - len(entries)} of its {len(stored)} entries are malformed"
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"it is not JSON ({error})"
    if problem and set_aside:
        aside = path.with_name(f"{path.stem}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}")
        try:
            os.replace(path, aside)
            _warn(f"latency cache {path}: {problem}; set aside as {aside.name}, {len(entries)} valid entries kept")
        except OSError:
            _warn(f"latency cache {path}: {problem}; {len(entries)} valid entries kept")
    return entries


def sweep(
    entries: list[Entry],
    backend: str = "onnx",
    threads: int | None = None,
    cache: LatencyCache | None = None,
    **options,
) -> list[Candidate]:
    """Latency and size of every entry with one backend on this machine: measured in interleaved rounds (and cached in
    `cache`), or predicted by the backend's latency model (`predict=True`). With `refresh`, every entry is measured
    again and replaces its cached figure. Each candidate's accuracy is the one for the backend's precision
    (`accuracy_for`). `options`: `survey`'s."""
    return survey(entries, [backend], threads=threads, caches={backend: cache}, measure_all=True, **options)


def accuracy_for(entry: Entry, backend: str) -> tuple[float | None, str, str]:
    """(top-1, source, kind) of `entry` run by `backend`: a figure published or measured for the backend's precision,
    or (None, why, UNKNOWN). Never a float figure presented as an int8 one."""
    precision = get_backend(backend).precision
    if precision == "fp32":
        return entry.accuracy, entry.accuracy_source, entry.kind
    if precision == "bf16":
        note = (
            "; the float figure: bf16 keeps float accumulation (the committed Fashion-MNIST weights in OpenVINO bf16: "
            "top-1 within 0.01 point of fp32, docs/deploy.md)"
        )
        return entry.accuracy, entry.accuracy_source + note, f"{entry.kind}, carried to bf16"
    if entry.kind == PUBLISHED_FLOAT:
        changed = tuple(sorted(entry.config.changed_options().items()))
        for row in PUBLISHED_INT8:  # the first row of a configuration: TF-slim's lineage, as the float figures are
            if (row.name, row.alpha, row.resolution, tuple(sorted(row.options))) == (
                entry.name,
                entry.alpha,
                entry.resolution,
                changed,
            ):
                return row.top1, f"ImageNet top-1 of the int8 model, {row.source}", f"published int8 ({row.method})"
    return None, "unknown: no int8 figure is published or was measured for this configuration", UNKNOWN


def measured_int8_accuracy(entry: Entry, backend: str, directory: Path) -> tuple[float | None, str, str]:
    """The int8 top-1 of a results file's trained checkpoint in `backend`, measured here: quantized by the library's
    recipe, calibrated on its dataset's training images, evaluated on its test split."""
    model = load(entry.weights)
    train, test = load_dataset(entry.dataset, "train"), load_dataset(entry.dataset, "test")
    path = build_artifact(model, backend, entry.resolution, directory, train)
    top1 = evaluate(load_artifact(path, backend), test, image_size=entry.resolution).top1
    source = f"{entry.dataset} top-1 of the int8 file, measured here ({backend}, {Path(entry.weights).name})"
    return top1, source, MEASURED


MARGIN = 0.25  # a candidate predicted within (1 + MARGIN) x the latency budget may still fit: it is measured
RIVALS = 2  # measured per pass: the most accurate candidates predicted to fit, the pick and its nearest rival


def survey(
    entries: list[Entry],
    backends: list[str],
    latency_ms: float | None = None,
    size_mb: float | None = None,
    threads: int | None = None,
    caches: dict[str, LatencyCache | None] | None = None,
    predict: bool = False,
    progress: bool = True,
    refresh: bool = False,
    measure_all: bool = False,
    models: dict[str, LatencyModel] | None = None,
    model_dir: str | os.PathLike | None = None,
    rounds: int = ROUNDS,
) -> list[Candidate]:
    """Every entry with every backend: its accuracy for the backend's precision, and its latency and size here.

    Every candidate is first predicted by its backend's latency model (`models`, else the one stored in `model_dir`
    for this machine, runtime and thread count, else calibrated now: `mobilenet.bench.timing.latency_models`), or
    read from `caches`. Then what decides the pick is measured, in interleaved rounds: most accurate first, the
    candidates whose weights fit `size_mb` and whose prediction is within `latency_ms` x (1 + `MARGIN`), until
    `RIVALS` of them were predicted to fit; again while a measured candidate turns out over budget or a more
    accurate one could still fit. The rest keep their predictions, marked as such (`measured=False`). With
    `measure_all` (or no budget at all) every candidate is measured; with `predict` none is. `refresh` measures
    again what is measured, replacing the cached figures."""
    threads = threads or torch.get_num_threads()
    caches = caches or {}
    measure_all = not predict and (measure_all or (latency_ms is None and size_mb is None))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, entry in enumerate(entries):
            for backend in backends:
                known = accuracy_for(entry, backend)
                if known[0] is None and entry.weights and not predict:  # the user's model: measure its int8 top-1
                    folder = Path(tmp) / f"{i}-{backend}"
                    folder.mkdir()
                    known = measured_int8_accuracy(entry, backend, folder)
                rows.append((entry, backend, known))
    if models is None and not measure_all:
        models = latency_models(backends, threads, model_dir, progress=progress)
    elif models is None:  # everything is measured: a stored model only adds its predictions beside the figures
        models = stored_models(backends, threads, model_dir)
    out = [_predicted(entry, backend, known, models.get(backend)) for entry, backend, known in rows]
    if predict:
        return out
    for k, (entry, backend, _) in enumerate(rows):
        cache = caches.get(backend)
        cached = cache.data.get(entry.key()) if cache is not None and not refresh else None
        if cached is not None:
            out[k] = _measured(out[k], cached, threads)
    todo = [k for k in range(len(out)) if not out[k].measured] if measure_all else _decisive(out, latency_ms, size_mb)
    done: set[int] = set()
    while todo:
        pairs = [(rows[k][0].config, rows[k][0].resolution, rows[k][1]) for k in todo]
        levels = {b: m.reference_ms for b, m in models.items() if m.reference_ms > 0}
        keys = {(member_key(rows[k][0].config, rows[k][0].resolution), rows[k][1]): k for k in todo}

        def store(backend: str, timed: dict[tuple[str, str], dict[str, object]], keys=keys) -> None:
            for pair, row in timed.items():
                if pair in keys and caches.get(backend) is not None:
                    caches[backend].store(rows[keys[pair]][0].key(), row)

        timed = time_pairs(pairs, threads, rounds=rounds, progress=progress, levels=levels, done=store)
        for pair, k in keys.items():
            out[k] = _measured(out[k], timed[pair], threads)
        done.update(todo)
        todo = [] if measure_all else [k for k in _decisive(out, latency_ms, size_mb) if k not in done]
    return out


def _decisive(found: list[Candidate], latency_ms: float | None, size_mb: float | None) -> list[int]:
    """The indices of the unmeasured candidates that can decide the pick (see `survey`)."""
    fits = [c.accuracy for c in found if c.measured and c.accuracy is not None and _within(c, latency_ms, size_mb)]
    best = max(fits, default=None)
    known = [k for k, c in enumerate(found) if c.accuracy is not None]
    order = sorted(known, key=lambda k: (-found[k].accuracy, found[k].latency_ms))
    chosen, predicted_fits = [], 0
    for k in order:
        c = found[k]
        if best is not None and c.accuracy < best:
            break  # nothing further down can beat a measured fit
        if c.measured or (size_mb is not None and c.size_mb > size_mb):
            continue
        if latency_ms is not None and c.latency_ms > latency_ms * (1 + MARGIN):
            continue
        chosen.append(k)
        predicted_fits += latency_ms is None or c.latency_ms <= latency_ms
        if predicted_fits == RIVALS:
            break
    return chosen


def _within(c: Candidate, latency_ms: float | None, size_mb: float | None) -> bool:
    return (latency_ms is None or c.latency_ms <= latency_ms) and (size_mb is None or c.size_mb <= size_mb)


def stored_model(backend: str, threads: int, directory: str | os.PathLike | None) -> LatencyModel | None:
    """The latency model stored in `directory` for this machine, `backend`'s runtime and `threads`, if any."""
    if directory is None:
        return None
    return load_model(model_path(directory, machine_id(), backend, runtime_version(backend), threads))


def stored_models(
    backends: list[str], threads: int | None, directory: str | os.PathLike | None
) -> dict[str, LatencyModel]:
    """The latency models stored in `directory` for these backends on this machine (those there are)."""
    threads = threads or torch.get_num_threads()
    return {b: m for b in backends if (m := stored_model(b, threads, directory)) is not None}


def _measured(estimate: Candidate, row: dict[str, object], threads: int) -> Candidate:
    """`estimate` with the measured latency and file size of `row` (a cache entry or `time_pairs`' row)."""
    rounds = len(row.get("rounds_ms", ())) or None
    how = f"median of {rounds} interleaved rounds" if rounds else f"median of {row['runs']} calls"
    source = (
        f"measured: {estimate.backend}, {threads} thread(s), batch 1, {how} (p10 {row['p10_ms']:.2f}, "
        f"p90 {row['p90_ms']:.2f} ms), {row['measured_at']}"
    )
    return dataclasses.replace(
        estimate,
        latency_ms=float(row["median_ms"]),
        latency_source=source,
        size_mb=float(row["size_mb"]),
        size_source=f"{estimate.backend} file",
        spread=float(row["spread"]),
        measured=True,
    )


def _predicted(entry: Entry, backend: str, known: tuple[float | None, str, str], model: LatencyModel | None):
    accuracy, source, kind = known
    report = profile(entry.config, resolution=entry.resolution)
    bytes_per_weight = 1 if get_backend(backend).precision == "int8" else 4
    predicted = model.predict(entry.config, entry.resolution) if model is not None else float("nan")
    return Candidate(
        entry,
        predicted,
        f"predicted: {model.describe()}" if model is not None else "not measured, and no latency model",
        report.params_conv_linear * bytes_per_weight / 1e6,
        f"estimated, at least: {bytes_per_weight} byte(s) per conv/linear weight (no file written)",
        backend=backend,
        accuracy=accuracy,
        accuracy_source=source,
        accuracy_kind=kind,
        measured=False,
        predicted_ms=predicted,
    )


def candidates(
    accuracy: str | os.PathLike = "published",
    models: list[str] | None = None,
    backends: list[str] | None = None,
    threads: int | None = None,
    predict: bool = False,
    cache: str | os.PathLike | None = None,
    use_cache: bool = True,
    refresh: bool = False,
    progress: bool = True,
    latency_ms: float | None = None,
    size_mb: float | None = None,
    measure_all: bool = False,
    recalibrate: bool = False,
    device: str | os.PathLike | None = None,
) -> tuple[list[Candidate], dict[str, LatencyCache | None]]:
    """The candidates of a selection, member x backend, and the caches their latencies came from: the entries of
    `accuracy` ("published": the ImageNet tables; else a results file, `entries_from_file`), only those of the
    versions `models` when given, with every backend of `backends` (default: each deployment backend this machine
    supports), surveyed here (`survey`: what decides the pick within `latency_ms` and `size_mb` is measured, the
    rest predicted) with the latency caches and latency models in `cache` (default `cache_dir()`; none stored with
    `use_cache=False`). `recalibrate`: time the calibration members again. `device`: a measurements file from
    another device (`mobilenet calibrate --kit`): every latency is predicted for that device and its backend."""
    entries = published_entries() if accuracy == "published" else entries_from_file(accuracy)
    if models:
        unknown = sorted(set(models) - {e.name for e in entries})
        if unknown:
            raise InputError(f"no candidates named {', '.join(unknown)} in {accuracy}")
        entries = [e for e in entries if e.name in models]
    if device is not None:  # nothing runs here: the device's own latency model predicts every figure
        model = from_measurements(device)
        if backends and list(backends) != [model.backend]:
            raise InputError(f"{device} measured {model.backend}; select for that backend (or omit --backend)")
        found = survey(
            entries,
            [model.backend],
            latency_ms,
            size_mb,
            threads,
            predict=True,
            progress=progress,
            models={model.backend: model},
        )
        return found, {model.backend: None}
    for name in backends or ():
        reason = supported(name)
        if reason:
            raise InputError(f"backend {name}: {reason}")
    backends = list(backends) if backends else deploy_backends()
    threads = threads or torch.get_num_threads()
    caches: dict[str, LatencyCache | None] = dict.fromkeys(backends)
    directory = (Path(cache) if cache else cache_dir()) if use_cache else None
    if directory is not None and not predict:
        caches = {name: LatencyCache.open(directory, machine_id(), name, threads, 1) for name in backends}
    latency = None
    if recalibrate or not (measure_all or (latency_ms is None and size_mb is None)) or predict:
        latency = latency_models(backends, threads, directory, recalibrate=recalibrate, progress=progress)
    found = survey(
        entries,
        backends,
        latency_ms,
        size_mb,
        threads,
        caches=caches,
        predict=predict,
        progress=progress,
        refresh=refresh,
        measure_all=measure_all,
        models=latency,
        model_dir=directory,
    )
    return found, caches


@dataclass(frozen=True)
class Choice:
    pick: Candidate | None
    frontier: list[Candidate]
    candidates: list[Candidate]
    reasons: list[tuple[Candidate, str]]  # the nearest alternatives and why they lost
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "pick": self.pick.to_dict() if self.pick else None,
            "message": self.message,
            "frontier": [c.to_dict() for c in self.frontier],
            "alternatives": [c.to_dict() | {"why_not": why} for c, why in self.reasons],
            "candidates": [c.to_dict() for c in self.candidates],
        }


def pareto_frontier(candidates: list[Candidate]) -> list[Candidate]:
    """Candidates of known accuracy no other beats on both latency and accuracy, fastest first."""
    frontier: list[Candidate] = []
    known = [c for c in candidates if c.accuracy is not None]
    for c in sorted(known, key=lambda c: (c.latency_ms, -c.accuracy)):
        if not frontier or c.accuracy > frontier[-1].accuracy:
            frontier.append(c)
    return frontier


def choose(candidates: list[Candidate], latency_ms: float | None, size_mb: float | None, nearest: int = 3) -> Choice:
    """The most accurate candidate within both budgets (ties: the faster), the frontier, and why others lost.

    Only a candidate of known accuracy is picked, and, when anything was measured, only a measured one: an estimate
    (`measured=False`) is shown, never chosen."""
    if not candidates:
        raise InputError("no candidates to choose from")
    for name, value in (("latency budget", latency_ms), ("size budget", size_mb)):
        if value is not None and not value > 0:
            raise InputError(f"the {name} must be > 0, got {value}")
    any_measured = any(c.measured for c in candidates)

    def over(c: Candidate) -> list[str]:
        why = []
        if latency_ms is not None and c.latency_ms > latency_ms:
            why.append(f"{c.latency_ms:.2f} ms is over the {latency_ms:g} ms budget")
        if size_mb is not None and c.size_mb > size_mb:
            why.append(f"{c.size_mb:.2f} MB is over the {size_mb:g} MB budget")
        if c.accuracy is None:
            why.append("its accuracy at this precision is unknown")
        elif any_measured and not c.measured:
            why.append("not measured (it cannot beat the pick)")
        return why

    def rank(c: Candidate) -> float:
        return -c.accuracy if c.accuracy is not None else float("inf")

    fits = [c for c in candidates if not over(c)]
    frontier = pareto_frontier(candidates)
    if not fits:
        fastest = min(candidates, key=lambda c: c.latency_ms)
        smallest = min(candidates, key=lambda c: c.size_mb)
        message = (
            f"no member meets both budgets: the fastest is {fastest.label} at {fastest.latency_ms:.2f} ms "
            f"({fastest.size_mb:.2f} MB), the smallest {smallest.label} at {smallest.size_mb:.2f} MB "
            f"({smallest.latency_ms:.2f} ms); raise the budgets to at least those, or try a faster "
            f"backend"
        )
        reasons = [(c, "; ".join(over(c))) for c in sorted(candidates, key=rank)[:nearest]]
        return Choice(None, frontier, candidates, reasons, message)
    pick = max(fits, key=lambda c: (c.accuracy, -c.latency_ms))
    reasons = []
    for c in sorted((c for c in candidates if c is not pick), key=rank):
        why = over(c)
        if why:
            reasons.append((c, "; ".join(why)))
        elif c.accuracy < pick.accuracy:
            reasons.append((c, f"fits, but {c.accuracy:.1f}% < {pick.accuracy:.1f}%"))
        else:
            reasons.append((c, f"as accurate, but slower ({c.latency_ms:.2f} ms)"))
        if len(reasons) == nearest:
            break
    message = (
        f"pick: {pick.label}: {pick.accuracy:.1f}% ({pick.accuracy_kind}: {pick.accuracy_source}), "
        f"{pick.latency_ms:.2f} ms, {pick.size_mb:.2f} MB"
    )
    return Choice(pick, frontier, candidates, reasons, message)


def prediction_quality(measured: list[float], predicted: list[float]) -> dict[str, float]:
    """How well predicted latencies order and size the measured ones: Spearman's rank correlation, and the median
    of |predicted / measured - 1| and of predicted / measured."""
    if len(measured) != len(predicted) or len(measured) < 2:
        raise InputError("need two equally long lists of at least two latencies")
    from scipy.stats import spearmanr  # here, not at the top: its import costs every select 1.5 s

    ratios = [p / m for m, p in zip(measured, predicted, strict=True)]
    return {
        "spearman": float(spearmanr(measured, predicted).statistic),
        "median_abs_error": statistics.median(abs(r - 1) for r in ratios),
        "median_ratio": statistics.median(ratios),
    }


def write_pick(pick: Candidate, directory: str | os.PathLike) -> Path:
    """The pick's ready-to-run file in `directory`, with its metadata: built from the trained checkpoint its results
    file names (int8 calibrated on that dataset's training images), for the pick's backend."""
    if not pick.entry.weights:
        raise InputError(
            f"{pick.label} is a published configuration, and no pretrained weights can be fetched here: train it "
            f"(`mobilenet train --model {pick.entry.name} --alpha {pick.entry.alpha}`) and select among your own "
            f"results (--accuracy RESULTS.json naming each checkpoint as 'file', like weights/manifest.json)"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train = load_dataset(pick.entry.dataset, "train") if get_backend(pick.backend).precision == "int8" else None
    with tempfile.TemporaryDirectory() as tmp:
        weights = pick.entry.weights
        built = build_artifact(load(weights), pick.backend, pick.entry.resolution, tmp, train, checkpoint=weights)
        target = directory / f"{Path(pick.entry.weights).stem}.{pick.backend}{built.suffix}"
        return atomic_write(target, lambda out: shutil.copyfile(built, out))
