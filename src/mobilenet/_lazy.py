"""PEP 562 lazy exports for the package roots: a name is imported from its module on first use, so that importing
a package (and `mobilenet --help`) does not pay for torch until something needs it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(namespace: dict[str, object], exports: Mapping[str, str]) -> tuple[Callable, Callable]:
    """The `__getattr__` and `__dir__` of the package whose globals are `namespace`: each name of `exports` comes
    from the module it maps to, imported on first use and then kept in `namespace`."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value  # once: later look-ups do not come here
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
