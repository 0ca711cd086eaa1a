"""Hypothesis strategies and pure-Python references shared by the unit tests of the core.

The references are written straight from RFC 7386 so that the native code is checked
against an independent model. Python's ``1 == 1.0 == True`` would hide type changes, so
results are compared with :func:`tagged`, which keeps bool, int and float apart.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Native calls are fast but the sanitizer build is not: no per-example deadline.
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# A few keys, so that patches and paths often meet the document's keys; now and then a
# key that needs escaping in a JSON Pointer.
keys = st.sampled_from(["a", "b", "c", "x", "y"]) | st.sampled_from(["", "a/b", "m~n", "é"])

ints = st.integers(INT64_MIN, INT64_MAX)
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | ints | floats | st.text(max_size=8)

# Arrays are leaves: they may hold null and nest, and are replaced whole.
arrays = st.recursive(st.lists(scalars, max_size=3), lambda inner: st.lists(inner, max_size=3), max_leaves=6)

# A document leaf: never null (null means "delete" in a merge patch).
leaves = st.booleans() | ints | floats | st.text(max_size=8) | arrays


def _maps(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.recursive(
        st.dictionaries(keys, values, max_size=4),
        lambda inner: st.dictionaries(keys, values | inner, max_size=4),
        max_leaves=12,
    )


# A document: nested maps without null members.
documents = _maps(leaves)
# A merge patch: nested maps where null deletes.
patches = _maps(leaves | st.none())
# Any value a patch may be applied at a path: a map, a leaf, or null.
patch_values = patches | leaves | st.none()
paths = st.lists(keys, max_size=3)


def pointer(path: list[str]) -> str:
    """Returns the JSON Pointer (RFC 6901) of `path`."""
    return "".join("/" + k.replace("~", "~0").replace("/", "~1") for k in path)


def tagged(v: Any) -> Any:
    """Returns `v` with every scalar tagged by its type, for type-strict comparison."""
    if isinstance(v, dict):
        return {k: tagged(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return ["list", [tagged(x) for x in v]]
    return (type(v).__name__, v)


def ref_apply(target: Any, patch: Any) -> Any:
    """MergePatch(Target, Patch) from RFC 7386 section 2; returns a new value."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = ref_apply(result.get(name), value)
    return result


def ref_diff(a: Any, b: Any) -> Any:
    """Returns the minimal merge patch from `a` to `b` (type-strict: 1 and 1.0 differ)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return b
    patch: dict[str, Any] = {k: None for k in a if k not in b}
    for k, v in b.items():
        if k not in a:
            patch[k] = v
        elif isinstance(a[k], dict) and isinstance(v, dict):
            sub = ref_diff(a[k], v)
            if sub:
                patch[k] = sub
        elif tagged(a[k]) != tagged(v):
            patch[k] = v
    return patch


def ref_document_apply(doc: dict[str, Any], path: list[str], patch: Any) -> dict[str, Any]:
    """What Document.apply(patch, pointer(path)) does, returning the new document.

    The patch is merged at `path` as if nested under it ({p0: {p1: patch}}), except that
    deleting (patch None) below a location that is missing or not a map changes nothing.
    """
    if patch is None:
        parent: Any = doc
        for k in path[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or path[-1] not in parent:
            return doc
    wrapped = patch
    for k in reversed(path):
        wrapped = {k: wrapped}
    return ref_apply(doc, wrapped)
