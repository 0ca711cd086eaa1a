"""Every public name of the package has a docstring (issue 5: "docstrings on every public
name"), methods and properties of public classes included: in every module of kasagi that
declares ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import kasagi


def _modules() -> list[str]:
    """``kasagi`` and each of its modules with ``__all__`` (private ones, ``_core`` and
    ``__main__``, left out)."""
    found = ["kasagi"]
    for info in pkgutil.walk_packages(kasagi.__path__, "kasagi."):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        if hasattr(importlib.import_module(info.name), "__all__"):
            found.append(info.name)
    return found


def _public(module: ModuleType) -> list[tuple[str, object]]:
    out = []
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            out.append((f"{module.__name__}.{name}", obj))
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    target = value.fget if isinstance(value, property) else value
                    target = getattr(target, "__func__", target)
                    if not member.startswith("_") and callable(target):
                        out.append((f"{module.__name__}.{name}.{member}", target))
    return out


def test_every_module_with_all_is_checked() -> None:
    # The list below is found, not written: a new module is checked without a change here.
    names = _modules()
    for expected in ("kasagi.rooms", "kasagi.client", "kasagi.config", "kasagi.cli",
                     "kasagi.mirror", "kasagi.server", "kasagi.trace", "kasagi.trace.load",
                     "kasagi.testing", "kasagi.testing.scenario"):
        assert expected in names


@pytest.mark.parametrize("name", _modules())
def test_every_public_name_has_a_docstring(name: str) -> None:
    module = importlib.import_module(name)
    missing = [name for name, obj in _public(module) if not inspect.getdoc(obj)]
    assert not missing
