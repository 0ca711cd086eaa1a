"""Redis processes on loopback: one node (:class:`RedisNode`), the :class:`Topology` every
group of nodes shares (a state directory, start, stop, clean-up, save and load), and the
simplest topology, a standalone server (:class:`RedisServer`).

A topology keeps everything in one directory: a folder per node with its rendered
``redis.conf``, pid file, data and log, and ``topology.json`` describing the nodes, so that
another interpreter can :meth:`Topology.load` it (``kasagi redis status`` after
``kasagi redis up``). A topology given no directory makes a temporary one and removes it
when stopped, or when the interpreter exits (the nodes are killed first).
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from kasagi.testing.process import ManagedProcess, free_port, wait_until
from kasagi.testing.resp import RedisError, parse_info, redis_call

__all__ = ["Failover", "RedisNode", "RedisServer", "Topology", "render_config"]

#: Seconds to wait for a group to form or a failover to finish: far above what Sentinel
#: needs with a 1 s down-after, but a loaded 2-core machine can be slow.
FORM_TIMEOUT = 30.0


#: The Redis binary (Debian's redis-server; redis-sentinel is the same program).
REDIS_SERVER = "redis-server"


def redis_env(password: str | None = None) -> dict[str, str]:
    """The environment for redis-server and redis-cli: this one without LD_PRELOAD (the
    sanitizer run preloads ASan into the tests; Redis is not ours to check), with
    REDISCLI_AUTH when a password is given."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if password:
        env["REDISCLI_AUTH"] = password
    return env


def render_config(base: str | Path | None, overrides: Mapping[str, str | None]) -> str:
    """Returns a redis.conf: the lines of ``base`` with ``overrides`` applied.

    A directive is named by its first word, or its first two for ``sentinel`` lines
    (``"sentinel monitor"``). An override replaces the first line of its directive and
    drops the others (None drops them all); overrides not in ``base`` are appended. So
    the files of deploy/sentinel stay real, working configs and tests change only what a
    local run must (ports, directories, addresses, timings).
    """
    lines = Path(base).read_text().splitlines() if base is not None else []
    out = [f"# rendered by kasagi.testing from {base or 'defaults'}"]
    done: set[str] = set()
    for line in lines:
        words = line.split()
        key = " ".join(words[:2] if words[:1] == ["sentinel"] else words[:1]).lower()
        if not words or words[0].startswith("#") or key not in overrides:
            out.append(line)
        elif key not in done:
            done.add(key)
            if overrides[key] is not None:
                out.append(f"{key} {overrides[key]}")
    out += [f"{k} {v}" for k, v in overrides.items() if k not in done and v is not None]
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Failover:
    """The outcome of a failover: the master before and after (``host:port``) and the
    seconds from the fault (or the failover command) until the new master was detected."""

    old_master: str
    new_master: str
    seconds: float


class RedisNode(ManagedProcess):
    """One redis-server (or Sentinel) on 127.0.0.1, with its own folder.

    Args:
        name: the node's name in its topology (``master``, ``replica-1``, ``sentinel-2``).
        directory: its folder: ``redis.conf``, ``redis.pid``, data, ``log``.
        port: its port.
        sentinel: run as a Sentinel (``redis-server redis.conf --sentinel``).
        password: the data nodes' password (AUTH before each command); not for Sentinels.
        detached: outlive this interpreter (see :class:`ManagedProcess`).
    """

    def __init__(
        self,
        name: str,
        directory: Path,
        port: int,
        *,
        sentinel: bool = False,
        password: str | None = None,
        detached: bool = False,
    ) -> None:
        self.directory = directory
        self.port = port
        self.sentinel = sentinel
        self.password = None if sentinel else password
        argv = [REDIS_SERVER, str(directory / "redis.conf")] + (["--sentinel"] if sentinel else [])
        super().__init__(
            argv, directory / "log", name=name, env=redis_env(), cwd=directory, detached=detached
        )

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def write_config(self, base: str | Path | None, overrides: Mapping[str, str | None]) -> None:
        """Writes the node's redis.conf: ``base`` with ``overrides``, then the local
        essentials (loopback, port, folder, pid file, log to stdout, no daemon)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        local = {
            "bind": "127.0.0.1",
            "port": str(self.port),
            "dir": str(self.directory),
            "pidfile": str(self.directory / "redis.pid"),
            "logfile": '""',  # stdout, which is the node's log file
            "daemonize": "no",
        }
        (self.directory / "redis.conf").write_text(render_config(base, {**overrides, **local}))

    # ------------------------------------------------------------------------------------
    # ManagedProcess hooks

    def ready(self) -> bool:
        """True once the node answers PING (a loading server answers an error: not ready)."""
        try:
            return self.call("PING", timeout=0.5) == "PONG"
        except (OSError, RedisError):
            return False

    def identity(self) -> str:
        """redis-server names itself ``redis-server 127.0.0.1:PORT`` in its command line."""
        return f":{self.port}"

    def attach_pidfile(self) -> bool:
        """Adopts the running node of an earlier interpreter through its pid file; returns
        whether it runs."""
        try:
            pid = int((self.directory / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return False
        return self.attach(pid)

    # ------------------------------------------------------------------------------------
    # Commands

    def call(self, *args: Any, timeout: float = 2.0) -> Any:
        """Sends one command to this node and returns the reply (see
        :func:`~kasagi.testing.resp.redis_call`)."""
        return redis_call(self.port, *args, password=self.password, timeout=timeout)

    def info(self, section: str | None = None) -> dict[str, str]:
        """Returns ``INFO [section]`` as a dict."""
        return parse_info(self.call("INFO", *([section] if section else [])))

    def role(self) -> str:
        """``master``, ``slave`` or ``sentinel`` (the first element of ROLE), or ``down``
        when it does not answer."""
        try:
            return str(self.call("ROLE", timeout=1.0)[0])
        except (OSError, RedisError):
            return "down"


class Topology:
    """A group of Redis nodes in one state directory. Subclasses define the nodes
    (:meth:`_create_nodes`), how they form a group (:meth:`_form`), what ``kasagi serve``
    needs to reach them (:meth:`kasagi_args`) and a status report (:meth:`status`).

    Args:
        directory: the state directory (kept); default: a temporary one (removed on stop).
        password: a password for the data nodes (``requirepass``/``masterauth``).
        base_port: give the nodes consecutive ports from this one; default: free ports.
        detached: the nodes outlive this interpreter (``kasagi redis up``).

    Use as a context manager, or :meth:`start` and :meth:`stop`.
    """

    #: The name in topology.json and in ``kasagi redis`` (``standalone``, ``sentinel``...).
    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Topology]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Topology._kinds[cls.kind] = cls

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        password: str | None = None,
        base_port: int | None = None,
        detached: bool = False,
    ) -> None:
        owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix=f"kasagi-{self.kind}-"))
        self.password = password
        self.base_port = base_port
        self.detached = detached
        self.nodes: dict[str, RedisNode] = {}
        # Kills the nodes and removes a temporary directory even if stop() is never called
        # (a test that crashes, an interpreter that exits); stop() runs it too.
        self._finalizer = weakref.finalize(
            self, _discard, self.nodes, self.directory if owned else None
        )
        if detached:
            self._finalizer.detach()

    # ------------------------------------------------------------------------------------
    # What subclasses define

    def options(self) -> dict[str, Any]:
        """The settings saved in topology.json to rebuild this object: ``password``,
        ``base_port`` and the keyword-only arguments of the subclass's constructor (each
        kept in an attribute of the same name)."""
        params = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
        return {"password": self.password, "base_port": self.base_port} | {
            name: getattr(self, name) for name in names if hasattr(self, name)
        }

    def _create_nodes(self) -> None:
        """Fills ``self.nodes`` (with :meth:`_add_node`) and writes their configs."""
        raise NotImplementedError

    def _form(self) -> None:
        """After every node is ready: joins them into a working group and waits for it."""

    def kasagi_args(self) -> list[str]:
        """The ``kasagi serve`` options that connect an instance to this topology."""
        raise NotImplementedError

    def status(self) -> list[dict[str, Any]]:
        """One row per node: ``name``, ``port``, ``pid``, ``role`` and kind-specific
        columns."""
        return [self._row(node) for node in self.nodes.values()]

    def _row(self, node: RedisNode) -> dict[str, Any]:
        return {"name": node.name, "port": node.port, "pid": node.pid, "role": node.role()}

    # ------------------------------------------------------------------------------------
    # Lifecycle

    def _port(self) -> int:
        if self.base_port is None:
            return free_port()
        return self.base_port + len(self.nodes)

    def _add_node(self, name: str, *, sentinel: bool = False) -> RedisNode:
        node = RedisNode(
            name,
            self.directory / name,
            self._port(),
            sentinel=sentinel,
            password=self.password,
            detached=self.detached,
        )
        self.nodes[name] = node
        return node

    def start(self) -> Topology:
        """Starts every node, forms the group and saves topology.json; returns ``self``.
        Everything started is stopped again if any step fails.

        Raises:
            RuntimeError: a node did not start (its log tail is in the message).
            TimeoutError: the group did not form in time.
        """
        try:
            self._create_nodes()
            for node in self.nodes.values():
                node.start()
            self._form()
        except BaseException:
            self.stop()
            raise
        self.save()
        return self

    def stop(self) -> None:
        """Stops every node (SIGTERM, then SIGKILL), last started first, and removes a
        temporary directory. Idempotent."""
        for node in reversed(self.nodes.values()):
            node.stop()
        self._finalizer()

    def clean(self) -> None:
        """Stops every node and removes the state directory, temporary or not."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Topology:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def pids(self) -> list[int]:
        """The pids of the nodes that run."""
        return [n.pid for n in self.nodes.values() if n.running and n.pid is not None]

    # ------------------------------------------------------------------------------------
    # Saved state

    def save(self) -> None:
        """Writes topology.json: the kind, the options and each node's name and port."""
        nodes = [
            {"name": n.name, "port": n.port, "sentinel": n.sentinel} for n in self.nodes.values()
        ]
        state = {"kind": self.kind, "options": self.options(), "nodes": nodes}
        (self.directory / "topology.json").write_text(json.dumps(state, indent=2) + "\n")

    @staticmethod
    def load(directory: str | Path) -> Topology:
        """Rebuilds the topology saved in ``directory``; nodes that still run are attached
        (by pid file), so they can be inspected, killed, restarted and stopped.

        Raises:
            FileNotFoundError: no topology.json there.
        """
        directory = Path(directory)
        state = json.loads((directory / "topology.json").read_text())
        topology = Topology._kinds[state["kind"]](directory, detached=True, **state["options"])
        for spec in state["nodes"]:
            node = RedisNode(
                spec["name"],
                directory / spec["name"],
                spec["port"],
                sentinel=spec["sentinel"],
                password=topology.password,
                detached=True,
            )
            node.attach_pidfile()
            topology.nodes[node.name] = node
        return topology

    def __repr__(self) -> str:
        nodes = " ".join(f"{n.name}:{n.port}" for n in self.nodes.values())
        return f"<{type(self).__name__} {self.directory} {nodes}>"


def _discard(nodes: Mapping[str, RedisNode], directory: Path | None) -> None:
    for node in nodes.values():
        node.kill()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def wait_for_roles(nodes: Iterable[RedisNode], roles: Iterable[str], timeout: float) -> None:
    """Waits until each node's ROLE is the matching role (``master``, ``slave``...)."""
    pairs = list(zip(nodes, roles, strict=True))
    wait_until(
        lambda: all(n.role() == r for n, r in pairs),
        timeout,
        "roles " + ", ".join(f"{n.name}={r}" for n, r in pairs),
        interval=0.1,
    )


def replicas_linked(nodes: Iterable[RedisNode]) -> bool:
    """True when every running node that is a replica has its link to the master up (its
    first full sync done: before that it cannot take over)."""
    for node in nodes:
        if not node.running:
            continue
        try:
            info = node.info("replication")
        except (OSError, RedisError):
            return False
        if info.get("role") == "slave" and info.get("master_link_status") != "up":
            return False
    return True


class RedisServer(Topology):
    """A standalone redis-server on a free loopback port, without persistence (fast, and
    tests start from an empty server).

    Args:
        directory, password, base_port, detached: see :class:`Topology`.
        persistence: keep RDB and AOF as redis-server's defaults do.

    Example::

        with RedisServer() as redis:
            subprocess.run(["kasagi", "serve", *redis.kasagi_args()])
    """

    kind = "standalone"

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        persistence: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(directory, **options)
        self.persistence = persistence

    def _create_nodes(self) -> None:
        node = self._add_node("redis")
        settings: dict[str, str | None] = {"requirepass": self.password}
        if not self.persistence:
            settings.update({"save": '""', "appendonly": "no"})
        node.write_config(None, settings)

    @property
    def node(self) -> RedisNode:
        """The server's node."""
        return self.nodes["redis"]

    @property
    def port(self) -> int:
        """The server's port."""
        return self.node.port

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``, for ``kasagi serve --redis``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def kasagi_args(self) -> list[str]:
        """``["--redis", url]``."""
        return ["--redis", self.url]

    def call(self, *args: Any) -> Any:
        """Sends one command to the server and returns the reply."""
        return self.node.call(*args)
