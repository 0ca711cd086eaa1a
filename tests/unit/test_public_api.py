"""Every public name of the package has a docstring (issue 5: "docstrings on every public
name"), methods and properties of public classes included."""

from __future__ import annotations

import inspect

import pytest

import kasagi
import kasagi.testing
import kasagi.trace


def _public(module: object) -> list[tuple[str, object]]:
    out = []
    for name in module.__all__:  # type: ignore[attr-defined]
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            out.append((f"{module.__name__}.{name}", obj))  # type: ignore[attr-defined]
            if inspect.isclass(obj):
                for member, value in vars(obj).items():
                    target = value.fget if isinstance(value, property) else value
                    target = getattr(target, "__func__", target)
                    if not member.startswith("_") and callable(target):
                        out.append((f"{module.__name__}.{name}.{member}", target))  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("module", [kasagi, kasagi.trace, kasagi.testing],
                         ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring(module: object) -> None:
    missing = [name for name, obj in _public(module) if not inspect.getdoc(obj)]
    assert not missing
