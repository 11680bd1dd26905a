"""Lazy package exports: ``import keel.data`` stays cheap, names load on first use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any],
                 exports: Mapping[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for a package exporting ``exports`` (module -> names).

    A name is imported from its module on first access and cached in ``namespace`` (the
    package's ``globals()``), so later lookups are plain attribute reads.
    """
    where = {name: mod for mod, names in exports.items() for name in names}

    def module_getattr(name: str) -> Any:
        mod = where.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(mod), name)
        namespace[name] = value
        return value

    return module_getattr, sorted(where)
