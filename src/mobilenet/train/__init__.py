"""Training: `TrainConfig` + `train()`, resumable checkpoints, data-parallel under torchrun; `evaluate()`."""

from mobilenet.train.evaluate import EvalResult, evaluate
from mobilenet.train.trainer import TrainConfig, TrainingDiverged, train

__all__ = ["EvalResult", "TrainConfig", "TrainingDiverged", "evaluate", "train"]
