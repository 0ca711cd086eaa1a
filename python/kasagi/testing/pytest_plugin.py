"""pytest fixtures that start real Redis topologies and ``kasagi serve`` instances.

Installed with kasagi as the pytest plugin ``kasagi`` (entry point ``pytest11``), so any
test suite in an environment with kasagi can use them; ``-p no:kasagi`` turns it off.

- ``redis_server``: a standalone :class:`~kasagi.testing.RedisServer` (no persistence).
- ``redis_sentinel_group``: a :class:`~kasagi.testing.SentinelGroup` (master, 2 replicas,
  3 Sentinels, down-after 1000 ms).
- ``redis_cluster``: a :class:`~kasagi.testing.RedisCluster` (3 masters, 3 replicas,
  cluster-node-timeout 1000 ms).
- ``kasagi_instances``: ``start(*args, count=1) -> list[KasagiInstance]``: ``count``
  instances of ``kasagi serve *args``, healthy, with their logs in the test's ``tmp_path``.

Everything a fixture started is stopped at teardown, also when the test fails, and a failed
test's report gets the end of each process's log. For other settings, use the classes as
context managers in the test (``with SentinelGroup(down_after_ms=500) as group: ...``).

When ``KASAGI_SANITIZED`` is set (``scripts/test.sh`` sets it for the ASan+UBSan and the
TSan builds), the ``kasagi_instances`` teardown also fails the test if an instance's log
holds a sanitizer report, or if an instance it stopped exited with anything but 0: the
children's reports would otherwise go unnoticed (see :func:`sanitizer_problems`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from kasagi.testing.cluster import RedisCluster
from kasagi.testing.instance import KasagiInstance
from kasagi.testing.process import ManagedProcess, sanitizer_problems
from kasagi.testing.redis import RedisServer, Topology
from kasagi.testing.sentinel import SentinelGroup

__all__ = ["kasagi_instances", "redis_cluster", "redis_sentinel_group", "redis_server"]

_PROCESSES = pytest.StashKey[list[ManagedProcess]]()

T = TypeVar("T", bound=Topology)

#: Set (to anything but "") when the core under test is built with a sanitizer.
SANITIZED = "KASAGI_SANITIZED"


def _watch(request: pytest.FixtureRequest, *processes: ManagedProcess) -> None:
    """Remembers processes whose logs go into the report if the test fails."""
    request.node.stash.setdefault(_PROCESSES, []).extend(processes)


def _run(request: pytest.FixtureRequest, topology: T) -> Iterator[T]:
    with topology:
        _watch(request, *topology.nodes.values())
        yield topology


@pytest.fixture
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A standalone redis-server on a free loopback port, without persistence."""
    yield from _run(request, RedisServer())


@pytest.fixture
def redis_sentinel_group(request: pytest.FixtureRequest) -> Iterator[SentinelGroup]:
    """A Sentinel group (master ``kasagi-master``, 2 replicas, 3 Sentinels, down-after
    1000 ms) from the deploy/sentinel configuration files."""
    yield from _run(request, SentinelGroup(down_after_ms=1000))


@pytest.fixture
def redis_cluster(request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    """A Redis Cluster of 3 masters and 3 replicas, all 16384 slots covered."""
    yield from _run(request, RedisCluster(node_timeout_ms=1000))


@pytest.fixture
def kasagi_instances(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., list[KasagiInstance]]]:
    """Returns ``start(*args, count=1)``: starts ``count`` ``kasagi serve *args`` instances
    on free ports and returns them once each answers /healthz. All are stopped (SIGTERM,
    then SIGKILL) at teardown; with ``KASAGI_SANITIZED`` set, the teardown then fails on
    any :func:`sanitizer_problems`."""
    started: list[KasagiInstance] = []

    def start(*args: str, count: int = 1) -> list[KasagiInstance]:
        batch = []
        for _ in range(count):
            name = f"kasagi-{len(started) + 1}"
            instance = KasagiInstance(*args, log_path=tmp_path / f"{name}.log", name=name)
            started.append(instance)
            _watch(request, instance)
            batch.append(instance.start())
        return batch

    yield start
    checked = bool(os.environ.get(SANITIZED))
    problems: list[str] = []
    for instance in started:
        stopped_here = instance.running  # not one the test killed or stopped itself
        status = instance.stop()
        if checked:
            problems += sanitizer_problems(instance, status if stopped_here else None)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Adds the end of each watched process's log to a failed test's report."""
    report = yield
    if report.failed:
        for process in item.stash.get(_PROCESSES, []):
            report.sections.append((f"log of {process.name}", process.log_tail()))
    return report
