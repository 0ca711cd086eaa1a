"""Fixtures of the broker suite: redis-server processes on free ports, and brokers.

- ``redis_server``: a fresh redis-server (killed at teardown); ``redis_factory(*args)``
  starts more (e.g. a replica).
- ``proxy``: a TCP proxy in front of ``redis_server`` that can deafen subscribers.
- ``redis_broker(url, **options)``: a RedisBroker, shut down at teardown.
- ``kind``: "memory" or "redis"; the conformance tests run once per kind.
- ``make_broker(**options)``: a broker of that kind; every one made in a test shares one
  store (the same MemoryBroker object, or the same redis-server), as instances would.
- ``room``: a fresh room id.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .proxy import Proxy
from .redis_process import RedisProcess, free_port


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisProcess]]:
    """Returns ``start(*extra_args, port=None) -> RedisProcess`` (on a free port unless
    given); all are killed at the end."""
    started: list[RedisProcess] = []

    def start(*extra: str, port: int | None = None) -> RedisProcess:
        server = RedisProcess(port or free_port(), tmp_path, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def redis_server(redis_factory: Callable[..., RedisProcess]) -> RedisProcess:
    return redis_factory()


@pytest.fixture
def proxy(redis_server: RedisProcess) -> Iterator[Proxy]:
    p = Proxy(redis_server.port)
    yield p
    p.close()


@pytest.fixture
def room() -> str:
    """A room id of its own for each test."""
    return "r-" + uuid.uuid4().hex[:8]


@pytest.fixture
def redis_broker(redis_factory: Callable[..., RedisProcess]) -> Iterator[Callable[..., Any]]:
    """Returns ``make(url, **options)``; the brokers are shut down at teardown (before the
    redis-servers are killed)."""
    from kasagi import _core

    made: list[Any] = []

    def make(url: str, **options: Any) -> Any:
        made.append(_core.redis_broker(url, **options))
        return made[-1]

    yield make
    for broker in made:
        broker.shutdown()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_broker(kind: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Returns ``make(**options)``: a broker of the test's kind. All those of one test share
    one store, as instances would: the same MemoryBroker, or the same redis-server."""
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        redis_broker = request.getfixturevalue("redis_broker")
        yield lambda **options: redis_broker(server.url, **options)
        return
    from kasagi import _core

    memory: list[Any] = []

    def make(**options: Any) -> Any:
        if not memory:
            memory.append(_core.memory_broker(**options))
        return memory[0]

    yield make
    for broker in memory:
        broker.shutdown()
