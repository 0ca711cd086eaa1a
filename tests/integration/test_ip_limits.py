"""Per-address limits (connections, joins) under connections arriving on every I/O thread at
once: the counts are shared between threads, so they must hold exactly, not roughly."""

from __future__ import annotations

import threading

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from wire import Wire

pytestmark = pytest.mark.tsan

LIMIT = 8
ATTEMPTS = 24


def test_connections_and_joins_per_address_from_many_threads(make_server) -> None:
    server = make_server(threads=2, max_connections_per_ip=LIMIT, join_rate_per_ip=0.001,
                         join_burst_per_ip=5)
    barrier = threading.Barrier(ATTEMPTS)
    lock = threading.Lock()
    opened: list[Wire] = []
    refused: list[BaseException] = []
    answers: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            wire = Wire(server.url)
        except (InvalidHandshake, ConnectionClosed, EOFError, OSError) as err:
            with lock:
                refused.append(err)
            return
        with lock:
            opened.append(wire)
        wire.send({"type": "JOIN_ROOM", "roomId": f"ip-{i % 3}", "requestId": i})
        answer = wire.recv()
        while answer["type"] not in ("FULL_STATE", "ERROR"):
            answer = wire.recv()
        with lock:
            answers.append(answer["type"] if answer["type"] == "FULL_STATE"
                           else answer["payload"]["code"])

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(ATTEMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        # Nobody closes before the end: exactly LIMIT were let in.
        assert len(opened) == LIMIT
        assert len(opened) + len(refused) == ATTEMPTS
        assert sorted(answers) == ["FULL_STATE"] * 5 + ["RATE_LIMITED"] * (LIMIT - 5)
    finally:
        for w in opened:
            w.close()
