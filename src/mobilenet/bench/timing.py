"""Timing many (member, backend) pairs in one sweep, and calibrating the latency models from one.

Each member's files are built once, in a folder of their own, and shared by its backends (the fp32 file serves ONNX
Runtime and OpenVINO; the portable int8 file ONNX Runtime and OpenVINO int8). They are exported with the fast
exporter and int8 files calibrated on random images: only speed and size are measured here, and neither depends on
the exporter (the same runtime graph) or on the quantization scales. One backend's files are loaded at a time and
timed in interleaved rounds (`mobilenet.bench.runner.time_rounds`) with the reference member, the first calibration
member, in every round; each pair's row keeps its per-round figures.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from mobilenet._io import InputError, write_text
from mobilenet.bench import runner
from mobilenet.bench.latency import make_runner
from mobilenet.bench.latency_model import (
    LatencyModel,
    calibration_members,
    fit,
    load_model,
    member_key,
    model_path,
    store_model,
)
from mobilenet.bench.runner import CALIBRATION_PRECISION, KIT_FILE, PRECISION, ROUNDS, RUNTIMES, time_rounds
from mobilenet.bench.runner import FORMAT as KIT_FORMAT
from mobilenet.cost.roofline import machine_id
from mobilenet.deploy.artifacts import FILES, build_artifact
from mobilenet.deploy.backends import get_backend, runtime_version
from mobilenet.model import build
from mobilenet.resolve import ModelConfig

Pair = tuple[ModelConfig, int, str]  # (config, resolution, backend)


def time_pairs(
    pairs: list[Pair],
    threads: int,
    workdir: str | Path | None = None,
    rounds: int = ROUNDS,
    progress: bool = True,
    levels: dict[str, float] | None = None,
    precision: float = PRECISION,
    done: Callable[[str, dict[tuple[str, str], dict[str, object]]], None] | None = None,
) -> dict[tuple[str, str], dict[str, object]]:
    """Time every (config, resolution, backend) of `pairs` on this machine with `threads` threads, interleaved, one
    backend's pairs together, each against the reference member (`time_rounds`, re-timing members not yet known to
    `precision`; figures scaled to `levels[backend]`, the reference's calibrated median, where given). Returns, per
    (`member_key`, backend), `time_rounds`' row plus `size_mb` (the file the backend runs), `reference` (the
    reference member's key) and `measured_at`; the reference's own row is among them. `done(backend, rows)` is called
    as each backend's sweep ends (to store its figures: an interrupted sweep keeps the backends it finished). Files
    are built into `workdir` (default: this process's folder, `_files`), a folder per member, and reused where
    already there."""
    reference = calibration_members()[0]
    members: dict[str, tuple[ModelConfig, int]] = {member_key(*reference): reference}
    backends: dict[str, list[str]] = {}
    for config, resolution, backend in pairs:
        key = member_key(config, resolution)
        members.setdefault(key, (config, resolution))
        backends.setdefault(backend, [])
        if key not in backends[backend]:
            backends[backend].append(key)
    folders = {key: hashlib.sha1(key.encode()).hexdigest()[:12] for key in members}
    reference_key = member_key(*reference)
    out: dict[tuple[str, str], dict[str, object]] = {}
    bar = _bar(sum(len(keys) + 1 for keys in backends.values()), progress)
    root = Path(workdir) if workdir is not None else _files()
    try:
        wanted = {key: [b for b, keys in backends.items() if key in keys or key == reference_key] for key in members}

        def built(n: int) -> None:
            if bar is not None:
                bar.set_postfix_str(f"exported and quantized {n}/{len(members)} members", refresh=True)

        built(0)
        _build_all({root / folders[key]: (*members[key], wanted[key]) for key in members}, built)
        for backend, keys in backends.items():
            order = [reference_key, *(k for k in keys if k != reference_key)]
            if backend in RUNTIMES:  # an ONNX file: timed by the runner, in a process of its own
                rows, sizes = _time_in_runner(root, backend, order, members, folders, threads, rounds, precision, bar)
                level = (levels or {}).get(backend)
                if level is not None:  # to the reference's calibrated level, as `time_rounds(level_ms=...)` does
                    factor = level / rows[reference_key]["median_ms"]
                    for key in order:
                        for name in ("median_ms", "p10_ms", "p90_ms"):
                            rows[key][name] *= factor
            else:
                rows, sizes = _time_here(
                    backend, order, members, root, folders, threads, rounds, precision, levels, bar
                )
            stamp = time.strftime("%Y-%m-%d %H:%M")
            facts = {"reference": reference_key, "measured_at": stamp}
            finished = {(key, backend): rows[key] | facts | {"size_mb": sizes[key]} for key in order}
            out.update(finished)
            if done is not None:
                done(backend, finished)
    finally:
        if bar is not None:
            bar.close()
    return out


_FILES: list[tempfile.TemporaryDirectory] = []


def _files() -> Path:
    """The folder of this process's sweeps' files (removed at exit), one folder per member: a member one sweep built
    is not built again by the next (the reference, timed in every sweep: 3.5 s when `select` calibrates first)."""
    if not _FILES:
        _FILES.append(tempfile.TemporaryDirectory(prefix="mobilenet-sweep-"))
    return Path(_FILES[0].name)


def _time_here(backend, order, members, root, folders, threads, rounds, precision, levels, bar):
    """Time the pairs of a backend the runner does not know (PyTorch's, the portable int8 file in ONNX Runtime) in
    this process."""
    runners, sizes = {}, {}
    for key in order:
        config, resolution = members[key]
        if bar is not None:
            bar.set_postfix_str(f"building {config.name} {config.alpha} @{resolution} {backend}", refresh=True)
        folder = root / folders[key]
        folder.mkdir(parents=True, exist_ok=True)
        run, facts = make_runner(build(config), backend, resolution, 1, threads, str(folder), "torchscript")
        runners[key], sizes[key] = run, facts["size_mb"]
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.set_postfix_str(f"timing {len(runners)} on {backend}", refresh=True)
    level = (levels or {}).get(backend)
    return time_rounds(runners, order[0], rounds=rounds, precision=precision, level_ms=level), sizes


def _time_in_runner(root, backend, order, members, folders, threads, rounds, precision, bar):
    """Time a backend's ONNX files with `mobilenet.bench.runner` in a child process (the one that calibration kits
    run on devices): a manifest in `root` names the members' folders, the child writes the measurements file. Its
    own process lets ONNX Runtime give all the sweep's sessions one thread pool (`runner._share_threads`)."""
    artifact = FILES[get_backend(backend).artifact]
    manifest = root / f"sweep-{backend}.json"
    listed = [(*members[key], folders[key]) for key in order]
    manifest.write_text(json.dumps(_manifest("mobilenet latency sweep", {backend: artifact}, listed)), encoding="utf-8")
    out = root / f"measured-{backend}.json"
    command = [sys.executable, "-m", runner.__name__, str(manifest), "--backend", backend, "--threads", str(threads)]
    command += ["--rounds", str(rounds), "--precision", str(precision), "--device", "this machine", "--out", str(out)]
    log: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as child:
        try:
            for line in child.stderr:
                log.append(line.rstrip())
                if bar is not None and line.startswith("loaded "):
                    bar.set_postfix_str(f"loaded {line.split(': ', 1)[-1].strip()} in {backend}", refresh=False)
                    bar.update()
                elif bar is not None and line.startswith(("timing ", "round ")):
                    bar.set_postfix_str(f"{backend}: {line.strip()}", refresh=True)
        except BaseException:  # interrupted: stop the child too
            child.kill()
            raise
    if child.returncode != 0:
        raise RuntimeError(f"timing {backend} failed (exit {child.returncode}):\n" + "\n".join(log[-15:]))
    rows = json.loads(out.read_text(encoding="utf-8"))["members"]
    sizes = {key: (root / folders[key] / artifact).stat().st_size / 1e6 for key in order}
    return rows, sizes


def _manifest(kind: str, artifacts: dict[str, str], rows: list[tuple[ModelConfig, int, str]]) -> dict[str, object]:
    """The manifest `mobilenet.bench.runner` reads: each (config, resolution, folder) of `rows`, the first the
    reference, and the file each backend of `artifacts` runs in a folder."""
    members = [
        {
            "key": member_key(config, resolution),
            "label": f"{config.name} {config.alpha} @{resolution}",
            "config": config.to_dict(),
            "resolution": resolution,
            "folder": folder,
        }
        for config, resolution, folder in rows
    ]
    return {
        "format": KIT_FORMAT,
        "kind": kind,
        "reference": members[0]["key"],
        "artifacts": artifacts,
        "members": members,
    }


def _build_files(folder: Path, config: ModelConfig, resolution: int, backends: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model = build(config).eval()
    for backend in backends:
        build_artifact(model, backend, resolution, folder, exporter="torchscript")


def _build_all(
    jobs: dict[Path, tuple[ModelConfig, int, list[str]]],
    built: Callable[[int], None] | None = None,
    worker_threads: int | None = None,
) -> None:
    """Build the files of every folder of `jobs`, on two processes where the machine has two cores: exporting and
    quantizing are mostly single-threaded Python, and half a sweep's cost. The workers are spawned, not forked: a
    process that already ran PyTorch's OpenMP threads cannot fork safely. Each runs PyTorch on `worker_threads`
    (default: its half of the cores), not on every core: two workers of two threads each on two cores lost a fifth of
    the build to switching between them (`benchmarks/bench_build.py`). `built(n)` is called as the n-th is done."""
    if len(jobs) < 4 or (os.cpu_count() or 1) < 2:
        for n, (folder, job) in enumerate(jobs.items(), 1):
            _build_files(folder, *job)
            if built is not None:
                built(n)
        return
    with _build_pool(worker_threads) as pool:
        futures = [pool.submit(_build_files, folder, *job) for folder, job in jobs.items()]
        for n, future in enumerate(as_completed(futures), 1):
            future.result()
            if built is not None:
                built(n)


def _build_pool(worker_threads: int | None = None) -> ProcessPoolExecutor:
    """Two spawned workers, each running PyTorch on `worker_threads` (default: half the cores)."""
    threads = worker_threads or max(1, (os.cpu_count() or 2) // 2)
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(2, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,))


def _bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="timing", unit="file", file=sys.stderr, dynamic_ncols=True)


def calibrate(
    backends: list[str],
    threads: int,
    directory: str | Path | None = None,
    progress: bool = True,
    workdir: str | Path | None = None,
    rounds: int = ROUNDS,
    precision: float = CALIBRATION_PRECISION,
) -> dict[str, LatencyModel]:
    """Time the calibration members with every backend of `backends` (their files built in `workdir`, `time_pairs`
    with `rounds` and `precision`: by default `rounds` and no more) and fit each backend's latency model, stored in
    `directory` when given."""
    members = calibration_members()
    started = time.perf_counter()
    pairs = [(c, r, b) for b in backends for c, r in members]
    rows = time_pairs(pairs, threads, workdir, rounds=rounds, progress=progress, precision=precision)
    seconds = time.perf_counter() - started
    models = {}
    for backend in backends:
        measured = [(c, r, rows[(member_key(c, r), backend)]["median_ms"]) for c, r in members]
        runtime = runtime_version(backend)
        model = fit(measured, backend, threads, machine_id(), runtime, seconds=seconds, reference_ms=measured[0][2])
        if directory is not None:
            store_model(model, model_path(directory, machine_id(), backend, runtime, threads))
        models[backend] = model
    return models


def latency_models(
    backends: list[str],
    threads: int | None = None,
    directory: str | Path | None = None,
    recalibrate: bool = False,
    progress: bool = True,
) -> dict[str, LatencyModel]:
    """Each backend's latency model for this machine and `threads`: the one stored in `directory` for this machine,
    runtime version and thread count, else calibrated now (all missing backends in one sweep) and stored."""
    threads = threads or torch.get_num_threads()
    found: dict[str, LatencyModel | None] = dict.fromkeys(backends)
    if directory is not None and not recalibrate:
        for backend in backends:
            found[backend] = load_model(model_path(directory, machine_id(), backend, runtime_version(backend), threads))
    missing = [backend for backend, model in found.items() if model is None]
    if missing:
        found.update(calibrate(missing, threads, directory, progress))
    return found  # type: ignore[return-value]


KIT_BACKENDS = ("onnx", "onnx-int8", "openvino", "openvino-int8")  # what a kit carries files for, by default


def write_kit(directory: str | Path, backends: tuple[str, ...] = KIT_BACKENDS) -> Path:
    """A calibration kit in `directory` for a device without PyTorch: each calibration member's files for `backends`,
    `kit.json` naming them, and `mobilenet_runner.py` (`mobilenet.bench.runner`, verbatim) that times them there
    with numpy and ONNX Runtime or OpenVINO alone and writes the measurements file `select --device` reads."""
    directory = Path(directory)
    members = calibration_members()
    unknown = sorted(set(backends) - set(RUNTIMES))
    if unknown:
        raise InputError(
            f"a kit runs ONNX files; no kit backend {', '.join(unknown)} (choose from {', '.join(RUNTIMES)})"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _build_all(
        {directory / f"m{i}": (config, resolution, list(backends)) for i, (config, resolution) in enumerate(members)}
    )
    artifacts = {backend: FILES[get_backend(backend).artifact] for backend in backends}
    rows = [(config, resolution, f"m{i}") for i, (config, resolution) in enumerate(members)]
    manifest = _manifest("mobilenet calibration kit", artifacts, rows)
    write_text(directory / KIT_FILE, json.dumps(manifest, indent=1))
    shutil.copyfile(runner.__file__, directory / "mobilenet_runner.py")
    return directory
