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
from mobilenet.bench.latency import make_runner, time_calls
from mobilenet.cost import profile
from mobilenet.cost.roofline import machine_id, probe, roofline
from mobilenet.data.catalog import DATASETS
from mobilenet.data.datasets import load_dataset
from mobilenet.deploy.artifacts import build_artifact, load_artifact
from mobilenet.deploy.backends import deploy_backends, get_backend, supported
from mobilenet.model import build
from mobilenet.published import PUBLISHED, PUBLISHED_INT8, V1_CHECKPOINTS
from mobilenet.resolve import ModelConfig, check_resolution, make_config, resolve
from mobilenet.specs import BASE_RESOLUTION
from mobilenet.train.evaluation import evaluate
from mobilenet.weights import load, save

PUBLISHED_FLOAT = "published float"
MEASURED = "measured on your data"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Entry:
    """One configuration to consider: the model (its `ModelConfig`), the input side, and its accuracy (percent top-1)
    with where that figure comes from."""

    config: ModelConfig
    resolution: int
    accuracy: float
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


@dataclass(frozen=True)
class Candidate:
    """A configuration run by one backend: its latency and size here, and its accuracy for that backend's
    precision (None: unknown, never picked). `measured`: the latency was timed and the size is the file's; otherwise
    both are estimates (the roofline's time, the weights' bytes), shown but not picked while anything was measured."""

    entry: Entry
    latency_ms: float
    latency_source: str  # "measured: onnx, 2 threads, p10-p90 ..." or "predicted: roofline ..."
    size_mb: float
    size_source: str
    spread: float = float("nan")  # p90 / p10 of a measured latency (see mobilenet.bench.latency.NOISY_SPREAD)
    backend: str = "onnx"
    accuracy: float | None = None
    accuracy_source: str = ""
    accuracy_kind: str = ""  # empty: the entry's own figure
    measured: bool = True

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
            "latency_spread": self.spread,
            "measured": self.measured,
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
    rows = [*V1_CHECKPOINTS, *(p for p in PUBLISHED if p.name == "mobilenet_v1" and p.options),
            *(p for p in PUBLISHED if p.name != "mobilenet_v1")]  # fmt: skip
    return [Entry(make_config(p.name, p.alpha, **dict(p.options)), p.resolution, p.top1, f"ImageNet top-1, {p.source}")
            for p in rows if p.top1 is not None]  # fmt: skip


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


def _file_size_mb(model, workdir: Path, facts: dict[str, object]) -> float:
    if "size_mb" in facts:
        return float(facts["size_mb"])
    path = save(model, workdir / "model.safetensors")
    return path.stat().st_size / 1e6


def sweep(
    entries: list[Entry],
    backend: str = "onnx",
    threads: int | None = None,
    cache: LatencyCache | None = None,
    **options,
) -> list[Candidate]:
    """Latency and size of every entry with one backend on this machine: measured (and cached in `cache`), or
    predicted by the roofline (`predict=True`, on `hardware`: a `HardwareProfile`, probed when not given). With
    `refresh`, every entry is measured again and replaces its cached figure one at a time: an interrupted refresh
    keeps the older figures it did not reach. Each candidate's accuracy is the one for the backend's precision
    (`accuracy_for`). `options`: `survey`'s `batch`, `predict`, `progress`, `min_time_s`, `hardware`, `refresh`."""
    return survey(entries, [backend], threads=threads, caches={backend: cache}, measure_all=True, **options)


def accuracy_for(entry: Entry, backend: str) -> tuple[float | None, str, str]:
    """(top-1, source, kind) of `entry` run by `backend`: a figure published or measured for the backend's precision,
    or (None, why, UNKNOWN). Never a float figure presented as an int8 one."""
    precision = get_backend(backend).precision
    if precision == "fp32":
        return entry.accuracy, entry.accuracy_source, entry.kind
    if precision == "bf16":
        note = "; the float figure: bf16 keeps float accumulation (not measured in bf16 on this machine)"
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


def survey(
    entries: list[Entry],
    backends: list[str],
    latency_ms: float | None = None,
    size_mb: float | None = None,
    threads: int | None = None,
    batch: int = 1,
    caches: dict[str, LatencyCache | None] | None = None,
    predict: bool = False,
    progress: bool = True,
    min_time_s: float = 0.5,
    hardware=None,
    refresh: bool = False,
    measure_all: bool = False,
) -> list[Candidate]:
    """Every entry with every backend: its accuracy for the backend's precision, and its latency and size here.

    What decides the pick is measured, the rest predicted: candidates are taken most accurate first; one whose size
    cannot fit (its weights alone, at the backend's bytes per weight, exceed `size_mb`) or whose accuracy is below
    that of a candidate already measured within both budgets is not built or timed, and keeps the roofline's
    latency and the weights' size, marked as estimates (`measured=False`). With `measure_all` (or no budget at all)
    every candidate is measured; with `predict` none is. Measured figures are cached per backend in `caches`."""
    threads = threads or torch.get_num_threads()
    caches = caches or {}
    if hardware is None:
        hardware = probe(threads)
    measure_all = measure_all or (latency_ms is None and size_mb is None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, entry in enumerate(entries):
            for backend in backends:
                known = accuracy_for(entry, backend)
                if known[0] is None and entry.weights and not predict:  # the user's model: measure its int8 top-1
                    (Path(tmp) / str(i)).mkdir(exist_ok=True)  # the files its timing reuses
                    known = measured_int8_accuracy(entry, backend, Path(tmp) / str(i))
                rows.append((entry, backend, known))
        order = list(range(len(rows)))  # measuring everything: in the order given
        if not measure_all:  # most accurate first, so that what cannot beat a measured fit is not measured
            order.sort(key=lambda k: -(rows[k][2][0] if rows[k][2][0] is not None else -1))
        bar = None
        if progress and not predict:
            from tqdm import tqdm

            bar = tqdm(total=len(rows), desc=f"measuring ({', '.join(backends)})", unit="candidate",
                       file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        out: dict[int, Candidate] = {}
        best = None  # the accuracy of the best candidate measured within both budgets
        try:
            for k in order:
                entry, backend, (accuracy, source, kind) = rows[k]
                estimate = _predicted(entry, hardware, backend, accuracy, source, kind)
                why_not = _not_decisive(estimate, accuracy, best, size_mb)
                if predict or (why_not and not measure_all):
                    note = "" if predict else f"; not measured: {why_not}"
                    out[k] = dataclasses.replace(estimate, latency_source=estimate.latency_source + note)
                else:
                    if bar is not None:
                        bar.set_postfix_str(f"{entry.name} {entry.alpha} @{entry.resolution} {backend}", refresh=True)
                    out[k] = _measured(
                        entry,
                        backend,
                        accuracy,
                        source,
                        kind,
                        caches.get(backend),
                        threads,
                        batch,
                        min_time_s,
                        refresh,
                        Path(tmp) / str(entries.index(entry)),
                    )
                    fits = (latency_ms is None or out[k].latency_ms <= latency_ms) and (
                        size_mb is None or out[k].size_mb <= size_mb
                    )
                    if fits and accuracy is not None:
                        best = accuracy if best is None else max(best, accuracy)
                if bar is not None:
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
    return [out[k] for k in range(len(rows))]


def _not_decisive(estimate: Candidate, accuracy: float | None, best: float | None, size_mb: float | None) -> str:
    """Why measuring this candidate cannot change the pick ("" when it can)."""
    if accuracy is None:
        return "its accuracy at this precision is unknown"
    if best is not None and accuracy < best:
        return f"{accuracy:.1f}% is below a measured candidate within budget ({best:.1f}%)"
    if size_mb is not None and estimate.size_mb > size_mb:
        return f"its weights alone take {estimate.size_mb:.2f} MB, over the {size_mb:g} MB budget"
    return ""


def _measured(entry, backend, accuracy, source, kind, cache, threads, batch, min_time_s, refresh, directory):
    cached = cache.data.get(entry.key()) if cache is not None and not refresh else None
    if cached is None:
        directory.mkdir(exist_ok=True)  # one folder per entry: its backends share the exported files
        model = build(entry.config).eval()
        run, facts = make_runner(model, backend, entry.resolution, batch, threads, workdir=str(directory))
        timing = time_calls(run, batch=batch, min_time_s=min_time_s)
        size = _file_size_mb(model, directory, facts)
        cached = timing.to_dict() | {"size_mb": size, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
        if cache is not None:  # after every model: an interrupted sweep keeps what it measured
            cache.store(entry.key(), cached)
    spread = f"p10 {cached['p10_ms']:.2f}, p90 {cached['p90_ms']:.2f} ms"
    latency_source = (f"measured: {backend}, {threads} thread(s), batch {batch}, median of {cached['runs']} "
                      f"({spread}), {cached['measured_at']}")  # fmt: skip
    return Candidate(
        entry,
        cached["median_ms"],
        latency_source,
        cached["size_mb"],
        f"{backend} file",
        cached["spread"],
        backend,
        accuracy,
        source,
        kind,
    )


def _predicted(entry: Entry, hardware, backend: str, accuracy=None, source="", kind="") -> Candidate:
    report = profile(entry.config, resolution=entry.resolution)
    predicted = roofline(report, hardware).predicted_ms
    bytes_per_weight = 1 if get_backend(backend).precision == "int8" else 4
    if not kind:
        accuracy, source, kind = accuracy_for(entry, backend)
    return Candidate(
        entry,
        predicted,
        f"predicted: roofline, fp32, {hardware.peak_macs_per_s / 1e9:.0f} GMAC/s, "
        f"{hardware.bandwidth_bytes_per_s / 1e9:.0f} GB/s (not measured)",
        report.params_conv_linear * bytes_per_weight / 1e6,
        f"estimated, at least: {bytes_per_weight} byte(s) per conv/linear weight (no file written)",
        backend=backend,
        accuracy=accuracy,
        accuracy_source=source,
        accuracy_kind=kind,
        measured=False,
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
    hardware=None,
    latency_ms: float | None = None,
    size_mb: float | None = None,
    measure_all: bool = False,
) -> tuple[list[Candidate], dict[str, LatencyCache | None]]:
    """The candidates of a selection, member x backend, and the caches their latencies came from: the entries of
    `accuracy` ("published": the ImageNet tables; else a results file, `entries_from_file`), only those of the
    versions `models` when given, with every backend of `backends` (default: each deployment backend this machine
    supports), surveyed here (`survey`: what decides the pick within `latency_ms` and `size_mb` is measured) with
    the latency caches in `cache` (default `cache_dir()`; none with `use_cache=False` or `predict`)."""
    entries = published_entries() if accuracy == "published" else entries_from_file(accuracy)
    if models:
        unknown = sorted(set(models) - {e.name for e in entries})
        if unknown:
            raise InputError(f"no candidates named {', '.join(unknown)} in {accuracy}")
        entries = [e for e in entries if e.name in models]
    for name in backends or ():
        reason = supported(name)
        if reason:
            raise InputError(f"backend {name}: {reason}")
    backends = list(backends) if backends else deploy_backends()
    threads = threads or torch.get_num_threads()
    caches: dict[str, LatencyCache | None] = dict.fromkeys(backends)
    if use_cache and not predict:
        directory = Path(cache) if cache else cache_dir()
        caches = {name: LatencyCache.open(directory, machine_id(), name, threads, 1) for name in backends}
    found = survey(
        entries,
        backends,
        latency_ms,
        size_mb,
        threads,
        caches=caches,
        predict=predict,
        hardware=hardware,
        progress=progress,
        refresh=refresh,
        measure_all=measure_all,
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
        return {"pick": self.pick.to_dict() if self.pick else None, "message": self.message,
                "frontier": [c.to_dict() for c in self.frontier],
                "alternatives": [c.to_dict() | {"why_not": why} for c, why in self.reasons],
                "candidates": [c.to_dict() for c in self.candidates]}  # fmt: skip


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
        message = (f"no member meets both budgets: the fastest is {fastest.label} at {fastest.latency_ms:.2f} ms "
                   f"({fastest.size_mb:.2f} MB), the smallest {smallest.label} at {smallest.size_mb:.2f} MB "
                   f"({smallest.latency_ms:.2f} ms); raise the budgets to at least those, or try a faster "
                   f"backend")  # fmt: skip
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
    message = (f"pick: {pick.label}: {pick.accuracy:.1f}% ({pick.accuracy_kind}: {pick.accuracy_source}), "
               f"{pick.latency_ms:.2f} ms, {pick.size_mb:.2f} MB")  # fmt: skip
    return Choice(pick, frontier, candidates, reasons, message)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):  # ties share their mean rank
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def prediction_quality(measured: list[float], predicted: list[float]) -> dict[str, float]:
    """How well predicted latencies order and size the measured ones: Spearman's rank correlation, and the median
    of |predicted / measured - 1| and of predicted / measured."""
    if len(measured) != len(predicted) or len(measured) < 2:
        raise InputError("need two equally long lists of at least two latencies")
    rm, rp = _ranks(measured), _ranks(predicted)
    mean = (len(rm) - 1) / 2
    cov = sum((a - mean) * (b - mean) for a, b in zip(rm, rp, strict=True))
    var = (sum((a - mean) ** 2 for a in rm) * sum((b - mean) ** 2 for b in rp)) ** 0.5
    ratios = [p / m for m, p in zip(measured, predicted, strict=True)]
    return {"spearman": cov / var if var else float("nan"),
            "median_abs_error": statistics.median(abs(r - 1) for r in ratios),
            "median_ratio": statistics.median(ratios)}  # fmt: skip


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
