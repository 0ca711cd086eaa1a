"""A Sentinel group from the deploy/sentinel files: roles, forced failover, SIGKILL of the
master, the old master's return as a replica."""

from __future__ import annotations

import time

import pytest

from kasagi.testing import RedisError, SentinelGroup, deploy_dir, redis_call, wait_until

pytestmark = pytest.mark.ha


def test_the_group_comes_up_from_the_deploy_files(redis_sentinel_group: SentinelGroup) -> None:
    group = redis_sentinel_group
    master, *replicas = group.data_nodes
    assert group.master() is master and master.role() == "master"
    assert [r.role() for r in replicas] == ["slave", "slave"]
    assert all(group.master_seen_by(s) == master.address for s in group.sentinel_nodes)
    addresses = ",".join(s.address for s in group.sentinel_nodes)
    assert group.kasagi_args() == ["--sentinel", addresses, "--master-name", "kasagi-master"]

    # The production settings of deploy/sentinel are in force; only local ones changed.
    assert master.call("CONFIG", "GET", "appendonly") == ["appendonly", "yes"]
    assert master.call("CONFIG", "GET", "min-replicas-to-write") == ["min-replicas-to-write", "1"]
    conf = (replicas[0].directory / "redis.conf").read_text()
    assert f"rendered by kasagi.testing from {deploy_dir()}" in conf
    assert f"replicaof 127.0.0.1 {master.port}" in conf and "replicaof redis-master" not in conf

    master.call("SET", "room:{a}:snapshot", "v1")
    master.call("WAIT", 2, 1000)
    assert replicas[0].call("GET", "room:{a}:snapshot") == "v1"
    with pytest.raises(RedisError, match="READONLY"):
        replicas[0].call("SET", "k", "v")


@pytest.mark.slow
def test_forced_failover_then_sigkill_of_the_master(redis_sentinel_group: SentinelGroup) -> None:
    group = redis_sentinel_group
    first = group.master()
    first.call("SET", "k", "before")
    assert first.call("WAIT", 2, 2000) == 2

    forced = group.failover()
    assert forced.old_master == first.address != forced.new_master
    assert 0 < forced.seconds < 10
    second = group.master()
    assert second.address == forced.new_master and second.call("GET", "k") == "before"

    killed = group.kill_master()
    assert killed.old_master == second.address != killed.new_master
    assert not second.running
    # Detection takes down-after (1 s), then the vote and the promotion.
    assert 1.0 <= killed.seconds < 20
    third = group.master()
    assert third.address == killed.new_master and third.call("GET", "k") == "before"
    # With min-replicas-to-write 1 the new master takes writes once a replica follows it.
    wait_until(lambda: _writable(third), 20, "new master writable")

    # Restarted, it comes back as a replica of the new master: the Sentinels convert it
    # after it has reported itself master for a while (about 10 s).
    # On a loaded machine a Sentinel may fail the new master over once more (it marked it
    # down one down-after past the switch): the old master must follow whichever node the
    # group names master by then.
    second.restart()
    wait_until(lambda: second.role() == "slave", 30, "killed master back as a replica")
    wait_until(lambda: second.info("replication")["master_port"] == str(group.master().port),
               30, "killed master replicating from the current master")


def _writable(node: object) -> bool:
    try:
        return node.call("SET", "k", "after") == "OK"  # type: ignore[attr-defined,no-any-return]
    except RedisError:
        return False


def test_a_paused_master_is_failed_over_too() -> None:
    with SentinelGroup(down_after_ms=500, replicas=1) as group:
        master = group.master()
        started = time.monotonic()
        master.pause()  # hung, not dead: its connections stay open
        result = group.wait_new_master(master.address, started)
        assert result.new_master == group.data_nodes[1].address
        assert result.seconds >= 0.5
        master.resume()  # Sentinel demotes it some seconds later (not waited for here)


def test_with_a_password() -> None:
    with SentinelGroup(password="s3cret", replicas=1) as group:  # formed: replicas and
        master = group.master()  # Sentinels authenticated with masterauth and auth-pass
        assert master.call("SET", "k", "v") == "OK"
        with pytest.raises(RedisError, match="NOAUTH"):
            redis_call(master.port, "GET", "k")
        conf = (group.sentinel_nodes[0].directory / "redis.conf").read_text()
        assert "sentinel auth-pass kasagi-master s3cret" in conf
