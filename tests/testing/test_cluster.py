"""A Redis Cluster: every slot covered, CLUSTER FAILOVER, SIGKILL of a master."""

from __future__ import annotations

import pytest

from kasagi.testing import SLOTS, RedisCluster, wait_until

pytestmark = pytest.mark.ha


def test_cluster_covers_every_slot_and_fails_over(redis_cluster: RedisCluster) -> None:
    cluster = redis_cluster
    assert cluster.slots_covered() == SLOTS
    masters = cluster.master_nodes()
    assert len(masters) == 3
    assert all(len(cluster.replicas_of(m)) == 1 for m in masters)
    assert cluster.kasagi_args() == [
        "--cluster",
        ",".join(n.address for n in cluster.nodes.values()),
    ]

    # CLUSTER FAILOVER: the replica takes over with its master's agreement; no slot is lost.
    replica = cluster.replicas_of(masters[0])[0]
    manual = cluster.failover(replica)
    assert (manual.old_master, manual.new_master) == (masters[0].address, replica.address)
    assert replica.role() == "master" and masters[0].role() == "slave"
    assert cluster.slots_covered() == SLOTS

    # SIGKILL of a master: after cluster-node-timeout its replica is elected.
    victim = masters[1]
    heir = cluster.replicas_of(victim)[0]
    killed = cluster.kill_master(victim)
    assert killed.new_master == heir.address and not victim.running
    assert 1.0 <= killed.seconds < 20
    wait_until(cluster.healthy, 20, "cluster healthy without the killed master")
    assert cluster.slots_covered() == SLOTS
