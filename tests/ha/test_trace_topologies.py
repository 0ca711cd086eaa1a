"""kasagi.trace reads a room's log from one plain Redis: pointed at a Sentinel, or at a
Cluster node that does not serve the room, it says so and what to give instead."""

from __future__ import annotations

import pytest

from kasagi import trace
from kasagi.testing import RedisCluster, SentinelGroup

from .test_cluster_broker import owner_of

pytestmark = [pytest.mark.ha, pytest.mark.redis]
pytest.importorskip("pandas")


def test_a_cluster_node_names_the_node_that_serves_the_room(redis_cluster: RedisCluster) -> None:
    owner = owner_of(redis_cluster, "traced")
    for master in redis_cluster.master_nodes():
        url = f"redis://{master.address}/0"
        if master.address == owner.address:
            assert trace.load(url, room="traced").deltas.empty  # nothing logged yet: empty
            continue
        with pytest.raises(ValueError, match="Cluster node") as refused:
            trace.load(url, room="traced")
        assert f"redis://{owner.address}/0" in str(refused.value)


def test_a_sentinel_is_not_a_redis(redis_sentinel_group: SentinelGroup) -> None:
    sentinel = redis_sentinel_group.sentinel_nodes[0]
    with pytest.raises(ValueError, match="a Sentinel"):
        trace.load(f"redis://{sentinel.address}/0", room="traced")
    master = redis_sentinel_group.master()
    assert trace.load(f"redis://{master.address}/0", room="traced").states.empty
