"""JSON Merge Patch (RFC 7386): kasagi._core.merge_patch_apply and merge_patch_diff."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given

from kasagi import _core

try:
    from .strategies import (
        SETTINGS,
        documents,
        leaves,
        patch_values,
        patches,
        ref_apply,
        ref_diff,
        tagged,
    )
except ImportError:  # tests/unit is not a package
    from strategies import (
        SETTINGS,
        documents,
        leaves,
        patch_values,
        patches,
        ref_apply,
        ref_diff,
        tagged,
    )

# RFC 7386 appendix A: (original, patch, result).
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_EXAMPLES)
def test_rfc7386_appendix_a(original, patch, result):
    assert _core.merge_patch_apply(original, patch) == result


def test_apply_does_not_mutate_inputs():
    target = {"a": {"b": 1}, "c": [1, 2]}
    patch = {"a": {"b": None, "d": 2}, "c": None}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    _core.merge_patch_apply(target, patch)
    assert target == target_before
    assert patch == patch_before


def test_ints_floats_and_bools_stay_distinct():
    result = _core.merge_patch_apply({"i": 1, "f": 1.0, "b": True}, {"i": 1.0, "f": 1, "b": 1})
    assert tagged(result) == tagged({"i": 1.0, "f": 1, "b": 1})
    assert _core.merge_patch_diff({"a": 1}, {"a": 1.0}) == {"a": 1.0}
    assert isinstance(_core.merge_patch_diff({"a": 1}, {"a": 1.0})["a"], float)
    assert _core.merge_patch_diff({"a": 1}, {"a": True}) == {"a": True}
    assert _core.merge_patch_diff({"a": True}, {"a": True}) == {}


def test_diff_examples():
    assert _core.merge_patch_diff({}, {}) == {}
    assert _core.merge_patch_diff(
        {"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2, "d": 4}, "e": [1]}
    ) == {
        "a": None,
        "b": {"d": 4},
        "e": [1],
    }
    # A map replaced by a scalar and the other way round are whole replacements.
    assert _core.merge_patch_diff({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert _core.merge_patch_diff({"a": 2}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    # Arrays are leaves: replaced whole, never diffed.
    assert _core.merge_patch_diff({"a": [1, 2]}, {"a": [1, 3]}) == {"a": [1, 3]}
    # When either side is not a map, the patch is the target itself.
    assert _core.merge_patch_diff(1, 1) == 1
    assert _core.merge_patch_diff({"a": 1}, [1]) == [1]
    assert _core.merge_patch_diff("x", {"a": 1}) == {"a": 1}


def test_int64_bounds_and_conversion_errors():
    big = {"a": 2**63 - 1, "b": -(2**63)}
    assert _core.merge_patch_apply({}, big) == big
    with pytest.raises(ValueError, match="int64"):
        _core.merge_patch_apply({}, {"a": 2**63})
    with pytest.raises(ValueError, match="int64"):
        _core.merge_patch_apply({}, {"a": -(2**63) - 1})
    with pytest.raises(ValueError, match="non-finite"):
        _core.merge_patch_apply({}, {"a": math.nan})
    with pytest.raises(ValueError, match="non-finite"):
        _core.merge_patch_diff({}, {"a": [math.inf]})
    with pytest.raises(TypeError, match="bytes"):
        _core.merge_patch_apply({}, {"a": b"x"})
    with pytest.raises(TypeError, match="keys must be str"):
        _core.merge_patch_apply({}, {1: "x"})
    with pytest.raises(TypeError):
        _core.merge_patch_apply({}, {"a": {1, 2}})


def test_tuples_become_lists_and_bools_stay_bools():
    result = _core.merge_patch_apply({}, {"t": (1, (True, None)), "b": False})
    assert tagged(result) == tagged({"t": [1, [True, None]], "b": False})


@SETTINGS
@given(documents, documents)
def test_apply_of_diff_gives_target(a, b):
    assert tagged(_core.merge_patch_apply(a, _core.merge_patch_diff(a, b))) == tagged(b)


@SETTINGS
@given(documents, documents)
def test_diff_is_minimal(a, b):
    assert tagged(_core.merge_patch_diff(a, b)) == tagged(ref_diff(a, b))


@SETTINGS
@given(documents)
def test_diff_of_equal_documents_is_empty(a):
    assert _core.merge_patch_diff(a, copy.deepcopy(a)) == {}


@SETTINGS
@given(documents | leaves, patch_values)
def test_apply_matches_reference(target, patch):
    assert tagged(_core.merge_patch_apply(target, patch)) == tagged(ref_apply(target, patch))


@SETTINGS
@given(documents | leaves, patches)
def test_apply_is_idempotent(target, patch):
    once = _core.merge_patch_apply(target, patch)
    assert tagged(_core.merge_patch_apply(once, patch)) == tagged(once)
