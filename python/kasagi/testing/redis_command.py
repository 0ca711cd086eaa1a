"""The logic of ``kasagi redis up|status|failover-test|down|clean``: a local Redis topology
(standalone, Sentinel group or Cluster) whose processes outlive the command, kept in a
state directory (default ``./.kasagi-redis``) so that the next command finds them.

- ``up``: starts the topology, or starts its stopped nodes again (same ports, same data).
- ``status``: each node's role, pid and replication (lag in bytes), and the ``kasagi serve``
  options that reach it.
- ``failover-test``: SIGKILLs the master, reports how long until a replica took over, and
  starts the old master again (it comes back as a replica).
- ``down``: stops every node (SIGTERM, then SIGKILL); the data stays.
- ``clean``: ``down``, then removes the state directory.

Every function returns the text to print and raises :class:`CommandError` for a state the
command cannot act on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kasagi.testing.cluster import RedisCluster
from kasagi.testing.process import wait_until
from kasagi.testing.redis import FORM_TIMEOUT, RedisServer, Topology
from kasagi.testing.sentinel import SentinelGroup

__all__ = ["DEFAULT_DIR", "KINDS", "CommandError", "clean", "down", "failover_test", "status", "up"]

#: Where the state lives unless ``--dir`` says otherwise.
DEFAULT_DIR = Path(".kasagi-redis")

#: The topologies ``kasagi redis`` can start, by name.
KINDS: dict[str, type[Topology]] = Topology._kinds  # every Topology subclass, by its kind


class CommandError(Exception):
    """The command cannot run in the current state (nothing is up, it is already up...)."""


def _load(directory: Path) -> Topology:
    try:
        return Topology.load(directory)
    except FileNotFoundError:
        raise CommandError(f"nothing in {directory}: run `kasagi redis up` first") from None


def up(directory: Path, kind: str, **options: Any) -> str:
    """Starts a topology of ``kind`` in ``directory`` (``options``: its constructor's, e.g.
    ``base_port``, ``password``, ``down_after_ms``) and returns its status. If the directory
    holds a stopped topology, starts its nodes again instead (``kind`` must match).

    Raises:
        CommandError: it is already up, or the directory holds another kind.
    """
    if (directory / "topology.json").exists():
        topology = _load(directory)
        if topology.kind != kind:
            raise CommandError(
                f"{directory} holds a {topology.kind} topology: `kasagi redis clean` it first"
            )
        stopped = [n for n in topology.nodes.values() if not n.running]
        if not stopped:
            raise CommandError(f"the {kind} topology in {directory} is already up")
        for node in stopped:
            node.start()
        return status(directory)
    KINDS[kind](directory, detached=True, **options).start()
    return status(directory)


def status(directory: Path) -> str:
    """Returns a table of the nodes (name, port, pid, role, details) and the ``kasagi
    serve`` options for the topology in ``directory``."""
    topology = _load(directory)
    rows = topology.status()
    table = [("NODE", "PORT", "PID", "ROLE", "DETAILS")] + [
        (r["name"], str(r["port"]), str(r["pid"] or "-"), r["role"], r.get("details", ""))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = [f"{topology.kind} topology in {directory}"]
    for row in table:
        lines.append("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]]))
    lines.append("kasagi serve " + " ".join(topology.kasagi_args()))
    return "\n".join(lines)


def failover_test(directory: Path) -> str:
    """Kills the master (Sentinel: the master; Cluster: the first master) with SIGKILL,
    waits for a replica to take over, restarts the old master and waits until it is a
    replica; returns what happened with the failover time.

    Raises:
        CommandError: a standalone server (nothing to fail over to), or nodes are down.
    """
    topology = _load(directory)
    if not isinstance(topology, SentinelGroup | RedisCluster):
        raise CommandError("failover-test needs a Sentinel group or a Cluster")
    down = [n.name for n in topology.nodes.values() if not n.running]
    if down:
        raise CommandError(f"nodes are down ({', '.join(down)}): run `kasagi redis up`")
    result = topology.kill_master()
    old = next(n for n in topology.nodes.values() if n.address == result.old_master)
    lines = [
        f"killed master {result.old_master} (SIGKILL)",
        f"new master {result.new_master} after {result.seconds:.2f} s",
    ]
    old.start()
    wait_until(lambda: old.role() == "slave", FORM_TIMEOUT, f"{old.name} back as a replica", 0.1)
    lines.append(f"{old.name} restarted: now a replica")
    return "\n".join(lines)


def down(directory: Path) -> str:
    """Stops every node of the topology in ``directory``; its data stays."""
    topology = _load(directory)
    running = [n.name for n in topology.nodes.values() if n.running]
    topology.stop()
    return f"stopped {len(running)} node(s) in {directory}"


def clean(directory: Path) -> str:
    """Stops every node (if the directory holds a topology) and removes the directory."""
    if (directory / "topology.json").exists():
        _load(directory).clean()
    elif directory.exists():
        raise CommandError(f"{directory} holds no topology: not removing it")
    return f"removed {directory}"
