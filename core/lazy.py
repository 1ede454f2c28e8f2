"""Packages whose names load their module on first use (PEP 562): importing the package costs nothing."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_attributes(package: str, modules: dict[str, str]) -> Callable[[str], object]:
    """A package's ``__getattr__``: ``name`` is imported from ``modules[name]`` once, then a plain attribute."""

    def __getattr__(name: str) -> object:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # once loaded, a plain attribute
        return value

    return __getattr__
