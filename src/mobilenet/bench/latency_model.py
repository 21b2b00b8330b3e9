"""A latency model per (machine, backend, threads): any member's latency predicted from its layers, calibrated on a
few members timed in the runtime that runs the file.

The model is a sum over the member's layers plus a per-call cost, the form of kernel-level predictors (nn-Meter,
LitePred) at the granularity the runtimes execute: they fold BN and fuse each activation into its convolution, so a
conv layer is one kernel whose time is linear in its multiply-adds and in the bytes it moves, at a rate that depends
on its kind (pointwise, depthwise, the dense stem, the vector layers of squeeze-excite and the classifier), plus a
fixed cost per kernel launch; the element-wise work the runtimes do not fuse (h-swish, SE's pooling and scaling,
residual adds) costs per element; and a conv whose channels are not a multiple of the runtimes' SIMD block (`ALIGN`)
runs on slower kernels and reorders its tensors to and from the blocked layout, which costs extra per byte it moves
(only V1 has such layers: its channels are int(alpha * c), so alpha 0.3 gives 9, 19, 38, ...; V2 and V3 round every
width to a multiple of 8). Charged per multiply-add instead, that cost left small unaligned members 20-40% low. On
AVX-512 the block is 16 floats, and V2 and V3 have many layers of 8, 24, 40 or 56 channels: those layers' bytes are a
second term (`half_aligned_bytes`), which the fit leaves near 0 where it costs nothing:

    t = call + layer * (conv and linear layers) + sum over kinds (macs_k * MACs_k + bytes_k * bytes_k)
        + vector * (SE and classifier weights) + elementwise * (unfused elements)
        + unaligned * (bytes of convs off multiples of 8) + half_aligned * (of multiples of 8 but not 16)

Its eleven coefficients are fitted by non-negative least squares on relative error (a member of 1 ms weighs as much
as one of 20 ms; no cost can be negative) to the calibration members (`CALIBRATION`): off the published grid, so
the 45 published members stay out of the fit and score it, chosen to span the family (each version, alpha 0.25-1.3,
resolutions 96-256, V2's expansion 3-8, V1 with aligned and unaligned channels). The features come from
`mobilenet.cost.profile`: predicting a member needs no export and no runtime.

A model is stored beside the latency caches, keyed by the machine, the runtime and its version, and the thread
count; any change of these calibrates again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mobilenet._io import InputError, write_text
from mobilenet.cost import profile
from mobilenet.resolve import ModelConfig, make_config

FORMAT = 1
FEATURES = (
    "call",
    "layers",
    "pointwise_macs",
    "pointwise_bytes",
    "depthwise_macs",
    "depthwise_bytes",
    "standard_macs",
    "vector_params",
    "elementwise",
    "unaligned_bytes",
    "half_aligned_bytes",
)
ALIGN = 8  # channels per SIMD block of the runtimes' fast conv kernels (ONNX Runtime's NCHWc, on AVX2: 8 floats)
WIDE_ALIGN = 16  # the block on AVX-512 (16 floats)
_FUSED = frozenset({"batchnorm", "relu", "relu6"})  # folded or fused into the conv by every runtime here

# The calibration members: (version, alpha, resolution, options). None is published: the published members score
# the model. The first is the reference timed in every round.
CALIBRATION: tuple[tuple[str, float, int, dict[str, object]], ...] = (
    ("mobilenet_v2", 0.6, 208, {"t": 4}),  # mid-sized (3 ms here): its ratio to large and small members moves least
    ("mobilenet_v3_small", 0.6, 160, {}),
    ("mobilenet_v1", 0.25, 96, {}),  # the smallest, aligned: pins the per-call cost
    ("mobilenet_v1", 0.6, 176, {}),  # V1's channels are int(alpha * c): 19, 38, 76, ... (unaligned)
    ("mobilenet_v1", 0.5, 208, {}),  # 16, 32, 64, ... (aligned, as every published V1)
    ("mobilenet_v1", 1.0, 176, {}),
    ("mobilenet_v2", 0.4, 112, {}),
    ("mobilenet_v2", 0.3, 176, {}),  # channels 8 to 48, some off multiples of 16: as small as V2 0.35
    ("mobilenet_v2", 0.9, 144, {"t": 8}),
    ("mobilenet_v2", 1.2, 256, {}),
    ("mobilenet_v3_large", 0.6, 192, {}),
    ("mobilenet_v3_large", 1.25, 256, {}),
    ("mobilenet_v3_small", 1.3, 240, {}),
    ("mobilenet_v3_large", 0.9, 128, {"minimal": True}),
    ("mobilenet_v3_small", 0.8, 192, {"minimal": True}),  # no SE, no h-swish: runtimes fuse all of its activations
)


def calibration_members() -> list[tuple[ModelConfig, int]]:
    """The calibration members as (config, resolution); the first is the reference."""
    return [(make_config(name, alpha, **options), resolution) for name, alpha, resolution, options in CALIBRATION]


@functools.lru_cache(maxsize=4096)
def features(config: ModelConfig, resolution: int) -> tuple[float, ...]:
    """The model's features of one member at one resolution (`FEATURES`, in MACs, bytes and elements / 1e6)."""
    report = profile(config, resolution=resolution)
    f = dict.fromkeys(FEATURES, 0.0)
    f["call"] = 1.0
    for layer in report.layers:
        f["layers"] += 1
        if layer.kind in ("pointwise", "depthwise", "standard"):
            if _unaligned(layer, ALIGN):
                f["unaligned_bytes"] += (layer.bytes_read + layer.bytes_written) / 1e6
            elif _unaligned(layer, WIDE_ALIGN):
                f["half_aligned_bytes"] += (layer.bytes_read + layer.bytes_written) / 1e6
        if layer.kind in ("pointwise", "depthwise"):
            f[f"{layer.kind}_macs"] += layer.macs / 1e6
            f[f"{layer.kind}_bytes"] += (layer.bytes_read + layer.bytes_written) / 1e6
        elif layer.kind == "standard":
            f["standard_macs"] += layer.macs / 1e6
        else:  # squeeze_excite, linear: matrix-vector products, as slow as their weights are large
            f["vector_params"] += layer.params / 1e6
    f["elementwise"] = sum(n for kind, n in report.elementwise.items() if kind not in _FUSED) / 1e6
    return tuple(f[name] for name in FEATURES)


def _unaligned(layer, block: int) -> bool:
    """Whether a conv layer's channels miss SIMD blocks of `block` channels: its output channels, and a pointwise
    layer's input channels too (the stem's 3 input channels are padded by every runtime). Such a layer runs on
    slower kernels: on 2026-11-30's Intel Xeon, mobilenet_v1 0.6 @176 (126 M multiply-adds, channels 19-614) took
    2.74 ms in ONNX Runtime and the aligned 0.75 @192 (235 M) 2.34 ms (docs/bench.md)."""
    return bool(layer.out_shape[0] % block or (layer.kind == "pointwise" and layer.in_shape[0] % block))  # (C, H, W)


@dataclass(frozen=True)
class LatencyModel:
    """Coefficients of `FEATURES` (ms per unit) for one backend and thread count on one machine or device, and the
    members it was calibrated on with their measured and fitted latencies."""

    backend: str
    threads: int
    machine: str  # `machine_id()` here, or "<device> (<cpu>)" for a device's measurements file
    runtime: str  # e.g. "onnxruntime 1.20.1"
    coefficients: tuple[float, ...]
    calibration: tuple[dict[str, object], ...]  # key, config, resolution, measured_ms, fitted_ms
    created: str
    device: str = ""  # the device's name when calibrated from its measurements file, else ""
    seconds: float = 0.0  # what measuring the calibration members cost
    reference_ms: float = 0.0  # the reference member's median when calibrated: the level later sweeps scale to

    def predict(self, config: ModelConfig, resolution: int) -> float:
        """The predicted latency (ms) of `config` at `resolution`."""
        return float(np.dot(features(config, resolution), self.coefficients))

    @property
    def fit_error(self) -> float:
        """The median |fitted / measured - 1| over the calibration members."""
        return statistics.median(abs(c["fitted_ms"] / c["measured_ms"] - 1) for c in self.calibration)

    def describe(self) -> str:
        where = f"on {self.device}" if self.device else "here"
        return (
            f"latency model {where} ({self.backend}, {self.runtime}, {self.threads} thread(s)), calibrated on "
            f"{len(self.calibration)} members, median fit error {self.fit_error:.0%}"
        )

    def to_dict(self) -> dict[str, object]:
        return {"format": FORMAT, **asdict(self), "features": list(FEATURES)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LatencyModel:
        if data.get("format") != FORMAT or tuple(data.get("features", ())) != FEATURES:
            raise InputError("a latency model of another format or feature set; calibrate again")
        fields = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        fields["coefficients"] = tuple(float(c) for c in fields["coefficients"])
        fields["calibration"] = tuple(fields["calibration"])
        return cls(**fields)


def fit(
    members: list[tuple[ModelConfig, int, float]],
    backend: str,
    threads: int,
    machine: str,
    runtime: str,
    device: str = "",
    seconds: float = 0.0,
    reference_ms: float = 0.0,
) -> LatencyModel:
    """The latency model fitted to `members`, each (config, resolution, measured median ms)."""
    if len(members) < len(FEATURES):
        raise InputError(f"need at least {len(FEATURES)} measured members to calibrate, got {len(members)}")
    for config, resolution, ms in members:
        if not ms > 0 or not np.isfinite(ms):
            raise InputError(f"{config.name} {config.alpha} @{resolution}: latency must be positive, got {ms!r}")
    from scipy.optimize import nnls  # here, not at the top: a select with its models stored never fits

    x = np.array([features(config, resolution) for config, resolution, _ in members])
    y = np.array([ms for _, _, ms in members])
    coefficients, _ = nnls(x / y[:, None], np.ones(len(y)))  # relative error: each member weighs the same
    fitted = x @ coefficients
    calibration = tuple(
        {
            "key": member_key(config, resolution),
            "config": config.to_dict(),
            "resolution": resolution,
            "measured_ms": float(ms),
            "fitted_ms": float(f),
        }
        for (config, resolution, ms), f in zip(members, fitted, strict=True)
    )
    return LatencyModel(
        backend,
        threads,
        machine,
        runtime,
        tuple(float(c) for c in coefficients),
        calibration,
        time.strftime("%Y-%m-%d %H:%M"),
        device,
        round(seconds, 1),
        reference_ms,
    )


def member_key(config: ModelConfig, resolution: int) -> str:
    """A short, stable name of a member at a resolution (what calibration files and kits key their rows by)."""
    options = ",".join(f"{k}={v}" for k, v in sorted(config.changed_options().items()))
    return f"{config.name}|{config.alpha}|{resolution}|{options}|{config.in_chans}|{config.num_classes}"


def model_path(directory: str | os.PathLike, machine: str, backend: str, runtime: str, threads: int) -> Path:
    digest = hashlib.sha1(f"{machine}|{backend}|{runtime}|{threads}".encode()).hexdigest()[:12]
    return Path(directory) / f"latency-model-{backend}-{threads}t-{digest}.json"


def load_model(path: Path) -> LatencyModel | None:
    """The model stored at `path`, or None when there is none or it cannot be used (then it is calibrated again)."""
    try:
        model = LatencyModel.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # its level is the reference's: a model calibrated against another reference would scale sweeps wrongly
    return model if model.calibration[0]["key"] == member_key(*calibration_members()[0]) else None


def store_model(model: LatencyModel, path: Path) -> None:
    """Write `model` to `path`; a folder that cannot be written only costs calibrating again next time."""
    with contextlib.suppress(OSError, ValueError):
        write_text(path, json.dumps(model.to_dict(), indent=1))


def from_measurements(path: str | os.PathLike) -> LatencyModel:
    """The latency model of a device, fitted to the measurements file its calibration kit's runner wrote there
    (`mobilenet calibrate --kit`, then `python mobilenet_runner.py`). Raises InputError naming what is wrong."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"measurements file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"measurements file {path} cannot be read as JSON ({error})") from None
    if not isinstance(document, dict) or document.get("kind") != "mobilenet latency measurements":
        raise InputError(f"{path} is not a measurements file written by mobilenet_runner.py")
    if document.get("format") != FORMAT:
        raise InputError(f"{path} has format {document.get('format')!r}; this version reads {FORMAT}")
    try:
        rows = [
            (ModelConfig.from_dict(m["config"]), int(m["resolution"]), float(m["median_ms"]))
            for m in document["members"].values()
        ]
        reference = document["members"][document["reference"]]["median_ms"]
        device, backend, threads = str(document["device"]), str(document["backend"]), int(document["threads"])
        machine, runtime = f"{device} ({document.get('cpu', '?')})", str(document["runtime"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(f"measurements file {path} is incomplete or malformed ({error!r})") from None
    return fit(rows, backend, threads, machine, runtime, device, float(document.get("seconds", 0.0)), reference)
