"""kasagi.mirror: RFC 7386 merge patch in pure Python, and RoomMirror's delta rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kasagi.mirror import RoomMirror, merge_patch, merge_patch_diff, merge_patch_in_place

# RFC 7386, Appendix A: (original, patch, result).
RFC7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
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


@pytest.mark.parametrize(("original", "patch", "result"), RFC7386_EXAMPLES)
def test_rfc7386_appendix_a(original: Any, patch: Any, result: Any) -> None:
    before = copy.deepcopy(original)
    patch_before = copy.deepcopy(patch)
    assert merge_patch(original, patch) == result
    assert original == before and patch == patch_before  # inputs untouched


@pytest.mark.parametrize(("original", "patch", "result"), RFC7386_EXAMPLES)
def test_rfc7386_appendix_a_in_place(original: Any, patch: Any, result: Any) -> None:
    target = copy.deepcopy(original)
    out = merge_patch_in_place(target, patch)
    assert out == result
    if isinstance(original, dict) and isinstance(patch, dict):
        assert out is target  # modified in place


def test_rfc7386_section_3_example() -> None:
    original = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert merge_patch(original, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_result_does_not_alias_the_patch() -> None:
    patch = {"a": {"b": [1, {"c": 2}]}}
    out = merge_patch_in_place({}, patch)
    out["a"]["b"][1]["c"] = 3
    assert patch == {"a": {"b": [1, {"c": 2}]}}


def test_int_and_float_are_kept_apart() -> None:
    out = merge_patch({"x": 1}, {"x": 1.0})
    assert type(out["x"]) is float
    assert merge_patch_diff({"x": 1}, {"x": 1.0}) == {"x": 1.0}
    assert merge_patch_diff({"x": True}, {"x": 1}) == {"x": 1}
    assert merge_patch_diff({"x": 1}, {"x": 1}) == {}


def test_diff_examples() -> None:
    assert merge_patch_diff({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 2, "d": 4}, "e": [1]}) == {
        "a": None,
        "b": {"d": 4},
        "e": [1],
    }
    assert merge_patch_diff({"a": [1, 2]}, {"a": [1, 2]}) == {}
    assert merge_patch_diff({"a": [1, 2]}, {"a": [1, 3]}) == {"a": [1, 3]}  # arrays are leaves
    assert merge_patch_diff({"a": {"b": 1}}, {"a": 5}) == {"a": 5}


# ----------------------------------------------------------------------------------------
# Properties

_keys = st.sampled_from(["a", "b", "c", "players", "x"])
_leaves = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
_arrays = st.lists(_leaves | st.none(), max_size=3)
# Documents as the protocol has them: no None inside maps.
documents = st.recursive(
    st.dictionaries(_keys, _leaves | _arrays, max_size=4),
    lambda children: st.dictionaries(_keys, _leaves | _arrays | children, max_size=4),
    max_leaves=20,
)
patches = st.recursive(
    st.dictionaries(_keys, _leaves | _arrays | st.none(), max_size=4),
    lambda children: st.dictionaries(_keys, _leaves | _arrays | st.none() | children, max_size=4),
    max_leaves=20,
)


def _typed(value: Any) -> Any:
    """A comparable form that tells 1, 1.0 and True apart."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@settings(max_examples=300, deadline=None)
@given(documents, documents)
def test_diff_then_apply_gives_the_target(source: dict[str, Any], target: dict[str, Any]) -> None:
    patch = merge_patch_diff(source, target)
    assert _typed(merge_patch(source, patch)) == _typed(target)


@settings(max_examples=300, deadline=None)
@given(documents, patches)
def test_in_place_equals_copying(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    expected = merge_patch(doc, patch)
    assert _typed(merge_patch_in_place(copy.deepcopy(doc), patch)) == _typed(expected)


@settings(max_examples=300, deadline=None)
@given(documents, patches)
def test_agrees_with_the_native_core(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    from kasagi import _core

    assert _typed(merge_patch(doc, patch)) == _typed(_core.merge_patch_apply(doc, patch))


# ----------------------------------------------------------------------------------------
# RoomMirror


def full_state(version: int, state: dict[str, Any], epoch: str = "e1") -> dict[str, Any]:
    return {
        "type": "FULL_STATE",
        "roomId": "r",
        "payload": {"state": state, "playerId": "p1", "sessionToken": "tok"},
        "version": version,
        "tick": 7,
        "epoch": epoch,
    }


def delta(base: int, version: int, patch: dict[str, Any], epoch: str = "e1") -> dict[str, Any]:
    return {
        "type": "DELTA_UPDATE",
        "roomId": "r",
        "payload": patch,
        "version": version,
        "baseVersion": base,
        "tick": 8,
        "epoch": epoch,
    }


def test_full_state_sets_everything() -> None:
    mirror = RoomMirror("r")
    assert not mirror.synced and mirror.version is None and mirror.me is None
    msg = full_state(3, {"players": {"p1": {"x": 1}}})
    mirror.apply_full_state(msg)
    assert (mirror.version, mirror.tick, mirror.epoch) == (3, 7, "e1")
    assert (mirror.player_id, mirror.session_token) == ("p1", "tok")
    assert mirror.synced and mirror.me == {"x": 1} and mirror.players == {"p1": {"x": 1}}
    assert list(mirror.versions) == [3]
    # The mirror owns its state: later in-place deltas leave the message untouched.
    mirror.apply_delta(delta(3, 4, {"players": {"p1": {"x": 2}}}))
    assert msg["payload"]["state"] == {"players": {"p1": {"x": 1}}}


def test_deltas_apply_in_version_order() -> None:
    mirror = RoomMirror("r")
    mirror.apply_full_state(full_state(1, {"players": {"p1": {}}}))
    assert mirror.apply_delta(delta(1, 2, {"players": {"p2": {"n": "bob"}}}))
    assert mirror.apply_delta(delta(2, 5, {"players": {"p1": {"x": 1.5}, "p2": None}}))
    assert mirror.state == {"players": {"p1": {"x": 1.5}}}
    assert mirror.version == 5 and mirror.tick == 8
    assert list(mirror.versions) == [1, 2, 5]
    assert (mirror.full_states, mirror.deltas) == (1, 2)
    assert not mirror.rejected


def test_gap_is_refused_and_leaves_the_state_alone() -> None:
    mirror = RoomMirror("r")
    mirror.apply_full_state(full_state(1, {"players": {}}))
    assert not mirror.apply_delta(delta(2, 3, {"x": 1}))
    assert mirror.check_delta(delta(2, 3, {})) == "gap"
    assert mirror.version == 1 and mirror.state == {"players": {}}
    assert list(mirror.rejected) == [("gap", 2, 3)]


def test_stale_delta_is_refused() -> None:
    mirror = RoomMirror("r")
    mirror.apply_full_state(full_state(5, {}))
    assert mirror.check_delta(delta(3, 4, {})) == "stale"
    assert not mirror.apply_delta(delta(3, 4, {"x": 1}))
    assert mirror.state == {}


def test_epoch_change_is_refused_even_when_versions_line_up() -> None:
    mirror = RoomMirror("r")
    mirror.apply_full_state(full_state(4, {}))
    assert mirror.check_delta(delta(4, 5, {}, epoch="e2")) == "epoch"
    assert not mirror.apply_delta(delta(4, 5, {"x": 1}, epoch="e2"))
    # A FULL_STATE of the new epoch is adopted, and its deltas apply.
    mirror.apply_full_state(full_state(9, {"y": 1}, epoch="e2"))
    assert mirror.apply_delta(delta(9, 10, {"x": 1}, epoch="e2"))
    assert mirror.state == {"y": 1, "x": 1} and mirror.epoch == "e2"


def test_delta_before_any_full_state_is_refused() -> None:
    mirror = RoomMirror("r")
    assert mirror.check_delta(delta(0, 1, {})) == "no-state"
    assert not mirror.apply_delta(delta(0, 1, {"x": 1}))


def test_full_state_clears_a_pending_resync() -> None:
    mirror = RoomMirror("r")
    mirror.apply_full_state(full_state(1, {}))
    mirror.resync_pending = True
    assert not mirror.synced
    mirror.apply_full_state(full_state(6, {"z": 0}))
    assert mirror.synced and mirror.state == {"z": 0} and list(mirror.versions) == [1, 6]


def test_history_is_bounded() -> None:
    mirror = RoomMirror("r", history=3)
    mirror.apply_full_state(full_state(0, {}))
    for v in range(1, 10):
        assert mirror.apply_delta(delta(v - 1, v, {"n": v}))
    assert list(mirror.versions) == [7, 8, 9]
