"""Training: `TrainConfig` + `train()`, resumable checkpoints, data-parallel under torchrun; `evaluate()`.

`TrainConfig` (`mobilenet.train.config`) is free of torch; the loop and the evaluation import it on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mobilenet._lazy import lazy_exports
from mobilenet.train.config import TrainConfig, read_run_config

_EXPORTS = {
    "EvalResult": "mobilenet.train.evaluation",
    "evaluate": "mobilenet.train.evaluation",
    "TrainingDiverged": "mobilenet.train.trainer",
    "train": "mobilenet.train.trainer",
}
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = sorted(["TrainConfig", "read_run_config", *_EXPORTS])  # with the lazy names

if TYPE_CHECKING:
    from mobilenet.train.evaluation import EvalResult, evaluate
    from mobilenet.train.trainer import TrainingDiverged, train
