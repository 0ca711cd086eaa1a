"""kasagi.testing processes: standalone Redis and kasagi serve started, killed, paused,
resumed and restarted on the same port; clean-up when a test body raises, when a start
fails, and when a user's suite using the pytest plugin fails."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from kasagi.testing import (
    KasagiInstance,
    RedisError,
    RedisServer,
    child_env,
    pid_alive,
    redis_call,
    render_config,
)
from kasagi.testing.process import listens_on


def test_render_config_replaces_drops_and_appends(tmp_path: Path) -> None:
    base = tmp_path / "base.conf"
    base.write_text(
        "port 6379\n# port 1\nsave 900 1\nsave 60 100\n"
        "sentinel monitor m redis-master 6379 2\nsentinel down-after-milliseconds m 5000\n"
    )
    text = render_config(
        base,
        {"port": "7000", "save": None, "sentinel monitor": "m 127.0.0.1 7000 2", "dir": "/x"},
    )
    lines = text.splitlines()
    assert "port 7000" in lines and "port 6379" not in lines
    assert "# port 1" in lines  # comments stay
    assert not any(line.startswith("save") for line in lines)
    assert "sentinel monitor m 127.0.0.1 7000 2" in lines
    assert "sentinel down-after-milliseconds m 5000" in lines  # other sentinel lines stay
    assert lines[-1] == "dir /x"


def test_redis_server_kill_restart_pause_resume(redis_server: RedisServer) -> None:
    node = redis_server.node
    assert redis_server.call("SET", "k", "v") == "OK"
    assert redis_server.kasagi_args() == ["--redis", f"redis://127.0.0.1:{node.port}/0"]

    node.pause()
    assert node.paused
    with pytest.raises(OSError):  # a hung server: the connection opens, no answer comes
        redis_call(node.port, "PING", timeout=0.3)
    node.resume()
    assert redis_server.call("GET", "k") == "v"

    old_pid = node.pid
    assert node.kill() == -9
    assert not node.running and not pid_alive(old_pid)  # type: ignore[arg-type]
    with pytest.raises(ConnectionRefusedError):
        redis_server.call("PING")
    node.restart()
    assert node.pid != old_pid and redis_server.call("PING") == "PONG"
    assert redis_server.call("GET", "k") is None  # no persistence: a fresh server


def test_redis_errors_are_raised(redis_server: RedisServer) -> None:
    with pytest.raises(RedisError, match="unknown command"):
        redis_server.call("NO-SUCH-COMMAND")


def test_password(tmp_path: Path) -> None:
    with RedisServer(password="s3cret") as redis:
        assert redis.url == f"redis://:s3cret@127.0.0.1:{redis.port}/0"
        assert redis.call("PING") == "PONG"  # AUTH first
        with pytest.raises(RedisError, match="NOAUTH"):
            redis_call(redis.port, "PING")


def test_everything_is_cleaned_up_when_the_body_raises() -> None:
    with pytest.raises(RuntimeError, match="the test failed"):
        with RedisServer() as redis:
            pids, directory = redis.pids(), redis.directory
            assert pids and directory.is_dir()
            raise RuntimeError("the test failed")
    assert not any(pid_alive(pid) for pid in pids)
    assert not directory.exists()


def test_a_failed_start_reports_the_log_and_leaves_nothing() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        redis = RedisServer(base_port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="(?s)exited with 1 on start.*in use"):
            redis.start()
    assert not redis.pids() and not redis.directory.exists()


def test_kasagi_instance_kill_pause_resume_restart(kasagi_instances: Any) -> None:
    (instance,) = kasagi_instances("--tick-rate", "10")
    assert instance.healthz()["status"] == "ok"  # type: ignore[index]
    instance.pause()
    assert instance.healthz(timeout=0.5) is None
    instance.resume()
    assert instance.healthz() is not None

    port = instance.port
    assert instance.kill() == -9
    assert instance.healthz() is None
    instance.restart()
    assert instance.port == port and instance.healthz() is not None
    assert instance.log_text().count("kasagi listening on") == 2  # one log, both runs


def test_kasagi_instance_outside_pytest() -> None:
    with KasagiInstance("--log-level", "warning") as instance:
        pid, log = instance.pid, instance.log_path
        assert instance.healthz() is not None
    assert not pid_alive(pid)  # type: ignore[arg-type]
    del instance
    assert not log.exists()  # the temporary log goes with the object


def test_a_kasagi_instance_moves_off_a_port_taken_before_its_first_start() -> None:
    # Another suite's process can bind the picked port before the server does.
    instance = KasagiInstance("--log-level", "warning")
    taken = instance.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with instance:
            assert instance.port != taken and instance.healthz() is not None
            assert "Address already in use" in instance.log_text()
            moved = instance.port
            instance.restart()  # once it has served, the port is kept
            assert instance.port == moved
        # a port that was given is never changed: the start fails and says why
        given = KasagiInstance("--log-level", "warning", port=taken)
        with pytest.raises(RuntimeError, match="Address already in use"):
            given.start()
        assert given.port == taken


def test_a_kasagi_instance_is_not_fooled_by_another_server_on_its_port() -> None:
    with KasagiInstance("--log-level", "warning") as squatter:
        instance = KasagiInstance("--log-level", "warning")
        # as if another suite's server had taken the port picked for this one: its /healthz
        # answers at once, while this instance's server is still starting
        instance._use_port(squatter.port)
        with instance:
            assert instance.port != squatter.port
            assert listens_on(instance.pid, instance.port)  # type: ignore[arg-type]
            assert not listens_on(instance.pid, squatter.port)  # type: ignore[arg-type]


USER_SUITE = """
    import pathlib

    def test_uses_the_fixtures(redis_server, kasagi_instances):
        (instance,) = kasagi_instances("--tick-rate", "5")
        pids = [*redis_server.pids(), instance.pid]
        pathlib.Path("pids.txt").write_text(" ".join(map(str, pids)))
        pathlib.Path("dir.txt").write_text(str(redis_server.directory))
        assert False, "the user's test fails"
"""


def test_the_plugin_in_a_users_failing_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_SUITE))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout
    assert "log of redis" in done.stdout and "log of kasagi-1" in done.stdout
    assert "Ready to accept connections" in done.stdout  # the log tail itself
    pids = [int(p) for p in (tmp_path / "pids.txt").read_text().split()]
    assert len(pids) == 2 and not any(pid_alive(pid) for pid in pids)
    assert not Path((tmp_path / "dir.txt").read_text()).exists()


# Apps whose `kasagi serve` ends as a sanitized child that caught something would: with a
# report on stderr (UBSan's format), or with TSan's exit code (scripts/test.sh sets 66).
SANITIZER_APPS = {
    "report_app.py": 'print("ws_session.cpp:1:1: runtime error: signed integer overflow", '
                     "file=sys.stderr, flush=True)",
    "exit_app.py": "os._exit(66)",
}
APP_TEMPLATE = """
    import atexit, os, sys
    from kasagi import RoomType

    class Quiet(RoomType):
        rooms = "quiet-*"

    atexit.register(lambda: {})
"""
SANITIZED_SUITE = """
    def test_report(kasagi_instances):
        kasagi_instances("--app", "report_app.py:Quiet")

    def test_exit_code(kasagi_instances):
        kasagi_instances("--app", "exit_app.py:Quiet")

    def test_clean(kasagi_instances):
        (instance,) = kasagi_instances()
        instance.kill()  # a test's own kill is not a finding
"""


def test_the_plugin_fails_a_test_whose_sanitized_child_reported(tmp_path: Path) -> None:
    for name, at_exit in SANITIZER_APPS.items():
        (tmp_path / name).write_text(textwrap.dedent(APP_TEMPLATE.format(at_exit)))
    (tmp_path / "test_sanitized.py").write_text(textwrap.dedent(SANITIZED_SUITE))

    def run(sanitized: bool) -> subprocess.CompletedProcess[str]:
        env = child_env()
        env.pop("KASAGI_SANITIZED", None)
        if sanitized:
            env["KASAGI_SANITIZED"] = "1"
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_sanitized.py"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )

    done = run(sanitized=True)
    assert done.returncode == 1 and " 2 errors" in done.stdout, done.stdout + done.stderr
    assert "ERROR at teardown of test_report" in done.stdout
    assert "runtime error: signed integer overflow" in done.stdout  # quoted in the failure
    assert "ERROR at teardown of test_exit_code" in done.stdout
    assert "exited with 66 after SIGTERM" in done.stdout
    # Without a sanitizer nothing is checked: the same children pass.
    done = run(sanitized=False)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr
