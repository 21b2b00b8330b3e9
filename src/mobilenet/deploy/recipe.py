"""What the deployment functions take, free of torch (the CLI builds its flags and defaults from it): how a model
is quantized (`QuantizeRecipe`) and what a prediction returns by default."""

from __future__ import annotations

from dataclasses import dataclass

from mobilenet._io import InputError, InputTypeError

METHODS = ("minmax", "entropy", "percentile")  # ONNX Runtime's calibrators
ACTIVATION_TYPES = ("uint8", "int8")  # uint8: fast on x86 CPUs, whose int8 kernels expect u8 x s8
TOP_K = 5  # labels per image a prediction returns
PREDICT_BATCH = 64  # images per model call when classifying files


@dataclass(frozen=True)
class QuantizeRecipe:
    """How `mobilenet.deploy.quantize.quantize_onnx` quantizes: calibration on `samples` training images with
    `method`, per-channel weights or not, the activations' type, nodes kept in float, standard operators only
    (`portable`), and whether the convolution on the image stays float. Checked where it is made."""

    samples: int = 512
    method: str = "minmax"
    per_channel: bool = True
    activations: str = "uint8"
    exclude: tuple[str, ...] = ()
    portable: bool = False
    float_stem: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise InputError(f"samples must be an integer >= 1, got {self.samples!r}")
        if self.method not in METHODS:
            raise InputError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.activations not in ACTIVATION_TYPES:
            raise InputError(f"activations must be one of {ACTIVATION_TYPES}, got {self.activations!r}")
        for name in ("per_channel", "portable", "float_stem"):
            if not isinstance(getattr(self, name), bool):
                raise InputTypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        object.__setattr__(self, "exclude", tuple(self.exclude))
