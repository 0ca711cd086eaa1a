"""kasagi.trace.state_at on a hand-written trace: a tick that coalesced several versions into
one delta leaves no document for the versions inside it, and the error says which to ask."""

from __future__ import annotations

import io

import pytest

from kasagi import trace

pytest.importorskip("pandas")


def _coalesced_trace() -> trace.Trace:
    out = io.BytesIO()
    writer = trace.TraceWriter(out, source="server", instance="unit")
    writer.write(kind="state", room="r", version=1, tick=1, epoch=1, state={"players": {}})
    writer.write(kind="delta", room="r", version=2, baseVersion=1, tick=2, epoch=1,
                 bytes={"json": 1, "msgpack": 1}, paths=["/players/a"],
                 patch={"players": {"a": {"x": 1}}})
    # One tick's three updates: versions 3 and 4 never reached the wire.
    writer.write(kind="delta", room="r", version=5, baseVersion=2, tick=3, epoch=1,
                 bytes={"json": 1, "msgpack": 1}, paths=["/players/a/x"],
                 patch={"players": {"a": {"x": 4}}})
    writer.close()
    return trace.load([out.getvalue()])


def test_state_at_the_versions_deltas_end_at() -> None:
    t = _coalesced_trace()
    assert trace.state_at(t, "r", 1) == {"players": {}}
    assert trace.state_at(t, "r", 2) == {"players": {"a": {"x": 1}}}
    assert trace.state_at(t, "r") == trace.state_at(t, "r", 5) == {"players": {"a": {"x": 4}}}


def test_a_version_inside_a_coalesced_delta_names_the_versions_around_it() -> None:
    t = _coalesced_trace()
    with pytest.raises(ValueError, match=r"version 3 lies inside the delta 2->5.*ask for 2 or 5"):
        trace.state_at(t, "r", 3)
    with pytest.raises(ValueError, match="no recorded delta from version 5"):
        trace.state_at(t, "r", 6)
    with pytest.raises(ValueError, match="no recorded state at or before 0"):
        trace.state_at(t, "r", 0)
