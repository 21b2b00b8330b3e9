"""The trainer on real Fashion-MNIST images, tiny: checkpoints, exact resume, divergence, data-parallel."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import mobilenet
from mobilenet.train import TrainConfig, TrainingDiverged, train
from mobilenet.train import trainer as trainer_module
from mobilenet.train.trainer import _param_groups, learning_rate

TINY = {
    "model": mobilenet.make_config("mobilenet_v3_small", alpha=0.35, small_input=True),
    "epochs": 2,
    "batch_size": 32,
    "train_samples": 192,
    "val_samples": 64,
    "num_threads": 1,
}


def tiny(tmp_path, name="run", **overrides):
    return TrainConfig(out=str(tmp_path / name), **{**TINY, **overrides})


def weights(path):
    return load_file(str(path))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def interrupted_at_step(config, step, monkeypatch):
    """Run `config` with Ctrl-C arriving at training step `step` (counted from 1 over the whole run)."""
    original = trainer_module._Run.train_step
    calls = {"n": 0}

    def interrupt(self, *args):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(trainer_module._Run, "train_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    monkeypatch.setattr(trainer_module._Run, "train_step", original)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted tiny run, shared by the resume tests."""
    root = tmp_path_factory.mktemp("reference")
    result = train(TrainConfig(out=str(root / "run"), **TINY), progress=False)
    return root / "run", result


def test_run_directory_contents(reference):
    out, result = reference
    assert {p.name for p in out.iterdir()} == {
        "config.json",
        "metrics.jsonl",
        "last.safetensors",
        "best.safetensors",
        "last.state.pt",
        "result.json",
    }
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert {"train_loss", "train_acc", "val_acc", "val_loss", "images_per_s"} <= set(lines[0])
    saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert saved.model == mobilenet.load(out / "best.safetensors").config  # the complete model config, one record
    assert (saved.model.alpha, saved.model.num_classes, saved.model.in_chans) == (0.35, 10, 1)
    assert set(result["test_best"]) == {"top1", "top5", "loss"}
    state = torch.load(out / "last.state.pt", weights_only=True)  # no pickle of arbitrary objects
    assert state["epoch"] == 2
    assert state["step"] == 0
    model = mobilenet.load(out / "best.safetensors")
    assert model.config.in_chans == 1
    assert model.config.num_classes == 10
    assert model.config.small_input


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, reference, monkeypatch):
    """Ctrl-C in the middle of epoch 1 saves the exact point; --resume ends where an uninterrupted run ends."""
    config = tiny(tmp_path)
    interrupted_at_step(config, 4, monkeypatch)
    state = torch.load(tmp_path / "run" / "last.state.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (0, 3)
    train(TrainConfig(out=config.out), resume=True, progress=False)
    assert_same_weights(tmp_path / "run" / "last.safetensors", reference[0] / "last.safetensors")
    resumed = torch.load(tmp_path / "run" / "last.state.pt", weights_only=True)["model"]
    uninterrupted = torch.load(reference[0] / "last.state.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_killed_process_resumes_to_the_same_weights(tmp_path, reference):
    """A real `mobilenet train` process killed with SIGKILL after its first checkpoint; --resume finishes it."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        *shlex.split("-m mobilenet.cli train --out"),
        str(out),
        *shlex.split("--quiet --threads 1 --model mobilenet_v3_small --alpha 0.35 --epochs 2 --batch-size 32"),
        *shlex.split("--train-samples 192 --val-samples 64"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1, "the process must be killed between its first and second checkpoint"
    mobilenet.load(out / "last.safetensors")  # the checkpoint on disk is whole
    done = subprocess.run([*command[:3], "train", "--out", str(out), "--resume", "--quiet"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert_same_weights(out / "last.safetensors", reference[0] / "last.safetensors")


def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = tiny(tmp_path, epochs=3)
    original_forward = mobilenet.MobileNet.forward_head
    calls = {"n": 0}

    def nan_in_epoch_2(self, x):
        calls["n"] += 1
        out = original_forward(self, x)
        return out * float("nan") if self.training and calls["n"] > 8 else out

    monkeypatch.setattr(mobilenet.MobileNet, "forward_head", nan_in_epoch_2)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2"):
        train(config, progress=False)
    state = torch.load(tmp_path / "run" / "last.state.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 0)  # the end of epoch 1: untouched by the failure
    mobilenet.load(tmp_path / "run" / "last.safetensors")


def test_cli_exit_code_on_divergence(tmp_path):
    code = subprocess.run(
        [
            sys.executable,
            *shlex.split("-m mobilenet.cli train --out"),
            str(tmp_path / "r"),
            *shlex.split("--quiet --model mobilenet_v3_small --alpha 0.35 --epochs 1 --train-samples 64"),
            *shlex.split("--val-samples 32 --batch-size 32 --lr 1e30 --no-bf16 --threads 1"),
        ],
        capture_output=True,
        text=True,
    )
    assert code.returncode == 1
    assert "loss became" in code.stderr


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(tmp_path, reference):
    with pytest.raises(FileExistsError, match="--resume"):
        train(TrainConfig(out=str(reference[0]), **TINY), progress=False)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(TrainConfig(out=str(tmp_path / "empty")), resume=True, progress=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "lamb"}, "optimizer"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_bad_configuration(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(tmp_path, **overrides)


def test_batch_larger_than_the_data(tmp_path):
    with pytest.raises(ValueError, match="cannot fill one batch"):
        train(tiny(tmp_path, batch_size=512), progress=False)


def test_weight_decay_skips_bn_and_biases():
    model = mobilenet.create_model("mobilenet_v3_small", alpha=0.5, num_classes=10)
    decay, no_decay = _param_groups(model, 1e-4)
    assert all(p.ndim == 4 or p.ndim == 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_learning_rate_schedule():
    assert learning_rate(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert learning_rate(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert learning_rate(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert learning_rate(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert learning_rate(100, 100, 10, 1.0) == pytest.approx(0.0)


def test_eval_cli(tmp_path, reference, capsys):
    from mobilenet.cli import main

    plot = tmp_path / "confusion.png"
    code = main(["eval", str(reference[0] / "best.safetensors"), "--json", "--plot", str(plot)])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["samples"] == 10_000
    assert data["top1"] == pytest.approx(reference[1]["test_best"]["top1"])
    assert 0 <= data["top1"] <= data["top5"] <= 100
    assert len(data["per_class"]) == 10
    assert sum(map(sum, data["confusion"])) == 10_000
    assert plot.stat().st_size > 10_000


def test_eval_refuses_a_mismatched_dataset(reference, capsys):
    from mobilenet.cli import main

    code = main(["eval", str(reference[0] / "best.safetensors"), "--dataset", "cifar10"])
    assert code == 2


def test_two_processes_with_torchrun_hold_identical_weights(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        *shlex.split("-m torch.distributed.run --standalone --nproc-per-node 2 -m mobilenet.cli train --out"),
        str(out),
        *shlex.split("--quiet --threads 1 --model mobilenet_v3_small --alpha 0.35 --epochs 1 --batch-size 16"),
        *shlex.split("--train-samples 128 --val-samples 32"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["processes"] == 2
    assert result["rank_max_param_difference"] == 0.0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # rank 0 alone logs


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_a_copied_run_resumes_into_its_own_folder_only(tmp_path, reference, monkeypatch):
    """`cp -a RUNA RUNB; train --out RUNB --resume` must write into RUNB and leave RUNA as it was, ending with the
    weights of an uninterrupted run (RUNA's config.json still names RUNA as its `out`)."""
    import shutil

    interrupted_at_step(tiny(tmp_path, name="a"), 8, monkeypatch)  # in epoch 2 (6 steps an epoch)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.move(tmp_path / "b", tmp_path / "moved")  # moved, too: nothing may depend on where it was made
    before = _snapshot(tmp_path / "a")
    monkeypatch.chdir(tmp_path / "moved")  # and resumed from another working directory
    result = train(TrainConfig(out=str(tmp_path / "moved")), resume=True, progress=False)
    assert _snapshot(tmp_path / "a") == before
    assert (tmp_path / "moved" / "result.json").is_file()
    assert result["config"]["out"] == str(tmp_path / "moved")
    assert_same_weights(tmp_path / "moved" / "last.safetensors", reference[0] / "last.safetensors")


def test_resume_refuses_options_it_would_ignore(tmp_path, reference, capsys):
    from mobilenet.cli import main

    code = main(["train", "--out", str(reference[0]), "--resume", "--epochs", "3", "--lr", "0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--epochs, --lr cannot change it" in err
    assert err.count("\n") == 1


def test_metrics_log_is_not_written_through_a_symbolic_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(ValueError, match=r"metrics\.jsonl is a symbolic link"):
        train(tiny(tmp_path, epochs=1), progress=False)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.jsonl"]  # refused before training
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"padding": -1}, r"padding must be >= 0, got -1"),
        ({"num_threads": 0}, r"num_threads must be >= 1, got 0"),
        ({"image_size": 0}, r"image_size must be 1\.\.4096, got 0"),
        ({"momentum": float("nan")}, r"momentum must be \[0, 1\), got nan"),
        ({"weight_decay": -0.1}, r"weight_decay must be >= 0"),
        ({"batch_size": "32"}, r"batch_size must be >= 1, got '32'"),
    ],
)
def test_every_numeric_option_has_a_range(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(tmp_path, **overrides)


def test_an_output_folder_that_cannot_be_written_fails_before_training(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(trainer_module, "_Run", lambda *a, **k: pytest.fail("started before checking the folder"))
    with pytest.raises(ValueError, match=r"the run folder: .*file is a file, not a folder"):
        train(TrainConfig(out=str(tmp_path / "file" / "run"), **TINY), progress=False)
