"""Beyond the published grid: the largest configuration of each version at each resolution that fits the budgets.

Width alpha is searched as a continuous knob (to 0.01, by bisection: latency and size grow with alpha; for V1 in
steps of 0.25, the widths whose channels are all multiples of 8: between them a V1 is slower per multiply-add, see
`mobilenet.bench.latency_model.ALIGN`, and latency does not grow with alpha), at each
resolution of a grid and, for V2, each expansion factor t; latency is the backend's latency model's prediction
(`mobilenet.bench.latency_model`), size the bytes of the weights the backend's file holds, counted exactly
(`weights_mb`). An unpublished configuration has no accuracy unless the user's results hold one for it: the search
never invents one. It says what the budget affords; only training says what it is worth.
"""

from __future__ import annotations

import math

from mobilenet.bench.latency_model import LatencyModel, from_measurements
from mobilenet.bench.select import (
    UNKNOWN,
    Candidate,
    Entry,
    cache_dir,
    candidates,
    entries_from_file,
    published_entries,
)
from mobilenet.bench.timing import latency_models
from mobilenet.cost import profile
from mobilenet.deploy.backends import get_backend
from mobilenet.deploy.recipe import QuantizeRecipe
from mobilenet.resolve import ModelConfig, make_config

RESOLUTIONS = tuple(range(96, 257, 16))
EXPANSIONS = (3, 4, 5, 6, 8)  # V2's t
VERSIONS = ("mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")
ALPHA_RANGE = (0.2, 2.0)
V1_STEP = 0.25  # V1's widths with every channel count a multiple of 8 (its channels are int(alpha * c), c = 32 ...)
NO_ACCURACY = "unknown: an unpublished configuration (train it, and give its result with --accuracy)"


def weights_mb(config: ModelConfig, resolution: int, backend: str) -> float:
    """The bytes (MB) of the tensors the backend's file holds, counted: BN folded into each conv (its weights and
    one bias per output channel) at four bytes; in int8 (the library's recipe: per-channel QDQ, the stem in float),
    weights at one byte and, per output channel, an int32 bias and its zero point, a float scale of the weights and
    of the bias and an int8 zero point (17 bytes). The file adds its graph and names: 0.3% (fp32) to 3% (int8)."""
    report = profile(config, resolution=resolution)
    weights = sum(layer.params - layer.bias for layer in report.layers)
    channels = sum(layer.out_shape[0] for layer in report.layers)
    if get_backend(backend).precision != "int8":
        return (weights + channels) * 4 / 1e6
    stem = report.layers[0].params - report.layers[0].bias if QuantizeRecipe.float_stem else 0
    return (weights + 3 * stem + 17 * channels) / 1e6


def grid_candidates(
    models: dict[str, LatencyModel],
    latency_ms: float | None,
    size_mb: float | None,
    versions: tuple[str, ...] | list[str] = VERSIONS,
    resolutions: tuple[int, ...] = RESOLUTIONS,
    expansions: tuple[int, ...] = EXPANSIONS,
    known: list[Entry] = (),
    base: dict[str, object] | None = None,
) -> list[Candidate]:
    """For each backend of `models`, version, resolution (and V2 expansion), the widest configuration within both
    budgets, as predicted candidates; an entry of `known` (published or the user's results) of the same
    configuration lends it its accuracy. `base`: make_config's other arguments (classes, channels)."""
    base = base or {}
    accuracy = {(e.config, e.resolution): e for e in known}
    found = []
    for backend, model in models.items():
        for name in versions:
            for options in [{"t": t} for t in expansions] if name == "mobilenet_v2" else [{}]:
                for resolution in resolutions:
                    best = _widest(name, options, resolution, backend, model, latency_ms, size_mb, base)
                    if best is None:
                        continue
                    config, latency, size = best
                    entry = accuracy.get((config, resolution)) or Entry(config, resolution, None, NO_ACCURACY, UNKNOWN)
                    source = f"predicted: {model.describe()}"
                    counted = f"{backend} file's tensors, counted"
                    found.append(
                        Candidate(
                            entry, latency, source, size, counted, backend=backend, measured=False, predicted_ms=latency
                        )
                    )
    return found


def _widest(name, options, resolution, backend, model, latency_ms, size_mb, base):
    """The largest alpha (to 0.01; V1: to `V1_STEP`) of `name` at `resolution` within both budgets: (config,
    latency, size) or None."""
    step = V1_STEP if name == "mobilenet_v1" else 0.01

    def fits(k: int):
        config = make_config(name, round(k * step, 2), **base, **options)
        latency = model.predict(config, resolution)
        size = weights_mb(config, resolution, backend)
        ok = (latency_ms is None or latency <= latency_ms) and (size_mb is None or size <= size_mb)
        return ok, (config, latency, size)

    lo, hi = math.ceil(ALPHA_RANGE[0] / step - 1e-9), math.floor(ALPHA_RANGE[1] / step + 1e-9)
    ok, best = fits(lo)
    if not ok:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, found = fits(mid)
        if ok:
            lo, best = mid, found
        else:
            hi = mid
    ok, found = fits(hi)
    return found if ok else best


def search(
    accuracy: str = "published",
    versions: list[str] | None = None,
    backends: list[str] | None = None,
    threads: int | None = None,
    cache: str | None = None,
    latency_ms: float | None = None,
    size_mb: float | None = None,
    device: str | None = None,
    recalibrate: bool = False,
    progress: bool = True,
) -> list[Candidate]:
    """`select --grid`: the known entries (the published tables, or a results file) and the widest configuration of
    each version at each resolution within both budgets, every latency predicted (here by this machine's latency
    models, calibrated when needed, or by a device's measurements file) and every size counted. With a results
    file, the grid keeps its models' classes, channels and input sizes."""
    found, _ = candidates(
        accuracy,
        versions,
        backends,
        threads,
        predict=True,
        cache=cache,
        progress=progress,
        latency_ms=latency_ms,
        size_mb=size_mb,
        recalibrate=recalibrate,
        device=device,
    )
    known = published_entries() if accuracy == "published" else entries_from_file(accuracy)
    names = sorted({c.backend for c in found})
    if device is not None:
        models = {names[0]: from_measurements(device)}
    else:
        models = latency_models(names, threads, cache or cache_dir(), progress=progress)  # those `candidates` used
    resolutions, base = RESOLUTIONS, {}
    if accuracy != "published":
        first = known[0].config
        resolutions = tuple(sorted({e.resolution for e in known}))
        base = {"num_classes": first.num_classes, "in_chans": first.in_chans, "small_input": first.small_input}
    wanted = tuple(versions) if versions else VERSIONS
    return found + grid_candidates(models, latency_ms, size_mb, wanted, resolutions, EXPANSIONS, known, base)
