"""A Redis Cluster on loopback: masters with replicas, every one of the 16384 hash slots
served, with manual (``CLUSTER FAILOVER``) and real (SIGKILL) failovers that report how long
they took.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from kasagi.testing.process import free_port, port_free, wait_until
from kasagi.testing.redis import (
    FORM_TIMEOUT,
    Failover,
    RedisNode,
    Topology,
    redis_env,
    replicas_linked,
)
from kasagi.testing.resp import RedisError, parse_info

__all__ = ["SLOTS", "RedisCluster"]

#: Hash slots in a Redis Cluster.
SLOTS = 16384

#: A node's cluster bus listens on its port plus this.
BUS_PORT_OFFSET = 10000

#: redis-cli sets clusters up (``--cluster create``).
REDIS_CLI = "redis-cli"


class RedisCluster(Topology):
    """``masters`` masters with ``replicas`` replicas each, on free loopback ports, without
    persistence, created with ``redis-cli --cluster create``.

    Args:
        directory, password, base_port, detached: see :class:`Topology`.
        masters: master nodes (the slots are split evenly between them).
        replicas: replicas per master.
        node_timeout_ms: cluster-node-timeout: how long a master may not answer before its
            replica takes over (production: 5000 to 15000; tests: 1000).

    Example::

        with RedisCluster() as cluster:
            assert cluster.slots_covered() == SLOTS
            cluster.failover()
    """

    kind = "cluster"

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        **options: Any,
    ) -> None:
        super().__init__(directory, **options)
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms

    # ------------------------------------------------------------------------------------
    # Forming

    def _create_nodes(self) -> None:
        settings = {
            "cluster-enabled": "yes",
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": str(self.node_timeout_ms),
            "save": '""',
            "appendonly": "no",
            "repl-diskless-sync-delay": "0",  # replicas sync at once, not after 5 s
            "requirepass": self.password,
            "masterauth": self.password,
        }
        for i in range(1, self.masters * (1 + self.replicas) + 1):
            self._add_node(f"node-{i}").write_config(None, settings)

    def _port(self) -> int:
        if self.base_port is not None:
            return super()._port()
        while True:  # the bus port must be free too (and so at most 65535)
            port = free_port()
            if port + BUS_PORT_OFFSET <= 65535 and port_free(port + BUS_PORT_OFFSET):
                return port

    def _form(self) -> None:
        # redis-cli makes the first `masters` nodes masters and gives each its replicas.
        argv = [REDIS_CLI, "--cluster", "create", *(n.address for n in self.nodes.values())]
        argv += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=FORM_TIMEOUT,
            env=redis_env(self.password),
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        wait_until(self.healthy, FORM_TIMEOUT, "cluster_state ok on every node", 0.1)

    def healthy(self) -> bool:
        """True when every running node reports ``cluster_state:ok``, knows every node,
        covers all slots in its own view, and has the same view of who replicates whom
        (gossip spreads a replica's assignment a moment after the cluster is ok)."""
        total = len(self.nodes)
        views = set()
        for node in self.nodes.values():
            if not node.running:
                continue
            try:
                info = parse_info(node.call("CLUSTER", "INFO"))
                if info.get("cluster_state") != "ok" or int(info["cluster_known_nodes"]) != total:
                    return False
                if self.slots_covered(node) != SLOTS:
                    return False
                views.add(frozenset((r["id"], r["master"], "master" in r["flags"])
                                    for r in self.cluster_nodes(node)))
            except (OSError, RedisError):
                return False
        return len(views) == 1 and replicas_linked(self.nodes.values())

    # ------------------------------------------------------------------------------------
    # Nodes, slots and roles

    def _any_running(self) -> RedisNode:
        return next(n for n in self.nodes.values() if n.running)

    def slots_covered(self, node: RedisNode | None = None) -> int:
        """How many hash slots have a master, in ``node``'s view (default: any running
        node's)."""
        reply = (node or self._any_running()).call("CLUSTER", "SLOTS")
        return sum(int(end) - int(start) + 1 for start, end, *_ in reply)

    def cluster_nodes(self, node: RedisNode | None = None) -> list[dict[str, Any]]:
        """``CLUSTER NODES`` in ``node``'s view (default: any running node's): one dict per
        node with ``id``, ``address`` (host:port), ``flags`` (a set), ``master`` (the
        master's id, or None) and ``slots`` (the slot ranges, as text)."""
        rows = []
        for line in (node or self._any_running()).call("CLUSTER", "NODES").splitlines():
            fields = line.split()
            rows.append(
                {
                    "id": fields[0],
                    "address": fields[1].split("@")[0],
                    "flags": set(fields[2].split(",")),
                    "master": None if fields[3] == "-" else fields[3],
                    "slots": " ".join(fields[8:]),
                }
            )
        return rows

    def node_at(self, address: str) -> RedisNode:
        """The node at ``host:port``."""
        return next(n for n in self.nodes.values() if n.address == address)

    def master_nodes(self) -> list[RedisNode]:
        """The running nodes that report themselves master."""
        return [n for n in self.nodes.values() if n.running and n.role() == "master"]

    def replicas_of(self, master: RedisNode) -> list[RedisNode]:
        """The nodes that replicate ``master``, in the cluster's view."""
        rows = self.cluster_nodes()
        master_id = next(r["id"] for r in rows if r["address"] == master.address)
        return [self.node_at(r["address"]) for r in rows if r["master"] == master_id]

    def kasagi_args(self) -> list[str]:
        """``--cluster HOST:PORT,...`` (every node, so any of them can seed discovery)."""
        return ["--cluster", ",".join(n.address for n in self.nodes.values())]

    # ------------------------------------------------------------------------------------
    # Failover

    def failover(self, replica: RedisNode | None = None, timeout: float = FORM_TIMEOUT) -> Failover:
        """Promotes ``replica`` (default: a replica of the first master) with ``CLUSTER
        FAILOVER``, its master agreeing, and waits until the cluster is healthy again."""
        if replica is None:
            replica = self.replicas_of(self.master_nodes()[0])[0]
        old = self.node_at(self.master_address_of(replica))
        started = time.monotonic()
        replica.call("CLUSTER", "FAILOVER")
        return self._wait_promoted(old, replica, started, timeout)

    def kill_master(
        self, master: RedisNode | None = None, timeout: float = FORM_TIMEOUT
    ) -> Failover:
        """SIGKILLs ``master`` (default: the first) and waits until one of its replicas
        serves its slots; the time is from the kill. The old master stays down."""
        master = master or self.master_nodes()[0]
        replicas = self.replicas_of(master)
        if not replicas:
            raise LookupError(f"{master.address} has no replica to take over")
        started = time.monotonic()
        master.kill()

        def promoted() -> RedisNode | None:
            return next((r for r in replicas if r.role() == "master"), None)

        new = wait_until(promoted, timeout, f"a replica of {master.address} promoted", 0.05)
        return self._wait_promoted(master, new, started, timeout)

    def master_address_of(self, replica: RedisNode) -> str:
        """The ``host:port`` of the master ``replica`` follows."""
        info = replica.info("replication")
        return f"{info['master_host']}:{info['master_port']}"

    def _wait_promoted(
        self, old: RedisNode, new: RedisNode, started: float, timeout: float
    ) -> Failover:
        """Waits until ``new`` is a master with slots and ``old``, if it runs, its replica."""

        def serving() -> bool:
            if new.role() != "master" or (old.running and old.role() != "slave"):
                return False
            me = [r for r in self.cluster_nodes(new) if r["address"] == new.address]
            return bool(me and me[0]["slots"])

        wait_until(serving, timeout, f"{new.address} serving as master", 0.05)
        return Failover(old.address, new.address, time.monotonic() - started)

    # ------------------------------------------------------------------------------------
    # Status

    def _row(self, node: RedisNode) -> dict[str, Any]:
        row = super()._row(node)
        if row["role"] == "down":
            return row
        try:
            rows = self.cluster_nodes(node)
            me = next(r for r in rows if "myself" in r["flags"])
            state = parse_info(node.call("CLUSTER", "INFO")).get("cluster_state")
            if me["master"] is None:
                row["details"] = f"slots {me['slots'] or 'none'}, cluster_state {state}"
            else:
                master = next((r["address"] for r in rows if r["id"] == me["master"]), "?")
                row["details"] = f"replica of {master}, cluster_state {state}"
        except (OSError, RedisError, StopIteration) as err:
            row["details"] = f"error: {err}"
        return row
