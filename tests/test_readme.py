"""The README's library example runs as written."""

import re
from pathlib import Path

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
