import json
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """Latency caches and latency models go to a folder of the test session, never the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOBILENET_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def torchvision_fixture(name: str) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, dict[str, str]]:
    """(torchvision state dict, input, torchvision's eval-mode output, metadata) of a shared reference file."""
    from mobilenet.weights import read_safetensors

    tensors, metadata = read_safetensors(FIXTURES / name)
    state = {key.removeprefix("state."): value for key, value in tensors.items() if key.startswith("state.")}
    return state, tensors["input"], tensors["output"], metadata


def strict_json(text: str) -> object:
    """`text` read as JSON the way a browser or jq reads it: NaN and Infinity, which Python writes but JSON has no
    words for, are refused."""

    def refuse(word: str) -> None:
        raise ValueError(f"{word} is not JSON")

    return json.loads(text, parse_constant=refuse)
