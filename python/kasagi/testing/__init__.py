"""Real processes for tests, benchmarks and local development: Redis topologies and
``kasagi serve`` instances on loopback ports, faults to inject, and a failover scenario
runner that reports what clients saw.

- :class:`RedisServer`, :class:`SentinelGroup`, :class:`RedisCluster`: a standalone server;
  a master with replicas and Sentinels (from the deploy/sentinel configuration files); a
  Cluster of masters and replicas. Context managers; each node is a :class:`RedisNode`
  that can be killed (``kill()``, SIGKILL), paused (``pause()``/``resume()``,
  SIGSTOP/SIGCONT) and restarted on its port (``restart()``); ``failover()`` and
  ``kill_master()`` time a failover (:class:`Failover`).
- :class:`KasagiInstance`: ``python -m kasagi serve`` with extra options (for example
  ``*redis.kasagi_args()``), waited for through ``/healthz``; the same controls; its
  counters through ``metric()`` (:func:`metric_value` reads one out of any ``/metrics``).
- :func:`run_scenario`: many clients writing through a fault; a :class:`ScenarioReport`.
- The pytest plugin (:mod:`kasagi.testing.pytest_plugin`): fixtures ``redis_server``,
  ``redis_sentinel_group``, ``redis_cluster`` and ``kasagi_instances``.
- ``kasagi redis up|status|failover-test|down|clean`` (:mod:`kasagi.testing.redis_command`).

Every process is started in a process group of its own, with its output in a log file,
and is stopped when its context manager or fixture ends, when a failed start is cleaned
up, or at the latest when the interpreter exits. Temporary directories go with them.
Needs Debian's redis-server and redis-cli (Redis 7) on PATH.
"""

from __future__ import annotations

from kasagi.testing.cluster import SLOTS, RedisCluster
from kasagi.testing.instance import KasagiInstance, child_env
from kasagi.testing.metrics import metric_value
from kasagi.testing.process import (
    ManagedProcess,
    free_port,
    pid_alive,
    sanitizer_problems,
    stop_all,
    wait_until,
)
from kasagi.testing.redis import Failover, RedisNode, RedisServer, Topology, render_config
from kasagi.testing.resp import RedisError, redis_call
from kasagi.testing.scenario import (
    Fault,
    Load,
    ScenarioReport,
    drop_connections,
    kill_restart,
    pause_resume,
    run_scenario,
)
from kasagi.testing.sentinel import SentinelGroup, deploy_dir

__all__ = [
    "SLOTS",
    "Failover",
    "Fault",
    "KasagiInstance",
    "Load",
    "ManagedProcess",
    "RedisCluster",
    "RedisError",
    "RedisNode",
    "RedisServer",
    "ScenarioReport",
    "SentinelGroup",
    "Topology",
    "child_env",
    "deploy_dir",
    "drop_connections",
    "free_port",
    "kill_restart",
    "metric_value",
    "pause_resume",
    "pid_alive",
    "redis_call",
    "render_config",
    "run_scenario",
    "sanitizer_problems",
    "stop_all",
    "wait_until",
]
