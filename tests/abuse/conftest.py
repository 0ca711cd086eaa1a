"""The abuse suite: cheap attacks over real sockets against ``kasagi serve`` in a subprocess.

Every test follows one pattern (:meth:`Target.withstands`):

1. a server with small limits (ARGS) and a well-behaved *bystander* client in a process of its
   own, connected from another loopback address (127.0.0.2) to a room of its own;
2. the bystander's round-trip latency and the server's RSS (from /proc) are measured;
3. the attack runs over and over from threads of the test process while the bystander
   measures again; every attempt must get the documented answer (a close code, an HTTP
   status, an ERROR);
4. RSS, sampled all along, must never have grown by RSS_BOUND or more (ASan builds excepted:
   their allocator quarantines freed memory), and the bystander's median latency must stay
   within LATENCY_FACTOR of its own baseline from step 2.

The bounds are generous on purpose: they catch a server that buffers what it should refuse
or stalls other rooms, not noise on a shared machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Small limits, so that every attack hits one within a second.
ARGS = (
    "--threads", "2", "--log-level", "error", "--handshake-timeout", "1",
    "--max-message-bytes", "16384", "--max-frame-bytes", "65536",
    "--rate-limit-close-after", "1", "--send-queue-max-bytes", "262144",
    "--max-connections-per-ip", "64", "--join-rate-per-ip", "5", "--join-burst-per-ip", "10",
)  # fmt: skip

RSS_BOUND = 64 * 1024 * 1024  # bytes an attack may leave the server holding
LATENCY_FACTOR = 20.0  # the bystander's median latency under attack, over its baseline
BYSTANDER_ADDRESS = "127.0.0.2"
ROUND_TRIPS = 40


def rss(pid: int) -> int:
    """The resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Bystander:
    """The well-behaved client of tests/abuse/bystander.py, driven through its stdin."""

    def __init__(self, url: str, token: str | None) -> None:
        script = Path(__file__).with_name("bystander.py")
        argv = [sys.executable, str(script), url, BYSTANDER_ADDRESS, *([token] if token else [])]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"

    def median_latency(self, round_trips: int = ROUND_TRIPS) -> float:
        """Makes ``round_trips`` round trips; returns their median latency in ms."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{round_trips}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the bystander died"
        return statistics.median(json.loads(line))

    def close(self) -> None:
        self.proc.kill()
        self.proc.communicate()  # and closes the pipes


@dataclass
class Target:
    """A ``kasagi serve`` under attack, with its bystander."""

    serve: Any  # a kasagi.testing.KasagiInstance
    bystander: Bystander

    @property
    def port(self) -> int:
        return self.serve.port

    def rss(self) -> int:
        assert self.serve.pid is not None
        return rss(self.serve.pid)

    def metric(self, name: str) -> float:
        """A sample of GET /metrics: ``name`` with its labels, e.g. ``kasagi_rooms``."""
        return self.serve.metric(name)

    def withstands(self, attack: Callable[[], Any], *, threads: int = 4,
                   expect: Callable[[Any], bool]) -> list[Any]:
        """Runs ``attack`` over and over on ``threads`` threads while the bystander measures;
        checks every outcome with ``expect``, then memory and latency. Returns the outcomes."""
        baseline = self.bystander.median_latency()
        before = self.rss()
        stop = threading.Event()
        outcomes: list[Any] = []

        def loop() -> None:
            while not stop.is_set():
                try:
                    outcomes.append(attack())
                except Exception as err:  # noqa: BLE001 - recorded and reported below
                    outcomes.append(err)

        peak = [before]

        def sample() -> None:  # what is held during the attack counts, not only after it
            while not stop.is_set():
                peak[0] = max(peak[0], self.rss())
                time.sleep(0.01)

        workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
        workers.append(threading.Thread(target=sample, daemon=True))
        for w in workers:
            w.start()
        try:
            time.sleep(0.2)  # let the attack get going
            during = self.bystander.median_latency()
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=30)
        after = max(peak[0], self.rss())
        assert outcomes, "the attack never completed once"
        unexpected = [o for o in outcomes if not expect(o)]
        assert not unexpected, f"{len(unexpected)} of {len(outcomes)}: {unexpected[:3]}"
        # ASan's allocator holds freed memory in quarantine: RSS says nothing there.
        if not os.environ.get("KASAGI_SANITIZED"):
            assert after - before < RSS_BOUND, f"RSS peaked at {after} bytes, from {before}"
        assert during <= LATENCY_FACTOR * baseline, (
            f"bystander median latency {during:.2f} ms under attack, {baseline:.2f} ms before"
        )
        print(f"{len(outcomes)} attacks; RSS {before >> 20} -> {after >> 20} MiB; "
              f"latency {baseline:.2f} -> {during:.2f} ms")
        return outcomes


@pytest.fixture
def target(kasagi_instances: Callable[..., Any]) -> Iterator[Callable[..., Target]]:
    """Returns ``start(*args, token=None) -> Target``: a server with ARGS plus ``args``, and a
    bystander (with ``token`` when the server requires one)."""
    bystanders: list[Bystander] = []

    def start(*args: str, token: str | None = None) -> Target:
        (serve,) = kasagi_instances(*ARGS, *args)
        bystander = Bystander(serve.url, token)
        bystanders.append(bystander)
        return Target(serve, bystander)

    yield start
    for b in bystanders:
        b.close()
