"""kasagi.config: defaults, validation, TOML, and agreement with the native core."""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import pytest

from kasagi.config import LOG_LEVELS, Config, ConfigError, Settings, docs_markdown, option_name

# The documented defaults (PROTOCOL.md, DESIGN.md, cpp/server/config.hpp), written out once
# more on purpose: changing a default must be a deliberate act that shows in this test.
EXPECTED_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 8080,
    "threads": 0,
    "io_batch_wait": 0.001,
    "static_dir": "",
    "jwt_secret": "",
    "jwt_public_key": "",
    "allowed_origins": (),
    "tls_cert": "",
    "tls_key": "",
    "tick_rate": 20.0,
    "room_empty_ttl": 30.0,
    "max_rooms": 10000,
    "max_members_per_room": 100,
    "delta_history": 256,
    "delta_history_bytes": 1048576,
    "conflict_window": 4096,
    "writable_paths": ("/players/$self",),
    "max_state_depth": 32,
    "hook_threads": 2,
    "session_grace": 60.0,
    "idle_timeout": 30.0,
    "handshake_timeout": 10.0,
    "max_rooms_per_connection": 16,
    "max_message_bytes": 65536,
    "max_frame_bytes": 1048576,
    "rate_limit": 100.0,
    "rate_burst": 200.0,
    "rate_limit_close_after": 10.0,
    "max_header_bytes": 8192,
    "max_header_count": 64,
    "max_fragments": 64,
    "permessage_deflate": False,
    "read_bytes_per_second": 1048576,
    "max_connections_per_ip": 256,
    "join_rate_per_ip": 20.0,
    "join_burst_per_ip": 100.0,
    "send_queue_max_bytes": 4194304,
    "send_queue_max_messages": 4096,
    "slow_consumer_window": 10.0,
    "redis": "",
    "sentinel": "",
    "master_name": "kasagi-master",
    "cluster": "",
    "redis_password": "",
    "sentinel_password": "",
    "key_prefix": "",
    "durability": "auto",
    "lease_ttl": 3.0,
    "snapshot_every": 100,
    "snapshot_interval": 10.0,
    "ops_max_len": 1000,
    "wait_timeout": 1.0,
    "redis_replay_timeout": 5.0,
    "drain_timeout": 5.0,
    "log_level": "info",
    "trace_file": "",
    "trace_rooms": (),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kasagi.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------
# Defaults and documentation


def test_defaults() -> None:
    config = Config()
    assert {f.name: getattr(config, f.name) for f in dataclasses.fields(config)} == (
        EXPECTED_DEFAULTS
    )
    for name, value in EXPECTED_DEFAULTS.items():
        assert type(getattr(config, name)) is type(value), name


def test_every_field_is_documented() -> None:
    for f in dataclasses.fields(Config):
        assert f.metadata["doc"].strip(), f.name
        assert f.metadata["why"].strip(), f.name
        assert f.metadata["section"], f.name


def test_docs_markdown_lists_every_field_with_its_default() -> None:
    text = docs_markdown()
    assert text.startswith("# Configuration\n")
    sections = ("Network", "Security", "Rooms", "Sessions", "Limits on input", "Output")
    for section in (*sections, "Lifecycle"):
        assert f"\n## {section}\n" in text
    for f in dataclasses.fields(Config):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{f.name}`"))
        assert option_name(f) in row
    assert "| `8080` |" in text and '`["/players/$self"]`' in text and "`20.0`" in text


def test_settings_typeddict_lists_every_field() -> None:
    assert set(typing.get_type_hints(Settings)) == set(Config.field_names())


# ----------------------------------------------------------------------------------------
# The native core agrees


def test_core_defaults_equal_config_defaults() -> None:
    from kasagi import _core

    core = _core.ServerConfig()
    core_fields = {name for name in dir(core) if not name.startswith("_")}
    assert core_fields == set(Config.field_names())
    expected = Config().to_dict()
    for name in Config.field_names():
        assert getattr(core, name) == expected[name], name
        assert type(getattr(core, name)) is type(expected[name]), name


def test_core_refuses_bad_sentinel_settings() -> None:
    from kasagi import _core

    _core.Server(Config(sentinel="127.0.0.1:26379,[::1]:26380").to_core())  # accepted
    for sentinel, master_name, message in [
        ("nope", "m", "sentinel: 'nope' has no port"),
        ("h:99999", "m", "sentinel: 'h:99999' needs a port"),
        ("h:1", "", "master_name: must not be empty"),
    ]:
        core = Config().to_core()
        core.sentinel, core.master_name = sentinel, master_name
        with pytest.raises(ValueError, match=message):
            _core.Server(core)
    core = Config(sentinel="h:1").to_core()
    core.redis = "redis://h"
    with pytest.raises(ValueError, match="redis, sentinel and cluster: give one"):
        _core.Server(core)
    core = Config().to_core()
    core.cluster = "h:1,nope"
    with pytest.raises(ValueError, match="cluster: 'nope' has no port"):
        _core.Server(core)


def test_to_core_round_trip() -> None:
    config = Config(
        host="0.0.0.0",
        port=9001,
        threads=3,
        tick_rate=0,
        writable_paths=["/players/$self", "/board/*"],
        max_message_bytes=1000,
        max_frame_bytes=2000,
        log_level="debug",
    )
    core = config.to_core()
    assert core.writable_paths == ["/players/$self", "/board/*"]
    assert core.tick_rate == 0.0 and core.port == 9001
    assert Config.from_core(core) == config


# ----------------------------------------------------------------------------------------
# Validation


def test_is_frozen_and_keyword_only() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        Config("0.0.0.0")  # type: ignore[misc]


def test_replace_merges_and_validates() -> None:
    base = Config(port=9000)
    derived = base.replace(tick_rate=30, writable_paths=["/a/*"])
    assert (derived.port, derived.tick_rate, derived.writable_paths) == (9000, 30.0, ("/a/*",))
    assert type(derived.tick_rate) is float
    assert base.tick_rate == 20.0  # unchanged
    with pytest.raises(ConfigError, match=r"unknown setting 'tick_rat'.*did you mean 'tick_rate'"):
        base.replace(tick_rat=1)
    with pytest.raises(ConfigError, match="port"):
        base.replace(port=-1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 65536}, r"port: must be between 0 and 65535; got 65536"),
        ({"port": -1}, r"port: must be between 0 and 65535"),
        ({"port": "80"}, r"port: must be an integer, got '80' \(str\)"),
        ({"port": 80.0}, r"port: must be an integer"),
        ({"port": True}, r"port: must be an integer"),
        ({"threads": -1}, r"threads: must be between 0"),
        ({"tick_rate": -0.5}, r"tick_rate: must be between 0 and 10000"),
        ({"tick_rate": math.nan}, r"tick_rate: must be a number \(finite\)"),
        ({"tick_rate": math.inf}, r"tick_rate: must be a number \(finite\)"),
        ({"tick_rate": "fast"}, r"tick_rate: must be a number"),
        ({"max_rooms": 0}, r"max_rooms: must be between 1 and 4294967295; got 0"),
        ({"max_members_per_room": 0}, r"max_members_per_room: must be between 1"),
        ({"max_members_per_room": 2**32}, r"max_members_per_room: must be between 1"),
        ({"idle_timeout": 0}, r"idle_timeout: must be > 0; got 0.0"),
        ({"rate_limit": 0}, r"rate_limit: must be > 0"),
        ({"rate_burst": 0.5}, r"rate_burst: must be >= 1"),
        ({"session_grace": -1}, r"session_grace: must be >= 0"),
        ({"max_frame_bytes": 1000}, r"max_frame_bytes \(1000\) must be at least max_message_bytes"),
        ({"log_level": "verbose"}, r"log_level: must be one of debug, info, warning, error, off"),
        ({"host": ""}, r"host: must not be empty"),
        ({"writable_paths": "/players/$self"}, r"writable_paths: must be a list of strings"),
        ({"writable_paths": ["players/*"]}, r"writable_paths: 'players/\*' is not a JSON Pointer"),
        ({"writable_paths": [1]}, r"writable_paths: must be a list of strings"),
        ({"allowed_origins": ["https://a.example/"]}, r"allowed_origins: 'https://a.example/'"),
        ({"allowed_origins": ["*"]}, r"allowed_origins: '\*' is not an origin"),
        ({"tls_key": "k.pem"}, r"tls_cert and tls_key: give both"),
        ({"permessage_deflate": 1}, r"permessage_deflate: must be true or false"),
        ({"max_header_bytes": 100}, r"max_header_bytes: must be between 256"),
        ({"join_rate_per_ip": -1}, r"join_rate_per_ip: must be >= 0"),
        ({"sentinel": "host"}, r"sentinel: 'host' is not HOST:PORT"),
        ({"sentinel": "a:1, b:x"}, r"sentinel: 'b:x' is not HOST:PORT"),
        ({"sentinel": "a:1", "redis": "redis://h"}, r"redis and sentinel: give one or the other"),
        ({"master_name": "", "sentinel": "a:1"}, r"master_name: must not be empty"),
        ({"cluster": "a:1,b"}, r"cluster: 'b' is not HOST:PORT"),
        ({"cluster": "a:1", "redis": "redis://h"}, r"cluster: give redis, sentinel or cluster"),
    ],
)
def test_invalid_values_are_refused_with_the_setting_named(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Config(**changes)
    assert isinstance(info.value, ValueError)
    assert info.value.key == next(iter(changes))


def test_edge_values_are_accepted() -> None:
    config = Config(
        port=0,
        tick_rate=0,
        delta_history=0,
        writable_paths=[],
        max_message_bytes=10,
        max_frame_bytes=10,
        session_grace=0,
    )
    assert config.writable_paths == () and config.tick_rate == 0.0
    for level in LOG_LEVELS:
        assert Config(log_level=level).log_level == level


# ----------------------------------------------------------------------------------------
# TOML


def test_from_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        # a comment
        port = 9000
        tick_rate = 30            # an integer is fine for a float setting
        writable_paths = ["/players/$self", "/board/*"]
        log_level = "warning"
        """,
    )
    config = Config.from_toml(path)
    assert config == Config(
        port=9000,
        tick_rate=30.0,
        writable_paths=("/players/$self", "/board/*"),
        log_level="warning",
    )
    # Missing keys keep the base's values.
    assert Config.from_toml(path, base=Config(threads=4, port=1)).threads == 4
    assert Config.from_toml(str(path)).port == 9000


def test_to_toml_round_trip(tmp_path: Path) -> None:
    config = Config(tick_rate=1, host="::", writable_paths=['/a "quoted"/*'], log_level="off")
    assert Config.from_toml(write(tmp_path, config.to_toml())) == config


def test_toml_unknown_key_names_it_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "port = 1\nmax_member_per_room = 3\n")
    with pytest.raises(ConfigError) as info:
        Config.from_toml(path)
    assert str(path) in str(info.value)
    assert "unknown setting 'max_member_per_room'" in str(info.value)
    assert "did you mean 'max_members_per_room'" in str(info.value)
    assert info.value.key == "max_member_per_room"


def test_toml_dashed_key_suggests_the_underscored_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'tick_rate'"):
        Config.from_toml(write(tmp_path, "tick-rate = 3\n"))


def test_toml_tables_are_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'server'"):
        Config.from_toml(write(tmp_path, "[server]\nport = 1\n"))


def test_toml_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, 'port = "8080"\n')
    with pytest.raises(ConfigError, match=r"kasagi.toml: port: must be an integer, got '8080'"):
        Config.from_toml(path)
    with pytest.raises(ConfigError, match="max_rooms: must be an integer"):
        Config.from_toml(write(tmp_path, "max_rooms = 1.5\n"))


def test_toml_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tick_rate: must be between 0"):
        Config.from_toml(write(tmp_path, "tick_rate = -1\n"))


def test_toml_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        Config.from_toml(write(tmp_path, "port = = 1\n"))


def test_toml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Config.from_toml(tmp_path / "missing.toml")


# ----------------------------------------------------------------------------------------
# Environment


def test_from_env_reads_prefixed_settings_of_every_kind() -> None:
    env = {
        "KASAGI_PORT": "9000",
        "KASAGI_TICK_RATE": "30.5",
        "KASAGI_PERMESSAGE_DEFLATE": "yes",
        "KASAGI_ALLOWED_ORIGINS": "https://a.example, https://b.example,",
        "KASAGI_REDIS": "redis://cache:6379/1",
        "KASAGI_SANITIZED": "1",  # shares the prefix, names no setting: ignored
        "PORT": "1",
    }
    config = Config.from_env(env, base=Config(host="0.0.0.0"))
    assert config.port == 9000 and config.tick_rate == 30.5 and config.permessage_deflate
    assert config.allowed_origins == ("https://a.example", "https://b.example")
    assert config.redis == "redis://cache:6379/1" and config.host == "0.0.0.0"
    assert Config.from_env({}) == Config()
    assert Config.from_env({"APP_PORT": "7"}, prefix="APP_").port == 7


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("KASAGI_PORT", "eighty", "KASAGI_PORT='eighty'"),
        ("KASAGI_PORT", "70000", "port"),
        ("KASAGI_PERMESSAGE_DEFLATE", "maybe", "true or false"),
        ("KASAGI_LOG_LEVEL", "loud", "log_level"),
    ],
)
def test_from_env_refuses_bad_values(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        Config.from_env({variable: value})
    assert info.value.key == variable.removeprefix("KASAGI_").lower()


def test_the_core_type_stub_lists_every_setting() -> None:
    import re

    stub = (Path(__file__).resolve().parents[2] / "python/kasagi/_core.pyi").read_text()
    block = stub[stub.index("class ServerConfig"):stub.index("class Server:")]
    assert re.findall(r"^    (\w+):", block, re.M) == list(Config.field_names())
