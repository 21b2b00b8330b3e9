"""What can run a model, free of torch: each backend's runtime, precision and the artifact it runs.

A *deployment* backend is a runtime and precision a user ships (ONNX Runtime fp32 and int8; OpenVINO fp32, bf16 and
int8); the PyTorch backends are kept for measurement. `supported` says whether this machine can run a backend.
The artifacts: the fp32 ONNX file (`mobilenet export`), the int8 QDQ file with ONNX Runtime's private h-swish
operators (`mobilenet quantize`, for ONNX Runtime only: its metadata says so) and the portable int8 QDQ file
(`mobilenet quantize --portable`, standard operators, read by any runtime).
"""

from __future__ import annotations

import functools
import importlib.metadata
from dataclasses import dataclass

from mobilenet._io import InputError

RUNTIMES = ("torch", "onnxruntime", "openvino")
ARTIFACTS = ("checkpoint", "onnx", "onnx-int8", "onnx-int8-portable")  # what a backend runs; names of the files


@dataclass(frozen=True)
class Backend:
    """One way to run a model: `runtime` at `precision` on the file kind `artifact`."""

    name: str
    runtime: str
    precision: str  # "fp32", "bf16" (float accumulation, bf16 storage and products) or "int8"
    artifact: str
    deploy: bool  # a deployment target (`bench --backend all`, `select`), not only a measurement
    summary: str


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("torch", "torch", "fp32", "checkpoint", False, "eager PyTorch"),
        Backend("torch-fused", "torch", "fp32", "checkpoint", False, "PyTorch, BN folded, channels_last"),
        Backend("compile", "torch", "fp32", "checkpoint", False, "torch.compile"),
        Backend("onnx", "onnxruntime", "fp32", "onnx", True, "ONNX Runtime, fp32"),
        Backend(
            "onnx-int8",
            "onnxruntime",
            "int8",
            "onnx-int8",
            True,
            "ONNX Runtime, int8 QDQ with its private h-swish operators",
        ),
        Backend(
            "onnx-int8-portable",
            "onnxruntime",
            "int8",
            "onnx-int8-portable",
            False,
            "ONNX Runtime, int8 QDQ of standard operators only",
        ),
        Backend("openvino", "openvino", "fp32", "onnx", True, "OpenVINO, fp32 (inference precision f32)"),
        Backend(
            "openvino-bf16",
            "openvino",
            "bf16",
            "onnx",
            True,
            "OpenVINO at bf16 inference precision (CPUs with AVX-512 BF16 or AMX)",
        ),
        Backend(
            "openvino-int8",
            "openvino",
            "int8",
            "onnx-int8-portable",
            True,
            "OpenVINO, int8 kernels from the portable QDQ file",
        ),
    )
}
BACKEND_NAMES = tuple(BACKENDS)
DEPLOY_BACKENDS = tuple(name for name, b in BACKENDS.items() if b.deploy)
REFERENCE_BACKEND = "onnx"  # what `bench --backend all` gives its ratios against


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def supported(name: str) -> str | None:
    """None when this machine can run backend `name`; else why not, in words a user can act on."""
    backend = get_backend(name)
    if backend.runtime != "openvino":
        return None  # torch and onnxruntime are dependencies of the package
    capabilities = openvino_capabilities()
    if capabilities is None:
        return "OpenVINO is not installed (pip install 'mobilenet[openvino]', or openvino itself)"
    if backend.precision == "bf16" and "BF16" not in capabilities:
        return f"this CPU has no bf16 support in OpenVINO (its capabilities: {', '.join(capabilities)})"
    return None


@functools.cache
def openvino_capabilities() -> tuple[str, ...] | None:
    """OpenVINO's optimization capabilities of this CPU (e.g. FP32, BF16, INT8), or None without OpenVINO."""
    try:
        import openvino
    except ImportError:
        return None
    return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def runtime_version(name: str) -> str:
    """The runtime backend `name` runs in and its installed version, e.g. "onnxruntime 1.20.1" (what latency models
    and caches are keyed by: a new version measures again)."""
    runtime = get_backend(name).runtime
    try:
        return f"{runtime} {importlib.metadata.version(runtime)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{runtime} (not installed)"


def deploy_backends(names: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """The deployment backends this machine supports, of `names` (default: all of them), in the table's order."""
    wanted = DEPLOY_BACKENDS if not names else tuple(names)
    for name in wanted:
        get_backend(name)
    return [name for name in BACKENDS if name in wanted and supported(name) is None]
