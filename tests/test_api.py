"""The public API the README and docs name: at the package root after a bare `import mobilenet`, loaded on first use."""

import subprocess
import sys

import pytest

import mobilenet


def test_every_exported_name_and_subpackage_resolves():
    assert sorted(mobilenet.__all__) == sorted(mobilenet._EXPORTS)
    for name in mobilenet.__all__:
        assert getattr(mobilenet, name) is not None, name
    for name in mobilenet._SUBMODULES:
        assert getattr(mobilenet, name).__name__ == f"mobilenet.{name}"
    assert set(mobilenet.__all__) | set(mobilenet._SUBMODULES) <= set(dir(mobilenet))


def test_the_names_the_docs_use():
    assert mobilenet.profile("mobilenet_v2").macs == 300_774_272
    assert mobilenet.convert.from_torchvision is mobilenet.from_torchvision
    assert mobilenet.cost.profile is mobilenet.profile
    assert mobilenet.make_config("mobilenet_v2", alpha=0.5).alpha == 0.5


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'prifile'"):
        mobilenet.prifile  # noqa: B018


def test_the_command_line_loads_without_torch():
    """`mobilenet --help` answers without importing torch (its import was most of --help's time: measure with
    `python -X importtime -c 'import mobilenet.cli'`)."""
    code = "import sys, mobilenet.cli; print('torch' in sys.modules, 'onnx' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == ["False", "False"]
    shown = subprocess.run([sys.executable, "-m", "mobilenet.cli", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0
    assert "report" in shown.stdout


def test_a_lazy_export_is_never_shadowed_by_a_submodule_of_its_name():
    """Importing `mobilenet.train.evaluate` as a module would rebind `mobilenet.train.evaluate` to it (the import
    system sets the attribute): no lazily exported name may be a submodule's name too."""
    import importlib
    import pkgutil

    import mobilenet.data
    import mobilenet.deploy
    import mobilenet.train

    for package in (mobilenet, mobilenet.data, mobilenet.deploy, mobilenet.train):
        submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
        for name in submodules:
            importlib.import_module(f"{package.__name__}.{name}")
        exports = package._EXPORTS
        assert not set(exports) & submodules, package.__name__
        for name in exports:
            assert not isinstance(getattr(package, name), type(mobilenet)), f"{package.__name__}.{name}"
