"""The README's and the docs' Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def test_library_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(block for block in blocks if "create_model" in block)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(example, str(README), "exec"), namespace)
    assert (tmp_path / "v2.safetensors").is_file()
    assert namespace["same"].config == namespace["model"].config
    assert [f.shape[1] for f in (namespace["c2"], namespace["c3"], namespace["c4"], namespace["c5"])] == [
        24,
        32,
        96,
        320,
    ]


def test_cost_example_runs_and_its_comments_are_true():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(block for block in blocks if "profile(" in block)
    namespace: dict[str, object] = {}
    exec(compile(example, str(README), "exec"), namespace)
    report = namespace["report"]
    assert f"{report.macs:,} / {report.params:,} / {report.receptive_field}" in example


def test_quick_start_is_what_ci_runs_and_the_cli_accepts():
    import shlex

    from mobilenet.cli import build_parser

    blocks = [block.strip() for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)]
    main_job = next(block for block in blocks if block.startswith("bash scripts/setup.sh && "))
    program, *args = shlex.split(main_job.split("&&", 1)[1])
    assert program == ".venv/bin/mobilenet"
    parsed = build_parser().parse_args(args)  # every flag of the main job exists
    assert parsed.verb == "report"
    test_command = next(block for block in blocks if "pytest" in block)
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci
    assert "bash scripts/setup.sh" in ci


def _torchvision_v2_checkpoint(path: Path) -> None:
    """A state dict in torchvision's MobileNetV2 layout (what `torchvision.models.mobilenet_v2().state_dict()` holds),
    made from our model through the key map the converter uses: the README's file, without downloading it."""
    import torch

    import mobilenet
    from mobilenet.convert import torchvision_key_map

    model = mobilenet.create_model("mobilenet_v2")
    ours = model.state_dict()
    torch.save({theirs: ours[key] for key, theirs in torchvision_key_map(model.arch)}, path)


# README.md and every page of docs/ that holds a Python block; its blocks run in order, in one namespace, as a reader
# would run them.
DOCUMENTS = [d for d in [README, *sorted((README.parent / "docs").glob("*.md"))] if "```python" in d.read_text()]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_python_block_runs(document, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", document.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    _torchvision_v2_checkpoint(tmp_path / "mobilenet_v2-b0353104.pth")
    namespace: dict[str, object] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"{document.name}, Python block {index + 1}", "exec"), namespace)
