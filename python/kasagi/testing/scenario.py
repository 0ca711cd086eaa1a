"""The failover scenario runner: load from many clients, a fault in the middle, and a
report, as data, of what the clients saw.

Each client joins a room and writes unique, increasing values to its own player entry
(``{"seq": 1}``, ``{"seq": 2}``...), each with a requestId, waiting for the ACK. Meanwhile
it records every message. After ``before`` seconds the fault runs (any callable: kill and
restart an instance, fail Redis over, drop every connection); the load goes on for
``after`` seconds, stops, and the runner waits for every client to agree on the room's
state. The report then says:

- ``unavailability_s``: the longest pause in deltas (and full states) any client saw while
  the load ran: how long synchronization stopped for someone.
- ``acked_lost``: ACKed values that the server later did not have. Checked in every
  FULL_STATE a writer receives and in its final state: its own entry's ``seq`` must be at
  least every value ACKed before, except where the state is older than the ACK (same epoch,
  lower version). A later value supersedes an earlier one, but a value written after a
  state was lost does not hide the loss: the writer's first FULL_STATE from the new
  authority arrives before its next write.
- ``duplicates``, ``version_gaps``, ``versions_backwards``: deltas received twice (or out
  of order), deltas that skipped versions, full states older than what the client had,
  all within one epoch.
- ``resyncs``, ``full_states``, ``reconnects``, ``epochs``: how the clients recovered.
- ``recovery_s``: from the start of the fault until every client had an update ACKed
  again; ``convergence_s``: from the end of the load until every client agreed.

For plots, the report also keeps what happened over time (left out of ``as_dict()`` and
``summary()``): ``samples``, one ``(client, sent_s, latency_s, outcome)`` per update
(``latency_s`` None unless ACKed; ``outcome`` "ACK" or the error), and ``arrivals``, one
``(client, at_s, version)`` per delta or full state received; times from the start of the
load.

Example::

    instance = KasagiInstance().start()
    report = asyncio.run(run_scenario([instance.url], kill_restart(instance), clients=10))
    print(report.summary())
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kasagi.client import AsyncClient, Disconnected, KasagiError, Message
from kasagi.testing.process import ManagedProcess

__all__ = [
    "Fault",
    "Load",
    "ScenarioReport",
    "drop_connections",
    "kill_restart",
    "pause_resume",
    "run_scenario",
]


@dataclass
class Load:
    """What a fault can act on: the running clients and the URLs they were given."""

    clients: list[AsyncClient]
    urls: list[str]


#: A fault: called once with the :class:`Load`. A coroutine function is awaited; a plain
#: function runs in a worker thread (it may block: kill, restart, wait for a failover).
Fault = Callable[[Load], Any]


async def drop_connections(load: Load) -> None:
    """A fault: aborts every client's TCP connection, as a network failure would."""
    for client in load.clients:
        await client.drop_connection()


def kill_restart(process: ManagedProcess, down: float = 0.0) -> Fault:
    """A fault: SIGKILL ``process``, wait ``down`` seconds, start it again (same port)."""

    def fault(load: Load) -> None:
        process.kill()
        time.sleep(down)
        process.start()

    return fault


def pause_resume(process: ManagedProcess, seconds: float) -> Fault:
    """A fault: SIGSTOP ``process`` for ``seconds``, then SIGCONT."""

    def fault(load: Load) -> None:
        process.pause()
        time.sleep(seconds)
        process.resume()

    return fault


@dataclass
class ScenarioReport:
    """What the clients of one scenario saw (see the module documentation).

    Times are in seconds; ``fault_at_s`` counts from the start of the load.
    """

    clients: int
    rooms: int
    instances: int
    load_s: float
    fault_at_s: float | None
    fault_s: float | None
    updates_sent: int
    updates_acked: int
    updates_failed: int
    acked_lost: int
    lost_samples: list[tuple[str, int]]
    duplicates: int
    version_gaps: int
    versions_backwards: int
    resyncs: int
    full_states: int
    reconnects: int
    epochs: int
    unavailability_s: float
    recovery_s: float | None
    convergence_s: float | None
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[str, float, float | None, str]] = field(default_factory=list, repr=False)
    arrivals: list[tuple[str, float, int]] = field(default_factory=list, repr=False)

    @property
    def converged(self) -> bool:
        """True if every client agreed on its room's state after the load."""
        return self.convergence_s is not None

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON, logs or a DataFrame row), without the
        per-update ``samples`` and ``arrivals``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("samples", "arrivals")}
        return {**data, "lost_samples": list(self.lost_samples), "errors": dict(self.errors),
                "converged": self.converged}

    def summary(self) -> str:
        """A few human-readable lines."""
        fault = (
            f"fault at {self.fault_at_s:.2f} s (took {self.fault_s:.2f} s)"
            if self.fault_at_s is not None and self.fault_s is not None
            else "no fault"
        )
        recovery = (
            "n/a" if self.fault_at_s is None
            else "never" if self.recovery_s is None
            else f"{self.recovery_s:.2f} s"
        )
        converged = "never" if self.convergence_s is None else f"{self.convergence_s:.2f} s"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        return "\n".join(
            [
                f"scenario: {self.clients} clients, {self.rooms} room(s), "
                f"{self.instances} instance(s), {self.load_s:.1f} s of load, {fault}",
                f"updates: {self.updates_sent} sent, {self.updates_acked} ACKed, "
                f"{self.updates_failed} failed ({errors}); ACKed updates lost: {self.acked_lost}",
                f"deltas: {self.duplicates} duplicates, {self.version_gaps} version gaps, "
                f"{self.versions_backwards} backwards; {self.resyncs} resyncs, "
                f"{self.full_states} full states, {self.reconnects} reconnects, "
                f"{self.epochs} epoch(s)",
                f"unavailability {self.unavailability_s:.2f} s (longest pause in deltas), "
                f"recovery {recovery}, convergence {converged}",
            ]
        )


class _Writer:
    """One client: writes its own ``seq`` and records what it receives."""

    def __init__(self, name: str, urls: list[str], room: str, request_timeout: float) -> None:
        self.name = name
        self.urls = urls  # its instance first, then the others to fail over to
        self.room = room
        self.client = AsyncClient(request_timeout=request_timeout)
        self.seq = 0
        self.sent = 0
        self.errors: dict[str, int] = {}
        self.pending: dict[int, int] = {}  # requestId -> seq
        self.acked: list[tuple[int, str | None, int]] = []  # (seq, epoch, version), by seq
        self.lost: set[int] = set()
        self.arrivals: list[tuple[float, int]] = []  # (time, version)
        self.epochs: set[str] = set()
        self.epoch: str | None = None
        self.version = -1
        self.duplicates = self.gaps = self.backwards = self.full_states = 0
        self.acked_after: float | None = None  # the first ACK at or after this time...
        self.first_ack_after: float | None = None  # ...came then
        self.samples: list[tuple[float, float | None, str]] = []  # (sent, latency, outcome)

    async def start(self, encoding: str) -> None:
        """Connects, starts recording, and joins the room."""
        await self.client.connect(self.urls, encoding=encoding)
        self.client.on("ACK", self._on_ack)
        self.client.on("DELTA_UPDATE", self._on_delta)
        self.client.on("FULL_STATE", self._on_full_state)
        await self.client.join(self.room, playerName=self.name)

    # ------------------------------------------------------------------------------------
    # What it receives (callbacks run in order, after the client's mirror is updated)

    def _on_ack(self, msg: Message) -> None:
        seq = self.pending.pop(msg.get("requestId"), None)  # type: ignore[arg-type]
        if seq is None:
            return  # the ACK that ends a resume, or one that came after its timeout
        mirror = self.client.rooms.get(self.room)
        self.acked.append((seq, mirror.epoch if mirror else None, int(msg.get("version", 0))))
        now, after = time.monotonic(), self.acked_after
        if self.first_ack_after is None and after is not None and now >= after:
            self.first_ack_after = now

    def _arrived(self, msg: Message) -> tuple[str | None, int]:
        epoch, version = msg.get("epoch"), int(msg.get("version", 0))
        self.arrivals.append((time.monotonic(), version))
        if epoch is not None:
            self.epochs.add(epoch)
        return epoch, version

    def _on_delta(self, msg: Message) -> None:
        epoch, version = self._arrived(msg)
        if epoch == self.epoch and version <= self.version:
            self.duplicates += 1
            return
        if epoch == self.epoch and int(msg.get("baseVersion", version)) > self.version:
            self.gaps += 1  # counted once: the next delta continues from this one
        self.epoch, self.version = epoch, version

    def _on_full_state(self, msg: Message) -> None:
        epoch, version = self._arrived(msg)
        self.full_states += 1
        if epoch == self.epoch and version < self.version:
            self.backwards += 1
        self.epoch, self.version = epoch, version
        payload = msg.get("payload") or {}
        players = (payload.get("state") or {}).get("players") or {}
        self._check(players.get(payload.get("playerId")), epoch, version)

    def _check(self, entry: dict[str, Any] | None, epoch: str | None, version: int | None) -> None:
        """Records as lost every ACKed seq above the one in ``entry``, unless the state
        (at ``epoch``, ``version``; None: the final state) is older than its ACK."""
        have = int((entry or {}).get("seq", 0))
        for seq, ack_epoch, ack_version in reversed(self.acked):
            if seq <= have:
                break
            if version is None or ack_epoch != epoch or version >= ack_version:
                self.lost.add(seq)

    def caught_up(self, mirror: Any) -> bool:
        """True when ``mirror`` has reached the version of this writer's last ACK (when
        that ACK was given in the mirror's epoch)."""
        if not self.acked:
            return True
        _, epoch, version = self.acked[-1]
        return epoch != mirror.epoch or mirror.version >= version

    def check_final(self) -> None:
        """Checks the final state against every ACK."""
        mirror = self.client.rooms.get(self.room)
        self._check(mirror.me if mirror else None, None, None)

    # ------------------------------------------------------------------------------------
    # Writing

    async def write(self, stop: asyncio.Event, interval: float) -> None:
        """Writes seq 1, 2, 3... every ``interval`` seconds (jittered) until ``stop``."""
        await asyncio.sleep(random.uniform(0, interval))  # spread the clients out
        while not stop.is_set():
            self.seq += 1
            request_id = self.client.new_request_id()
            self.pending[request_id] = self.seq
            self.sent += 1
            msg = {"type": "STATE_UPDATE", "roomId": self.room, "requestId": request_id}
            sent = time.monotonic()
            try:
                await self.client.request({**msg, "payload": {"seq": self.seq}})
                self.samples.append((sent, time.monotonic() - sent, "ACK"))
            except (Disconnected, TimeoutError, KasagiError) as err:
                self.pending.pop(request_id, None)
                kind = err.code if isinstance(err, KasagiError) else type(err).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                self.samples.append((sent, None, kind))
            try:
                await asyncio.wait_for(stop.wait(), interval * random.uniform(0.5, 1.5))
            except TimeoutError:
                pass

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time between two arrivals within [start, end] (the bounds count)."""
        times = [start, *(t for t, _ in self.arrivals if start < t < end), end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


def _agreed(writers: Sequence[_Writer]) -> bool:
    """True when every client is connected, synced and past its own last ACK, and all
    members of a room hold the same version and state."""
    by_room: dict[str, list[Any]] = {}
    for w in writers:
        mirror = w.client.rooms.get(w.room)
        if not w.client.connected or mirror is None or not mirror.synced:
            return False
        if not w.caught_up(mirror):
            return False
        by_room.setdefault(w.room, []).append(mirror)
    return all(
        all((m.epoch, m.version, m.state) == (ms[0].epoch, ms[0].version, ms[0].state) for m in ms)
        for ms in by_room.values()
    )


async def run_scenario(
    urls: Sequence[str],
    fault: Fault | None = None,
    *,
    clients: int = 10,
    rooms: int = 1,
    rate: float = 10.0,
    before: float = 1.0,
    after: float = 3.0,
    convergence_timeout: float = 15.0,
    request_timeout: float = 2.0,
    encoding: str = "json",
    room_prefix: str = "scenario",
) -> ScenarioReport:
    """Runs one scenario and returns its report (see the module documentation).

    Args:
        urls: the instances' WebSocket URLs; client i connects to ``urls[i % len(urls)]``
            and, when that instance is gone, reconnects to the next ones in turn.
        fault: called once, ``before`` seconds into the load (None: a baseline run).
        clients: how many clients (each joins one room and writes to its own entry).
        rooms: how many rooms; client i joins room ``i % rooms``.
        rate: updates per second per client (each waits for its ACK first).
        before: seconds of load before the fault.
        after: seconds of load after the fault has returned.
        convergence_timeout: seconds to wait for the clients to agree after the load.
        request_timeout: seconds a client waits for an ACK (and for a reconnection).
        encoding: ``"json"`` or ``"msgpack"``.
        room_prefix: room names are ``<room_prefix>-<n>``.

    Raises:
        Whatever connecting and joining raise before the load starts, and what the fault
        raises (the clients are closed in every case).
    """
    writers = [
        _Writer(f"c{i}", [*urls[i % len(urls):], *urls[: i % len(urls)]],
                f"{room_prefix}-{i % rooms}", request_timeout)
        for i in range(clients)
    ]
    try:
        await asyncio.gather(*(w.start(encoding) for w in writers))
        stop = asyncio.Event()
        load_start = time.monotonic()
        tasks = [asyncio.create_task(w.write(stop, 1.0 / rate)) for w in writers]
        fault_at = fault_s = None
        await asyncio.sleep(before)
        if fault is not None:
            fault_at = time.monotonic()
            load = Load([w.client for w in writers], list(urls))
            if inspect.iscoroutinefunction(fault):
                await fault(load)
            else:
                await asyncio.to_thread(fault, load)
            fault_end = time.monotonic()
            fault_s = fault_end - fault_at
            for w in writers:
                w.acked_after = fault_end
        await asyncio.sleep(after)
        stop.set()
        await asyncio.gather(*tasks)
        load_end = time.monotonic()
        convergence_s: float | None = None
        deadline = load_end + convergence_timeout
        while time.monotonic() < deadline:
            if _agreed(writers):
                convergence_s = time.monotonic() - load_end
                break
            await asyncio.sleep(0.02)
        for w in writers:
            w.check_final()
        times = (load_start, load_end, fault_at, fault_s, convergence_s)
        return _report(writers, len(urls), rooms, *times)
    finally:
        await asyncio.gather(*(w.client.close() for w in writers), return_exceptions=True)


def _report(
    writers: Sequence[_Writer],
    instances: int,
    rooms: int,
    load_start: float,
    load_end: float,
    fault_at: float | None,
    fault_s: float | None,
    convergence_s: float | None,
) -> ScenarioReport:
    errors: dict[str, int] = {}
    for w in writers:
        for kind, count in w.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    recovered = [w.first_ack_after for w in writers]
    recovery_s = (
        max(recovered) - fault_at  # type: ignore[type-var,operator]
        if fault_at is not None and all(t is not None for t in recovered)
        else None
    )
    return ScenarioReport(
        clients=len(writers),
        rooms=rooms,
        instances=instances,
        load_s=load_end - load_start,
        fault_at_s=None if fault_at is None else fault_at - load_start,
        fault_s=fault_s,
        updates_sent=sum(w.sent for w in writers),
        updates_acked=sum(len(w.acked) for w in writers),
        updates_failed=sum(errors.values()),
        acked_lost=sum(len(w.lost) for w in writers),
        lost_samples=[(w.name, seq) for w in writers for seq in sorted(w.lost)][:10],
        duplicates=sum(w.duplicates for w in writers),
        version_gaps=sum(w.gaps for w in writers),
        versions_backwards=sum(w.backwards for w in writers),
        resyncs=sum(w.client.resyncs for w in writers),
        full_states=sum(w.full_states - 1 for w in writers),  # the join's is expected
        reconnects=sum(w.client.reconnects for w in writers),
        epochs=len(set().union(*(w.epochs for w in writers))),
        unavailability_s=max(w.longest_pause(load_start, load_end) for w in writers),
        recovery_s=recovery_s,
        convergence_s=convergence_s,
        errors=errors,
        samples=sorted(
            (w.name, sent - load_start, latency, outcome)
            for w in writers
            for sent, latency, outcome in w.samples
        ),
        arrivals=sorted(
            (w.name, t - load_start, v) for w in writers for t, v in w.arrivals
            if t >= load_start
        ),
    )
