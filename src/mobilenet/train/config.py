"""A training run's configuration, complete and checked where it is made: `TrainConfig`, saved as RUN_DIR/config.json
and read back by `read_run_config` to resume. Free of torch, so that the CLI builds its flags and defaults from it."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mobilenet._io import InputError, InputTypeError
from mobilenet.data.catalog import DATASETS
from mobilenet.resolve import ModelConfig, make_config

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
EVAL_BATCH_SIZE = 500  # images per call when evaluating (memory, not results, depends on it)


@dataclass
class TrainConfig:
    """A training run, complete: saved as RUN_DIR/config.json and reloaded on --resume."""

    out: str  # RUN_DIR
    # The network: a `ModelConfig`, or a model name for its defaults with `small_input` on for images <= 64 px. Its
    # num_classes and in_chans are the dataset's, set when the run starts (config.json holds the complete config).
    model: ModelConfig | str = "mobilenet_v2"
    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    download: bool = False
    image_size: int = 224  # image folders only; the small datasets keep their stored size
    epochs: int = 30
    batch_size: int = 128  # per process
    train_samples: int | None = None  # train on a seeded subset, for quick experiments
    val_samples: int = 5000  # held out from the training set; the test set is only used for the final figure
    optimizer: str = "sgd"  # sgd (Nesterov), rmsprop (as in the papers), adamw
    lr: float | None = None  # default: sgd 0.1, rmsprop 0.016, adamw 0.002, each x batch_size x processes / 128
    momentum: float = 0.9
    weight_decay: float | None = None  # default: sgd 5e-4, rmsprop 4e-5, adamw 0.05; never on BN or biases
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    ema_decay: float = 0.999  # 0 turns EMA off
    # deviation: V3's BN momentum 0.01 (torchvision, for ImageNet-length runs) leaves the running statistics ~100
    # steps behind the weights, which breaks evaluation of short runs; None keeps the model's own.
    bn_momentum: float | None = 0.1
    padding: int | None = None  # random-crop padding; default: image side // 8
    flip: bool | None = None  # default: whether the dataset's classes survive a mirror (not for MNIST digits)
    erasing: float = 0.5  # random-erasing probability
    bf16: bool = True  # bfloat16 autocast
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    num_threads: int | None = None

    def __post_init__(self) -> None:
        def number(value: object) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        def optional(value: object, ok) -> bool:  # None: the default the field's comment names
            return value is None or (number(value) and ok(value))

        ranges = {  # name: (holds, the range a message names)
            "epochs": (number(self.epochs) and self.epochs >= 1, ">= 1"),
            "batch_size": (number(self.batch_size) and self.batch_size >= 1, ">= 1"),
            "image_size": (number(self.image_size) and 1 <= self.image_size <= 4096, "1..4096"),
            "train_samples": (optional(self.train_samples, lambda v: v >= 1), ">= 1"),
            "val_samples": (number(self.val_samples) and self.val_samples >= 0, ">= 0"),
            "lr": (optional(self.lr, lambda v: v > 0), "> 0"),
            "momentum": (number(self.momentum) and 0 <= self.momentum < 1, "[0, 1)"),
            "weight_decay": (optional(self.weight_decay, lambda v: v >= 0), ">= 0"),
            "label_smoothing": (number(self.label_smoothing) and 0 <= self.label_smoothing < 1, "[0, 1)"),
            "warmup_epochs": (number(self.warmup_epochs) and self.warmup_epochs >= 0, ">= 0"),
            "ema_decay": (number(self.ema_decay) and 0 <= self.ema_decay < 1, "[0, 1)"),
            "bn_momentum": (optional(self.bn_momentum, lambda v: 0 < v <= 1), "(0, 1]"),
            "padding": (optional(self.padding, lambda v: v >= 0), ">= 0"),
            "erasing": (number(self.erasing) and 0 <= self.erasing <= 1, "[0, 1]"),
            "num_threads": (optional(self.num_threads, lambda v: v >= 1), ">= 1"),
        }
        for name, (holds, valid) in ranges.items():
            if not holds:
                raise InputError(f"{name} must be {valid}, got {getattr(self, name)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if isinstance(self.model, str):
            self.model = make_config(self.model, small_input=default_small_input(self.dataset, self.image_size))
        elif isinstance(self.model, Mapping):
            self.model = ModelConfig.from_dict(self.model)
        if not isinstance(self.model, ModelConfig):
            raise InputTypeError(f"model must be a ModelConfig or a model name, got {self.model!r}")

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TrainConfig:
        """The inverse of `to_dict`; also reads run configs written before the model was one record (`model` a
        name beside `alpha` and `model_options`)."""
        data = dict(data)
        if "model_options" in data or "alpha" in data:
            options = dict(data.pop("model_options", None) or {})
            small_input = options.pop("small_input", None)
            if small_input is None:
                small_input = default_small_input(data.get("dataset", "fashion-mnist"), data.get("image_size", 224))
            name = data.get("model", "mobilenet_v2")
            data["model"] = make_config(name, data.pop("alpha", 1.0), small_input=small_input, **options)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown training option(s) {unknown}")
        return cls(**data)


def default_small_input(dataset: str, image_size: int) -> bool:
    """Whether a network trained on `dataset` (at `image_size`, for image folders) keeps its first stages at stride 1:
    yes for images of 64 px or less, whose 7x7 final map would otherwise be 1x1 or smaller."""
    info = DATASETS.get(dataset)
    return (info.size if info is not None else image_size) <= 64


def read_run_config(out: str | os.PathLike) -> TrainConfig:
    """The config of the run in folder `out`, to resume it there: its saved `out` is replaced by the folder it is
    read from, so that a run folder can be moved or copied and resumed where it now is (and never writes into the
    folder it was copied from)."""
    out = Path(out)
    config_path = out / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"nothing to resume in {out}: no config.json (start the run without --resume)")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{config_path} is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{config_path} does not hold a training config")
    try:
        return TrainConfig.from_dict({**data, "out": str(out)})
    except (TypeError, ValueError) as error:
        raise InputError(f"{config_path}: {error}") from None
