"""Redis Cluster key routing (cpp/broker/cluster_slots.*): the hash slot of a key agrees
with the cluster's own CLUSTER KEYSLOT, hash tags included."""

from __future__ import annotations

import random

import pytest

from kasagi.testing import RedisCluster

pytestmark = [pytest.mark.ha, pytest.mark.redis]


def keys() -> list[bytes]:
    rng = random.Random(7)
    out = [b"", b"a", b"123456789", b"{}", b"{}x", b"x{}", b"{a}{b}", b"{{a}}", b"a{b", b"a}b{c}",
           b"room:{lobby}:ops", b"game1:room:{lobby}:snapshot", b"room:{\xff\x00}:owner"]
    for _ in range(200):
        out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24))))
    return out


def test_key_slot_known_values() -> None:
    from kasagi import _core

    assert _core.key_slot(b"123456789") == 0x31C3 % 16384  # CRC16/XMODEM check value
    assert _core.key_slot(b"room:{lobby}:ops") == _core.key_slot(b"lobby")
    assert _core.key_slot(b"x{}y") != _core.key_slot(b"")  # an empty tag is no tag


def test_key_slot_agrees_with_the_cluster(redis_cluster: RedisCluster) -> None:
    from kasagi import _core

    node = redis_cluster.master_nodes()[0]
    for key in keys():
        assert _core.key_slot(key) == int(node.call("CLUSTER", "KEYSLOT", key)), key
