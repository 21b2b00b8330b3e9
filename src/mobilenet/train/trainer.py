"""The trainer: one `TrainConfig`, one `train()` — on one process or, under torchrun, data-parallel on many.

Reproducibility is by construction: the sample order of an epoch, every augmentation draw and every dropout mask is
a pure function of (seed, epoch, step, rank), and the learning rate a pure function of the step. So a run
interrupted anywhere and resumed from its checkpoint ends with the same weights as one never interrupted.

RUN_DIR holds `config.json` (the full configuration), `metrics.jsonl` (one JSON line per epoch), `last.safetensors`
and `best.safetensors` (the weights to use — EMA ones when EMA is on — with the model spec in the metadata),
`last.state.pt` (everything needed to resume; plain tensors and numbers, loadable with `weights_only=True`), and
`result.json` once the run is over.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mobilenet._io import InputError, append_line, atomic_write, check_log, check_output_dir, write_text
from mobilenet.data import augment_batch, load_dataset, normalize
from mobilenet.metadata import InputSpec, file_metadata
from mobilenet.model import MobileNet, build
from mobilenet.train.config import TrainConfig, read_run_config
from mobilenet.train.evaluation import EvalResult, evaluate
from mobilenet.weights import load, save


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class _World:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _World:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: join the group (nccl on GPU, gloo on CPU); else one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return _World(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return _World(dist.get_rank(), dist.get_world_size(), device)


def _seed(*parts: int) -> int:
    """A 63-bit seed from integers (deterministic across processes, unlike hash())."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x632BE59BD9B4E019 + (value << 6) + (value >> 2))) & 0x7FFFFFFFFFFFFFFF
    return value


def learning_rate(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, progress)))


def _ema_with_warmup(decay: float):
    """EMA update whose decay ramps up as min(decay, (1 + n) / (10 + n)) (TF's ExponentialMovingAverage with
    num_updates), so that short runs are not stuck near the initial weights. Integer buffers are copied."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        for ema, value in zip(averaged, current, strict=True):
            if ema.is_floating_point():
                ema.lerp_(value, weight)
            else:
                ema.copy_(value)

    return update


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, object]]:
    """Weight decay on conv and linear weights only: never on BN parameters or biases."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(config: TrainConfig, model: nn.Module, world: int) -> tuple[torch.optim.Optimizer, float]:
    scale = config.batch_size * world / 128
    if config.optimizer == "sgd":
        lr, wd = config.lr or 0.1 * scale, 5e-4 if config.weight_decay is None else config.weight_decay
        return torch.optim.SGD(_param_groups(model, wd), lr=lr, momentum=config.momentum, nesterov=True), lr
    if config.optimizer == "rmsprop":  # the papers' optimizer: decay 0.9, momentum 0.9, eps 0.0316 (TF-slim's 1.0)
        lr, wd = config.lr or 0.016 * scale, 4e-5 if config.weight_decay is None else config.weight_decay
        opt = torch.optim.RMSprop(_param_groups(model, wd), lr=lr, alpha=0.9, eps=0.0316, momentum=config.momentum)
        return opt, lr
    lr, wd = config.lr or 2e-3 * scale, 0.05 if config.weight_decay is None else config.weight_decay
    return torch.optim.AdamW(_param_groups(model, wd), lr=lr), lr


def _split(config: TrainConfig, train_set) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): a seeded hold-out from the training set."""
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(_seed(config.seed, 1)))
    if config.val_samples >= len(train_set):
        raise InputError(f"val_samples={config.val_samples} leaves nothing to train on ({len(train_set)} images)")
    val, train = order[: config.val_samples], order[config.val_samples :]
    if config.train_samples is not None:
        train = train[: config.train_samples]
    return train, val


class _Run:
    """The state of one run; `train()` drives it."""

    def __init__(self, config: TrainConfig, world: _World, progress: bool) -> None:
        self.config, self.world, self.progress = config, world, progress and world.main
        self.out = Path(config.out)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.train_set = load_dataset(config.dataset, "train", config.data_dir, config.download and world.main)
        if world.size > 1 and config.download:
            dist.barrier()
            self.train_set = load_dataset(config.dataset, "train", config.data_dir)
        # loaded now, so that a missing test split fails before training, not after it
        self.test_set = load_dataset(config.dataset, "test", config.data_dir)
        info = self.train_set.info
        self.size = info.size or config.image_size
        self.train_idx, self.val_idx = _split(config, self.train_set)
        self.model_config = config.model.replace(num_classes=len(info.classes), in_chans=info.channels)
        self.config = config = dataclasses.replace(config, model=self.model_config)  # complete, for config.json
        torch.manual_seed(_seed(config.seed, 2))
        self.model: MobileNet = build(self.model_config).to(world.device)
        if config.bn_momentum is not None:
            for module in self.model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.momentum = config.bn_momentum
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer, self.base_lr = _optimizer(config, self.model, world.size)
        self.ema = None
        if config.ema_decay > 0:
            self.ema = torch.optim.swa_utils.AveragedModel(
                self.model, multi_avg_fn=_ema_with_warmup(config.ema_decay), use_buffers=True
            )
        self.network: nn.Module = self.model
        if world.size > 1:
            self.network = nn.parallel.DistributedDataParallel(self.model)
        if config.compile:
            self.network = torch.compile(self.network)
        self.steps_per_epoch = len(self.train_idx) // (config.batch_size * world.size)
        if self.steps_per_epoch == 0:
            raise InputError(
                f"{len(self.train_idx)} training images cannot fill one batch of {config.batch_size} x "
                f"{world.size} process(es): lower --batch-size or raise --train-samples"
            )
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        self.padding = config.padding if config.padding is not None else self.size // 8
        self.flip = info.flip if config.flip is None else config.flip
        self.epoch, self.step = 0, 0  # the next step to run
        self.best_val, self.sums = -1.0, _fresh_sums()
        bf16 = functools.partial(torch.autocast, world.device.type, dtype=torch.bfloat16)
        self.autocast = bf16 if config.bf16 else nullcontext  # a new context per forward pass

    # --- checkpoints -------------------------------------------------------------------------------------------

    def eval_model(self) -> MobileNet:
        return self.ema.module if self.ema is not None else self.model

    def save_state(self) -> None:
        """last.safetensors + last.state.pt, each written atomically (state last: it names the finished step)."""
        if not self.world.main:
            return
        save(self.eval_model(), self.out / "last.safetensors", metadata=self._metadata())
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "best_val": self.best_val,
            "sums": self.sums,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "config": json.dumps(self.config.to_dict()),
        }
        atomic_write(self.out / "last.state.pt", lambda tmp: torch.save(state, tmp))

    def load_state(self) -> None:
        path = self.out / "last.state.pt"
        if not path.is_file():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist (start the run without --resume)")
        state = torch.load(path, map_location=self.world.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.epoch, self.step, self.best_val, self.sums = (
            state["epoch"],
            state["step"],
            state["best_val"],
            state["sums"],
        )

    def _metadata(self) -> dict[str, str]:
        info = self.train_set.info
        spec = InputSpec(self.size, info.channels, info.mean, info.std, tuple(self.train_set.classes))
        return file_metadata(self.model_config, spec, dataset=self.config.dataset, epoch=str(self.epoch))

    # --- the loop ----------------------------------------------------------------------------------------------

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.train_set.batch(indices, self.size)
        x = normalize(images, self.train_set.info.mean, self.train_set.info.std)
        x = augment_batch(x, generator, padding=self.padding, flip=self.flip, erasing=self.config.erasing)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.world.device, non_blocking=True), labels.to(self.world.device, non_blocking=True)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, global_step: int) -> tuple[float, int]:
        lr = learning_rate(global_step, self.total_steps, self.warmup_steps, self.base_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.network.train()
        with self.autocast():
            logits = self.network(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)
        finite = torch.isfinite(loss.detach()).float()
        if self.world.size > 1:  # every rank must stop together
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            raise TrainingDiverged(
                f"loss became {loss.item()} at epoch {self.epoch + 1}, step {self.step + 1} (lr {lr:.4g}); "
                f"{self.out / 'last.safetensors'} holds the last good weights. Lower --lr or turn off --bf16."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss.item(), (logits.argmax(1) == y).sum().item()

    def run_epoch(self) -> dict[str, float] | None:
        config, world = self.config, self.world
        order = self.train_idx[
            torch.randperm(
                len(self.train_idx), generator=torch.Generator().manual_seed(_seed(config.seed, 3, self.epoch))
            )
        ]
        per_rank = order[world.rank :: world.size]
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(
                total=self.steps_per_epoch,
                initial=self.step,
                desc=f"epoch {self.epoch + 1}/{config.epochs}",
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )
        try:
            while self.step < self.steps_per_epoch:
                started = time.perf_counter()
                seed = _seed(config.seed, 4, self.epoch, self.step, world.rank)
                torch.manual_seed(seed)  # dropout masks
                indices = per_rank[self.step * config.batch_size : (self.step + 1) * config.batch_size]
                x, y = self.batch(indices, torch.Generator().manual_seed(seed))
                loss, correct = self.train_step(x, y, self.epoch * self.steps_per_epoch + self.step)
                self.step += 1
                self.sums["loss"] += loss * len(y)
                self.sums["correct"] += correct
                self.sums["seen"] += len(y)
                self.sums["seconds"] += time.perf_counter() - started
                if bar is not None:
                    rate = self.sums["seen"] * world.size / max(self.sums["seconds"], 1e-9)
                    bar.set_postfix(
                        loss=f"{self.sums['loss'] / self.sums['seen']:.3f}",
                        acc=f"{100 * self.sums['correct'] / self.sums['seen']:.1f}",
                        img_s=f"{rate:.0f}",
                        refresh=False,
                    )
                    bar.update()
        finally:
            if bar is not None:
                bar.close()
        seen = max(1, self.sums["seen"])
        return {
            "epoch": self.epoch + 1,
            "train_loss": self.sums["loss"] / seen,
            "train_acc": 100.0 * self.sums["correct"] / seen,
            "images_per_s": self.sums["seen"] * world.size / max(self.sums["seconds"], 1e-9),
            "seconds": self.sums["seconds"],
            "lr_end": learning_rate(
                (self.epoch + 1) * self.steps_per_epoch - 1, self.total_steps, self.warmup_steps, self.base_lr
            ),
        }

    def sync_buffers(self) -> None:
        """DDP broadcasts BN statistics at the start of each forward, so after the last step every rank holds its
        own; give every rank rank 0's (the ones it checkpoints), for the model and its EMA alike."""
        for module in (self.model, self.ema):
            if module is not None:
                for buffer in module.buffers():
                    dist.broadcast(buffer, src=0)

    def validate(self) -> EvalResult | None:
        if len(self.val_idx) == 0:
            return None
        model = self.eval_model()

        def predict(x: torch.Tensor) -> torch.Tensor:
            if self.config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                return model(x.to(self.world.device))

        model.eval()
        return evaluate(predict, self.train_set, image_size=self.size, indices=self.val_idx)

    def fit(self) -> None:
        """Train from the point reached to the last epoch: each epoch, train, validate, then (main process) keep the
        best weights, checkpoint and log."""
        while self.epoch < self.config.epochs:
            metrics = self.run_epoch()
            if self.world.size > 1:
                self.sync_buffers()
            result = self.validate()
            if result is not None:
                metrics.update(val_loss=result.loss, val_acc=result.top1)
            self.epoch, self.step, self.sums = self.epoch + 1, 0, _fresh_sums()
            if self.world.main:
                if result is not None and result.top1 > self.best_val:
                    self.best_val = result.top1
                    save(self.eval_model(), self.out / "best.safetensors", metadata=self._metadata())
                self.save_state()
                append_line(self.out / "metrics.jsonl", json.dumps(metrics))
                if self.progress:
                    _print_epoch(metrics)


def _fresh_sums() -> dict[str, float]:
    """The running totals of an epoch, at its start."""
    return {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, object]:
    """Run (or, with `resume`, continue) the training `config` describes; return the final result.

    Ctrl-C saves the exact point reached and exits cleanly (KeyboardInterrupt propagates after the save); a NaN or
    infinite loss raises `TrainingDiverged` with the last good checkpoint untouched.
    """
    world = _init_distributed()
    out = Path(config.out)
    config_path = out / "config.json"
    if resume:
        config = read_run_config(out)
    elif (out / "last.state.pt").exists():
        raise FileExistsError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    if world.main:
        check_output_dir(out, what="the run folder")
        check_log(out / "metrics.jsonl")
    run = _Run(config, world, progress)
    if world.main and not resume:
        write_text(config_path, json.dumps(run.config.to_dict(), indent=2))
    if resume:
        run.load_state()
    if world.main and progress:
        params = sum(p.numel() for p in run.model.parameters())
        print(
            f"training {run.model_config.name} alpha={run.model_config.alpha} ({params:,} params) on "
            f"{config.dataset}: "
            f"{len(run.train_idx):,} train / {len(run.val_idx):,} val images, {config.epochs} epochs of "
            f"{run.steps_per_epoch} steps, {world.size} process(es) -> {out}",
            file=sys.stderr,
        )
    try:
        run.fit()
        divergence = _rank_divergence(run) if world.size > 1 else 0.0
    except KeyboardInterrupt:
        run.save_state()
        if world.main:
            print(
                f"\ninterrupted at epoch {run.epoch + 1}, step {run.step}: saved; continue with --resume",
                file=sys.stderr,
            )
        raise
    finally:
        if world.size > 1 and dist.is_initialized():
            dist.destroy_process_group()
    if not world.main:
        return {}
    data_parallel = {"processes": world.size, "rank_max_param_difference": divergence} if world.size > 1 else {}
    return _finish(run, data_parallel)


def _rank_divergence(run: _Run) -> float:
    """The largest difference between any rank's parameters and rank 0's (0.0 when data-parallel works)."""
    worst = torch.zeros((), device=run.world.device)
    for tensor in run.model.state_dict().values():
        reference = tensor.detach().clone()
        dist.broadcast(reference, src=0)
        if tensor.is_floating_point():
            worst = torch.maximum(worst, (tensor.detach() - reference).abs().max())
        elif not torch.equal(tensor, reference):
            worst = torch.maximum(worst, torch.ones((), device=run.world.device))
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return worst.item()


def _print_epoch(metrics: dict[str, float]) -> None:
    val = f", val {metrics['val_acc']:.2f}%" if "val_acc" in metrics else ""
    print(
        f"epoch {metrics['epoch']}: loss {metrics['train_loss']:.4f}, train {metrics['train_acc']:.2f}%{val}, "
        f"{metrics['images_per_s']:.0f} img/s",
        file=sys.stderr,
    )


def _finish(run: _Run, extra: dict[str, object]) -> dict[str, object]:
    """Evaluate best (by validation accuracy) and last weights on the test set; write result.json (with `extra`)."""
    test = run.test_set
    result: dict[str, object] = {"config": run.config.to_dict(), "best_val_acc": run.best_val}
    for name in ("best", "last"):
        path = run.out / f"{name}.safetensors"
        if path.is_file():
            evaluation = evaluate(load(path), test, image_size=run.size)
            result[f"test_{name}"] = {"top1": evaluation.top1, "top5": evaluation.top5, "loss": evaluation.loss}
    result.update(extra)
    write_text(run.out / "result.json", json.dumps(result, indent=2))
    return result
