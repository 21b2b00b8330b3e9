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
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mobilenet._io import InputError, write_text
from mobilenet.bench.latency import make_runner, time_calls
from mobilenet.cost import profile
from mobilenet.cost.roofline import machine_id, probe, roofline
from mobilenet.data.catalog import DATASETS
from mobilenet.model import build
from mobilenet.published import PUBLISHED, V1_CHECKPOINTS
from mobilenet.resolve import ModelConfig, check_resolution, make_config, resolve
from mobilenet.specs import BASE_RESOLUTION
from mobilenet.weights import save


@dataclass(frozen=True)
class Entry:
    """One configuration to consider: the model (its `ModelConfig`), the input side, and its accuracy (percent top-1)
    with where that figure comes from."""

    config: ModelConfig
    resolution: int
    accuracy: float
    accuracy_source: str

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
        return (f"{c.name}|a={c.alpha}|r={self.resolution}|{options}|c={c.in_chans}|k={c.num_classes}"
                f"|small={c.small_input}")  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    entry: Entry
    latency_ms: float
    latency_source: str  # "measured: onnx, 2 threads, p10-p90 ..." or "predicted: roofline ..."
    size_mb: float
    size_source: str
    spread: float = float("nan")  # p90 / p10 of a measured latency (see mobilenet.bench.latency.NOISY_SPREAD)

    def to_dict(self) -> dict[str, object]:
        e = self.entry
        return {"name": e.name, "alpha": e.alpha, "resolution": e.resolution, "options": dict(e.options),
                "config": e.config.to_dict(), "label": self.label,
                "latency_ms": self.latency_ms, "size_mb": self.size_mb, "accuracy": e.accuracy,
                "accuracy_source": e.accuracy_source, "latency_source": self.latency_source,
                "size_source": self.size_source, "latency_spread": self.spread}  # fmt: skip

    @property
    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.entry.options)
        return f"{self.entry.name} {self.entry.alpha} @{self.entry.resolution}{extra}"


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
            entry = Entry(config, resolution, _accuracy(path, i, accuracy), f"{dataset} top-1, {path.name}")
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
    batch: int = 1,
    cache: LatencyCache | None = None,
    predict: bool = False,
    progress: bool = True,
    min_time_s: float = 0.5,
    hardware=None,
    refresh: bool = False,
) -> list[Candidate]:
    """Latency and size of every entry on this machine: measured (and cached), or predicted by the roofline on
    `hardware` (a `HardwareProfile`; probed here when not given). With `refresh`, every entry is measured again and
    replaces its cached figure one at a time: an interrupted refresh keeps the older figures it did not reach."""
    threads = threads or torch.get_num_threads()
    if predict and hardware is None:
        hardware = probe(threads)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(entries), desc=f"{'predicting' if predict else 'measuring'} ({backend})", unit="model",
                   file=sys.stderr, dynamic_ncols=True)  # fmt: skip
    out: list[Candidate] = []
    if backend.startswith("onnx-int8"):  # the tables' figures are for the float models; quantization's is not in them
        note = "; the fp32 model's figure (int8 lost <= 0.07 point on our Fashion-MNIST models: docs/quantization.md)"
        entries = [dataclasses.replace(e, accuracy_source=e.accuracy_source + note) for e in entries]
    try:
        for entry in entries:
            if bar is not None:
                bar.set_postfix_str(f"{entry.name} {entry.alpha} @{entry.resolution}", refresh=True)
            if predict:
                out.append(_predicted(entry, hardware, backend))
            else:
                cached = cache.data.get(entry.key()) if cache is not None and not refresh else None
                if cached is None:
                    model = build(entry.config).eval()
                    with tempfile.TemporaryDirectory() as tmp:
                        run, facts = make_runner(model, backend, entry.resolution, batch, threads, workdir=tmp)
                        timing = time_calls(run, batch=batch, min_time_s=min_time_s)
                        size = _file_size_mb(model, Path(tmp), facts)
                    cached = timing.to_dict() | {"size_mb": size, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
                    if cache is not None:  # after every model: an interrupted sweep keeps what it measured
                        cache.store(entry.key(), cached)
                spread = f"p10 {cached['p10_ms']:.2f}, p90 {cached['p90_ms']:.2f} ms"
                source = (f"measured: {backend}, {threads} thread(s), batch {batch}, median of {cached['runs']} "
                          f"({spread}), {cached['measured_at']}")  # fmt: skip
                out.append(Candidate(entry, cached["median_ms"], source, cached["size_mb"], f"{backend} file",
                                     cached["spread"]))  # fmt: skip
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return out


def _predicted(entry: Entry, hardware, backend: str) -> Candidate:
    report = profile(entry.config, resolution=entry.resolution)
    predicted = roofline(report, hardware).predicted_ms
    bytes_per_weight = 1 if backend.startswith("onnx-int8") else 4
    return Candidate(
        entry,
        predicted,
        f"predicted: roofline, fp32, {hardware.peak_macs_per_s / 1e9:.0f} GMAC/s, "
        f"{hardware.bandwidth_bytes_per_s / 1e9:.0f} GB/s (not measured)",
        report.params * bytes_per_weight / 1e6,
        f"estimated: {bytes_per_weight} byte(s) per parameter (no file written)",
    )


def candidates(
    accuracy: str | os.PathLike = "published",
    models: list[str] | None = None,
    backend: str = "onnx",
    threads: int | None = None,
    predict: bool = False,
    cache: str | os.PathLike | None = None,
    use_cache: bool = True,
    refresh: bool = False,
    progress: bool = True,
    hardware=None,
) -> tuple[list[Candidate], LatencyCache | None]:
    """The candidates of a selection and the cache their latencies came from: the entries of `accuracy`
    ("published": the ImageNet tables; else a results file, `entries_from_file`), only those of the versions
    `models` when given, swept on this machine (`sweep`) with the latency cache in `cache` (default `cache_dir()`;
    none with `use_cache=False` or `predict`)."""
    entries = published_entries() if accuracy == "published" else entries_from_file(accuracy)
    if models:
        unknown = sorted(set(models) - {e.name for e in entries})
        if unknown:
            raise InputError(f"no candidates named {', '.join(unknown)} in {accuracy}")
        entries = [e for e in entries if e.name in models]
    latency_cache = None
    if use_cache and not predict:
        directory = Path(cache) if cache else cache_dir()
        latency_cache = LatencyCache.open(directory, machine_id(), backend, threads or torch.get_num_threads(), 1)
    found = sweep(entries, backend, threads, cache=latency_cache, predict=predict, hardware=hardware,
                  progress=progress, refresh=refresh)  # fmt: skip
    return found, latency_cache


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
    """Candidates no other beats on both latency and accuracy, fastest first."""
    frontier: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: (c.latency_ms, -c.entry.accuracy)):
        if not frontier or c.entry.accuracy > frontier[-1].entry.accuracy:
            frontier.append(c)
    return frontier


def choose(candidates: list[Candidate], latency_ms: float | None, size_mb: float | None, nearest: int = 3) -> Choice:
    """The most accurate candidate within both budgets (ties: the faster), the frontier, and why others lost."""
    if not candidates:
        raise InputError("no candidates to choose from")
    for name, value in (("latency budget", latency_ms), ("size budget", size_mb)):
        if value is not None and not value > 0:
            raise InputError(f"the {name} must be > 0, got {value}")

    def over(c: Candidate) -> list[str]:
        why = []
        if latency_ms is not None and c.latency_ms > latency_ms:
            why.append(f"{c.latency_ms:.2f} ms is over the {latency_ms:g} ms budget")
        if size_mb is not None and c.size_mb > size_mb:
            why.append(f"{c.size_mb:.2f} MB is over the {size_mb:g} MB budget")
        return why

    fits = [c for c in candidates if not over(c)]
    frontier = pareto_frontier(candidates)
    if not fits:
        fastest = min(candidates, key=lambda c: c.latency_ms)
        smallest = min(candidates, key=lambda c: c.size_mb)
        message = (f"no member meets both budgets: the fastest is {fastest.label} at {fastest.latency_ms:.2f} ms "
                   f"({fastest.size_mb:.2f} MB), the smallest {smallest.label} at {smallest.size_mb:.2f} MB "
                   f"({smallest.latency_ms:.2f} ms); raise the budgets to at least those, or try a faster "
                   f"backend")  # fmt: skip
        reasons = [(c, "; ".join(over(c))) for c in sorted(candidates, key=lambda c: -c.entry.accuracy)[:nearest]]
        return Choice(None, frontier, candidates, reasons, message)
    pick = max(fits, key=lambda c: (c.entry.accuracy, -c.latency_ms))
    reasons = []
    for c in sorted((c for c in candidates if c is not pick), key=lambda c: -c.entry.accuracy):
        why = over(c)
        if why:
            reasons.append((c, "; ".join(why)))
        elif c.entry.accuracy < pick.entry.accuracy:
            reasons.append((c, f"fits, but {c.entry.accuracy:.1f}% < {pick.entry.accuracy:.1f}%"))
        else:
            reasons.append((c, f"as accurate, but slower ({c.latency_ms:.2f} ms)"))
        if len(reasons) == nearest:
            break
    message = (f"pick: {pick.label}: {pick.entry.accuracy:.1f}% ({pick.entry.accuracy_source}), "
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
