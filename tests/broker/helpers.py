"""Helpers of the broker tests: sample records, and waiting for what brokers deliver."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kasagi.testing import metric_value

Make = Callable[..., Any]


def entry(version: int, epoch: str = "e1") -> dict[str, Any]:
    """A log entry whose bytes fields include what text would mangle."""
    return {
        "data": b"\x81\xa1x\x00" + bytes([version]),
        "version": version,
        "base": version - 1,
        "tick": 10 * version,
        "epoch": epoch,
        "sessions": b"\xc0\xff" if version % 2 else b"",
    }


def snapshot(version: int, epoch: str = "e1") -> dict[str, Any]:
    return {
        "data": b"\x80\x00state" + bytes([version]),
        "version": version,
        "tick": 10 * version,
        "epoch": epoch,
        "ts": 1_700_000_000_000 + version,
        "sessions": b"\x81\xa1t\xa1p",
    }


def wait_subscribed(broker: Any, room: str, *subs: Any, timeout: float = 5.0) -> None:
    """Returns once every one of `subs` receives what `broker` publishes on `room` (a Redis
    SUBSCRIBE is confirmed asynchronously), with everything received so far consumed."""
    deadline = time.monotonic() + timeout
    marker = b"marker-" + uuid.uuid4().hex.encode()
    waiting = list(subs)
    while waiting and time.monotonic() < deadline:
        broker.publish(room, marker)
        for sub in list(waiting):
            got = sub.get(0.2)
            while got is not None and got != marker:
                got = sub.get(0.2)
            if got == marker:
                waiting.remove(sub)
    assert not waiting, f"a subscription to {room} never delivered"
    for sub in subs:
        while sub.get(0.05) is not None:
            pass


def received(sub: Any, n: int, timeout: float = 5.0) -> list[Any]:
    out = [sub.get(timeout) for _ in range(n)]
    assert None not in out, f"only {out}"
    return out


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `condition` until it returns something truthy (returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def metric(broker: Any, name: str) -> float:
    return metric_value(broker.metrics(), name)
