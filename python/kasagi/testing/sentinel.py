"""A Redis Sentinel group on loopback: a master, replicas and Sentinels, started from the
configuration files of deploy/sentinel/ (so those files are known to work), with forced
and real failovers that report how long they took.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kasagi.testing.process import wait_until
from kasagi.testing.redis import (
    FORM_TIMEOUT,
    Failover,
    RedisNode,
    Topology,
    replicas_linked,
    wait_for_roles,
)
from kasagi.testing.resp import RedisError

__all__ = ["SentinelGroup", "deploy_dir"]


def deploy_dir() -> Path:
    """Returns deploy/sentinel: in a source checkout (editable installs too) the repository's
    own folder, in an installed wheel the copy inside the package.

    Raises:
        FileNotFoundError: neither exists.
    """
    package = Path(__file__).resolve().parent.parent
    for root in (package.parent.parent, package):
        candidate = root / "deploy" / "sentinel"
        if (candidate / "sentinel" / "sentinel.conf").is_file():
            return candidate
    raise FileNotFoundError(f"deploy/sentinel not found beside {package}")


class SentinelGroup(Topology):
    """A master, ``replicas`` replicas and ``sentinels`` Sentinels on free loopback ports.

    The data nodes start from deploy/sentinel/redis/redis-{master,replica}.conf (RDB+AOF,
    min-replicas-to-write 1), the Sentinels from deploy/sentinel/sentinel/sentinel.conf;
    only addresses, folders, logs and the timings below are replaced.

    Args:
        directory, password, base_port, detached: see :class:`Topology`.
        replicas: replicas of the master.
        sentinels: Sentinel processes.
        quorum: Sentinels that must agree the master is down.
        down_after_ms: how long the master may not answer before it is considered down
            (production: 5000; tests: 1000 or less for quick failovers).
        failover_timeout_ms: Sentinel's failover-timeout (a failed attempt is retried after
            twice this).
        master_name: the name Sentinel knows the master by.

    Example::

        with SentinelGroup(down_after_ms=1000) as group:
            result = group.kill_master()
            print(result.new_master, result.seconds)
    """

    kind = "sentinel"

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        replicas: int = 2,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        master_name: str = "kasagi-master",
        **options: Any,
    ) -> None:
        super().__init__(directory, **options)
        self.replicas = replicas
        self.sentinels = sentinels
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.master_name = master_name

    # ------------------------------------------------------------------------------------
    # Forming

    def _create_nodes(self) -> None:
        conf = deploy_dir()
        # The first sync starts at once (the shipped 5 s delay, meant to batch replicas
        # that start together, would only slow tests down).
        auth = {
            "requirepass": self.password,
            "masterauth": self.password,
            "repl-diskless-sync-delay": "0",
        }
        master = self._add_node("master")
        master.write_config(conf / "redis" / "redis-master.conf", auth)
        for i in range(1, self.replicas + 1):
            replica = self._add_node(f"replica-{i}")
            replica.write_config(
                conf / "redis" / "redis-replica.conf",
                {**auth, "replicaof": f"127.0.0.1 {master.port}"},
            )
        name = self.master_name
        watch = {
            "sentinel monitor": f"{name} 127.0.0.1 {master.port} {self.quorum}",
            "sentinel down-after-milliseconds": f"{name} {self.down_after_ms}",
            "sentinel failover-timeout": f"{name} {self.failover_timeout_ms}",
            "sentinel parallel-syncs": f"{name} 1",
            "sentinel auth-pass": f"{name} {self.password}" if self.password else None,
        }
        for i in range(1, self.sentinels + 1):
            self._add_node(f"sentinel-{i}", sentinel=True).write_config(
                conf / "sentinel" / "sentinel.conf", watch
            )

    def _form(self) -> None:
        wait_for_roles(self.data_nodes, ["master"] + ["slave"] * self.replicas, FORM_TIMEOUT)
        wait_until(
            lambda: replicas_linked(self.data_nodes), FORM_TIMEOUT, "replicas linked", 0.1
        )
        # A failover needs Sentinels that know the replicas and each other (they learn
        # through the master's INFO and hello messages every 2 s): wait until every one does.
        wait_until(self._sentinels_formed, FORM_TIMEOUT, "sentinels see the group", 0.2)

    def _sentinels_formed(self) -> bool:
        for node in self.sentinel_nodes:
            try:
                info = self.sentinel_master(node)
            except (OSError, RedisError):
                return False
            if (
                int(info.get("num-slaves", 0)) < self.replicas
                or int(info.get("num-other-sentinels", 0)) < self.sentinels - 1
            ):
                return False
        return True

    # ------------------------------------------------------------------------------------
    # Nodes and roles

    @property
    def data_nodes(self) -> list[RedisNode]:
        """The master and replica nodes, in the order they were created."""
        return [n for n in self.nodes.values() if not n.sentinel]

    @property
    def sentinel_nodes(self) -> list[RedisNode]:
        """The Sentinel nodes."""
        return [n for n in self.nodes.values() if n.sentinel]

    def sentinel_master(self, sentinel: RedisNode) -> dict[str, str]:
        """``SENTINEL MASTER <name>`` as asked of one Sentinel, as a dict."""
        reply = sentinel.call("SENTINEL", "MASTER", self.master_name)
        return dict(zip(reply[::2], reply[1::2], strict=True))

    def master_seen_by(self, sentinel: RedisNode) -> str | None:
        """The master's ``host:port`` according to one Sentinel, or None if it does not
        answer."""
        try:
            host, port = sentinel.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
        except (OSError, RedisError, TypeError, ValueError):
            return None
        return f"{host}:{port}"

    def master_address(self) -> str | None:
        """The master's ``host:port`` according to the first Sentinel that answers, or None
        when none does."""
        return next(filter(None, map(self.master_seen_by, self.sentinel_nodes)), None)

    def node_at(self, address: str | None) -> RedisNode | None:
        """The data node at ``host:port``, or None."""
        return next((n for n in self.data_nodes if n.address == address), None)

    def master(self) -> RedisNode:
        """The node the Sentinels name as master.

        Raises:
            LookupError: no Sentinel answers, or it names an unknown address.
        """
        node = self.node_at(self.master_address())
        if node is None:
            raise LookupError("no master known to the sentinels")
        return node

    def replica_nodes(self) -> list[RedisNode]:
        """The data nodes that run and report themselves replicas."""
        return [n for n in self.data_nodes if n.running and n.role() == "slave"]

    def kasagi_args(self) -> list[str]:
        """``--sentinel HOST:PORT,... --master-name NAME``."""
        addresses = ",".join(n.address for n in self.sentinel_nodes)
        return ["--sentinel", addresses, "--master-name", self.master_name]

    # ------------------------------------------------------------------------------------
    # Failover

    def failover(self, timeout: float = FORM_TIMEOUT) -> Failover:
        """Forces a failover (``SENTINEL FAILOVER``) and waits for the new master.

        Raises:
            RedisError: the Sentinel refused (e.g. no good replica, or one is in progress).
            TimeoutError: no new master within ``timeout`` seconds.
        """
        old = self.master()
        started = time.monotonic()
        self.sentinel_nodes[0].call("SENTINEL", "FAILOVER", self.master_name)
        return self.wait_new_master(old.address, started, timeout)

    def kill_master(self, timeout: float = FORM_TIMEOUT) -> Failover:
        """SIGKILLs the master and waits until the Sentinels have promoted a replica; the
        time is from the kill. The old master stays down (``restart()`` its node to bring
        it back: the Sentinels make it a replica)."""
        old = self.master()
        started = time.monotonic()
        old.kill()
        return self.wait_new_master(old.address, started, timeout)

    def wait_new_master(self, old: str, started: float, timeout: float = FORM_TIMEOUT) -> Failover:
        """Waits until every Sentinel that answers names a master other than ``old`` and
        that node reports itself master; returns the failover, timed from ``started`` (a
        ``time.monotonic()`` value)."""

        def promoted() -> str | None:
            seen = set(filter(None, map(self.master_seen_by, self.sentinel_nodes)))
            new = self.node_at(seen.pop()) if len(seen) == 1 else None
            if new is None or new.address == old or new.role() != "master":
                return None
            return new.address

        new = wait_until(promoted, timeout, f"a new master instead of {old}", 0.05)
        return Failover(old, new, time.monotonic() - started)

    # ------------------------------------------------------------------------------------
    # Status

    def _row(self, node: RedisNode) -> dict[str, Any]:
        row = super()._row(node)
        if row["role"] == "down":
            return row
        try:
            if node.sentinel:
                info = self.sentinel_master(node)
                row["details"] = (
                    f"master {info.get('ip')}:{info.get('port')} {info.get('flags')}, "
                    f"{info.get('num-slaves')} replicas, "
                    f"{int(info.get('num-other-sentinels', 0)) + 1} sentinels"
                )
            else:
                row["details"] = _replication(node.info("replication"))
        except (OSError, RedisError) as err:
            row["details"] = f"error: {err}"
        return row


def _replication(info: dict[str, str]) -> str:
    """One line from INFO replication: a master's replicas with their lag in bytes, or a
    replica's link."""
    if info.get("role") == "master":
        offset = int(info.get("master_repl_offset", 0))
        parts = []
        for key, value in info.items():
            if key.startswith("slave") and key[5:].isdigit():
                fields = dict(f.split("=", 1) for f in value.split(","))
                lag = offset - int(fields.get("offset", 0))
                parts.append(f"{fields.get('ip')}:{fields.get('port')} lag {lag} B")
        return f"{len(parts)} replicas" + (": " + ", ".join(parts) if parts else "")
    return (
        f"replica of {info.get('master_host')}:{info.get('master_port')}, "
        f"link {info.get('master_link_status')}, offset {info.get('slave_repl_offset')}"
    )
