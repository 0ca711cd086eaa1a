"""redis_password (and sentinel_password) reach every connection: the master in Sentinel
mode, every node in Cluster mode; a wrong one leaves commands unavailable."""

from __future__ import annotations

import pytest

from broker.helpers import entry
from kasagi.testing import RedisCluster, SentinelGroup

pytestmark = [pytest.mark.ha, pytest.mark.redis]


def test_sentinel_group_with_a_password() -> None:
    from kasagi import _core

    with SentinelGroup(password="s3cret", replicas=1) as group:
        sentinels = ",".join(n.address for n in group.sentinel_nodes)
        good = _core.sentinel_broker(sentinels, group.master_name, password="s3cret",
                                     wait_replicas=1)
        bad = _core.sentinel_broker(sentinels, group.master_name, password="wrong",
                                    command_timeout=0.5)
        try:
            assert good.claim("r", "tok", 10_000)[0] == "ok"
            assert good.append("r", "tok", entry(1), b"m1") == "ok"
            assert bad.claim("r", "other", 10_000)[0] == "unavailable"
        finally:
            good.shutdown()
            bad.shutdown()


def test_cluster_with_a_password() -> None:
    from kasagi import _core

    with RedisCluster(password="s3cret") as cluster:
        nodes = ",".join(n.address for n in cluster.nodes.values())
        good = _core.cluster_broker(nodes, password="s3cret")
        bad = _core.cluster_broker(nodes, password="wrong", command_timeout=0.5)
        try:
            for i in range(6):  # rooms over several masters
                assert good.claim(f"r{i}", "tok", 10_000)[0] == "ok"
                assert good.append(f"r{i}", "tok", entry(1), b"m1") == "ok"
            assert bad.claim("r0", "other", 10_000)[0] == "unavailable"
        finally:
            good.shutdown()
            bad.shutdown()
