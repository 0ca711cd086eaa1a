"""The delta engine, through kasagi._core.Document.

The invariant: after any sequence of apply() calls, take_delta() applied to the state at
the previous take_delta() gives the state now, and is the minimal such patch.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kasagi import _core

try:
    from .strategies import (
        SETTINGS,
        documents,
        patch_values,
        paths,
        pointer,
        ref_apply,
        ref_diff,
        ref_document_apply,
        tagged,
    )
except ImportError:  # tests/unit is not a package
    from strategies import (
        SETTINGS,
        documents,
        patch_values,
        paths,
        pointer,
        ref_apply,
        ref_diff,
        ref_document_apply,
        tagged,
    )

# One write: a path and a value to merge there (never a non-map at the root).
writes = st.tuples(paths, patch_values).filter(lambda w: w[0] or isinstance(w[1], dict))
batches = st.lists(writes, max_size=8)


def run_batch(doc: _core.Document, model: dict, batch) -> dict:
    """Applies `batch` to `doc` and to the reference `model`; returns the new model."""
    for path, patch in batch:
        before = model
        model = ref_document_apply(model, path, patch)
        changed = doc.apply(patch, pointer(path))
        assert changed == (tagged(model) != tagged(before))
        assert tagged(doc.state) == tagged(model)
    return model


def check_delta(before: dict, after: dict, delta: dict) -> None:
    assert tagged(ref_apply(copy.deepcopy(before), delta)) == tagged(after)
    assert tagged(delta) == tagged(ref_diff(before, after))
    assert tagged(delta) == tagged(_core.merge_patch_diff(before, after))


@SETTINGS
@given(documents, st.lists(batches, min_size=1, max_size=3))
def test_delta_takes_the_previous_state_to_the_current_one(initial, batch_list):
    doc = _core.Document(initial)
    model = initial
    for batch in batch_list:
        before = model
        model = run_batch(doc, model, batch)
        check_delta(before, model, doc.take_delta())
    assert doc.take_delta() == {}


def test_coalescing_keeps_only_the_last_value():
    doc = _core.Document({"players": {"p1": {"x": 0}}})
    for x in (1, 2, 3):
        assert doc.apply({"x": x}, "/players/p1")
    assert doc.take_delta() == {"players": {"p1": {"x": 3}}}


def test_tick_after_tick_on_the_same_fields():
    # The engine keeps the locations one tick wrote for the next: what an earlier tick
    # tracked must never show in a later delta, whatever happened to it since.
    doc = _core.Document({"players": {"p1": {"x": 0, "y": 0}}})
    for x in (1, 2):
        assert doc.apply({"x": x, "y": -x}, "/players/p1")
        assert doc.take_delta() == {"players": {"p1": {"x": x, "y": -x}}}
    assert doc.apply({"y": 9}, "/players/p1")
    assert doc.take_delta() == {"players": {"p1": {"y": 9}}}
    assert doc.take_delta() == {}
    assert doc.apply(None, "/players/p1")
    assert doc.take_delta() == {"players": {"p1": None}}
    assert doc.apply({"x": 5}, "/players/p1")
    assert doc.apply({"p2": 1}, "/players")
    assert doc.take_delta() == {"players": {"p1": {"x": 5}, "p2": 1}}
    assert doc.apply(7, "/players/p1")
    assert doc.take_delta() == {"players": {"p1": 7}}


def test_change_and_revert_gives_an_empty_delta():
    doc = _core.Document({"a": {"b": 1}, "c": "keep"})
    assert doc.apply({"a": {"b": 2}, "d": True})
    assert doc.apply({"a": {"b": 1}, "d": None})
    assert doc.take_delta() == {}


def test_map_replaced_by_a_scalar_then_by_a_map_again():
    doc = _core.Document({"a": {"x": 1, "y": 2}})
    assert doc.apply({"a": 5})
    assert doc.apply({"x": 1, "z": 3}, "/a")
    assert doc.state == {"a": {"x": 1, "z": 3}}
    assert doc.take_delta() == {"a": {"y": None, "z": 3}}


def test_writes_below_a_captured_location():
    doc = _core.Document({"a": {"b": {"c": 1, "d": 2}}})
    assert doc.apply({"b": 5}, "/a")  # captures /a/b
    assert doc.apply({"c": 7}, "/a/b")  # the scalar becomes a map: no second capture
    assert doc.apply({"d": 8}, "/a/b")
    assert doc.take_delta() == {"a": {"b": {"c": 7, "d": 8}}}


def test_capture_folds_the_captures_below_it():
    doc = _core.Document({"a": {"b": {"c": 1, "d": 2}}})
    assert doc.apply({"c": 9}, "/a/b")  # captures /a/b/c
    assert doc.apply({"e": 1}, "/a/b")  # captures /a/b/e (did not exist)
    assert doc.apply(None, "/a/b")  # captures /a/b: its old value must be {c: 1, d: 2}
    assert doc.apply({"d": 2}, "/a/b")
    assert doc.take_delta() == {"a": {"b": {"c": None}}}


def test_capture_above_earlier_captures_restores_their_old_values():
    doc = _core.Document({"a": {"b": 1, "c": {"d": 2}}})
    assert doc.apply({"b": 10, "c": {"d": 20, "e": 3}}, "/a")
    assert doc.apply({"a": "scalar"})
    assert doc.apply({"a": {"b": 1, "c": {"d": 2}}})
    assert doc.take_delta() == {}


def test_deleting_a_missing_key_changes_nothing():
    doc = _core.Document({"a": {"b": 1}})
    assert not doc.apply(None, "/a/zz")
    assert not doc.apply(None, "/missing/zz")
    assert not doc.apply(None, "/a/b/below-a-scalar")
    assert not doc.apply({"zz": None}, "/a")
    assert doc.take_delta() == {}
    assert doc.state == {"a": {"b": 1}}


def test_writing_an_equal_value_changes_nothing():
    doc = _core.Document({"a": {"b": [1, {"c": None}]}})
    assert not doc.apply({"b": [1, {"c": None}]}, "/a")
    assert not doc.apply({})
    assert doc.take_delta() == {}


def test_intermediate_scalar_is_replaced_by_a_map():
    doc = _core.Document({"a": 1})
    assert doc.apply(2, "/a/b/c")
    assert doc.state == {"a": {"b": {"c": 2}}}
    assert doc.take_delta() == {"a": {"b": {"c": 2}}}


def test_missing_intermediates_are_created():
    doc = _core.Document()
    assert doc.apply({"x": 1, "y": None}, "/players/p1")
    assert doc.state == {"players": {"p1": {"x": 1}}}
    assert doc.take_delta() == {"players": {"p1": {"x": 1}}}


def test_deleting_a_subtree():
    doc = _core.Document({"players": {"p1": {"x": 1}, "p2": {"x": 2}}})
    assert doc.apply(None, "/players/p1")
    assert doc.take_delta() == {"players": {"p1": None}}
    assert doc.state == {"players": {"p2": {"x": 2}}}


def test_arrays_are_leaves():
    doc = _core.Document({"a": [1, 2, 3]})
    assert doc.apply({"a": [1, 2, 4]})
    assert doc.take_delta() == {"a": [1, 2, 4]}


def test_pointer_escapes():
    doc = _core.Document()
    assert doc.apply(1, "/a~1b/c~0d")
    assert doc.apply(2, "/")
    assert doc.state == {"a/b": {"c~d": 1}, "": 2}


@pytest.mark.parametrize("bad", ["a", "/a~2", "/a~", "~1"])
def test_malformed_pointer_is_refused(bad):
    doc = _core.Document()
    with pytest.raises(ValueError, match="JSON Pointer"):
        doc.apply(1, bad)


@pytest.mark.parametrize("patch", [1, None, [1], "x"])
def test_non_map_patch_at_the_root_is_refused(patch):
    doc = _core.Document({"a": 1})
    with pytest.raises(ValueError, match="root"):
        doc.apply(patch)
    assert doc.state == {"a": 1}


def test_initial_state_drops_null_members_and_is_the_baseline():
    doc = _core.Document({"a": None, "b": {"c": None, "d": 1}})
    assert doc.state == {"b": {"d": 1}}
    assert doc.take_delta() == {}


def test_state_is_a_copy():
    doc = _core.Document({"a": {"b": 1}})
    doc.state["a"]["b"] = 2
    assert doc.state == {"a": {"b": 1}}


def test_initial_must_be_a_dict():
    with pytest.raises(TypeError):
        _core.Document([1])  # type: ignore[arg-type]
