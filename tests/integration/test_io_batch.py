"""io_batch_wait: a busy I/O thread gathers work before it looks again; a thread that is not
busy answers a lone request at once."""

from __future__ import annotations

import time

from wire import Wire


def test_a_lone_request_is_not_delayed_by_the_batch_wait(make_server):
    # A 100 ms wait (the cap at tick 0.2 Hz is 2 % of 5 s). A thread that slept after every
    # pass that ran anything would sleep after each PONG's write completes, so each next
    # PING would wait for it: 20 round trips, 2 s at least.
    server = make_server(io_batch_wait=0.1, tick_rate=0.2, threads=1)
    w = Wire(server.url)
    w.join("calm")
    started = time.monotonic()
    for i in range(20):
        w.send({"type": "PING", "timestamp": i, "requestId": i})
        assert w.expect("PONG")["timestamp"] == i
    assert time.monotonic() - started < 1.0
    w.close()
