"""kasagi.cli: options generated from Config, precedence, and `kasagi serve` as a process."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kasagi.cli import CLI_DEFAULTS, build_parser, config_from_args, main
from kasagi.config import Config, ConfigError, option_name


def parse(*argv: str) -> Config:
    return config_from_args(build_parser().parse_args(["serve", *argv]))


# ----------------------------------------------------------------------------------------
# Arguments to Config


def test_defaults_listen_everywhere_on_8080() -> None:
    config = parse()
    assert config.host == "0.0.0.0" == CLI_DEFAULTS["host"]
    assert config == Config(host="0.0.0.0")
    assert config.port == 8080


def test_every_setting_has_an_option() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()  # type: ignore[union-attr]
    for f in dataclasses.fields(Config):
        assert option_name(f) in help_text, f.name


def test_options_are_converted_to_the_field_types() -> None:
    config = parse(
        "--host", "::", "--port", "0", "--threads", "2", "--tick-rate", "0",
        "--max-members-per-room", "4", "--session-grace", "1.5", "--log-level", "debug",
        "--writable-paths", "/players/$self", "/board/*",
    )  # fmt: skip
    assert (config.host, config.port, config.threads) == ("::", 0, 2)
    assert config.tick_rate == 0.0 and type(config.tick_rate) is float
    assert config.max_members_per_room == 4 and config.session_grace == 1.5
    assert config.log_level == "debug"
    assert config.writable_paths == ("/players/$self", "/board/*")
    assert parse("--writable-paths").writable_paths == ()


def test_static_is_another_name_for_static_dir() -> None:
    assert parse("--static", "site").static_dir == "site"
    assert parse("--static-dir", "site").static_dir == "site"


def test_security_options(tmp_path: Path) -> None:
    config = parse(
        "--jwt-secret", "s3cret", "--jwt-public-key", "/keys/jwt.pem",
        "--allowed-origin", "https://a.example", "--allowed-origin", "http://b.example:8000",
        "--tls-cert", "/tls/cert.pem", "--tls-key", "/tls/key.pem",
        "--permessage-deflate", "--max-connections-per-ip", "0",
    )  # fmt: skip
    assert config.jwt_secret == "s3cret" and config.jwt_public_key == "/keys/jwt.pem"
    assert config.allowed_origins == ("https://a.example", "http://b.example:8000")
    assert (config.tls_cert, config.tls_key) == ("/tls/cert.pem", "/tls/key.pem")
    assert config.permessage_deflate is True and config.max_connections_per_ip == 0
    assert parse("--no-permessage-deflate").permessage_deflate is False
    assert "s3cret" not in repr(config)  # a logged Config does not leak the secret
    path = tmp_path / "kasagi.toml"
    path.write_text('allowed_origins = ["https://c.example"]\npermessage_deflate = true\n')
    assert parse("--config", str(path)).allowed_origins == ("https://c.example",)
    assert parse("--config", str(path), "--allowed-origin", "https://d.example").allowed_origins == (
        "https://d.example",
    )


def test_precedence_defaults_then_toml_then_options(tmp_path: Path) -> None:
    path = tmp_path / "kasagi.toml"
    path.write_text('host = "10.0.0.1"\nport = 9000\ntick_rate = 30\nmax_rooms = 5\n')
    config = parse("--config", str(path), "--port", "9100", "--max-rooms", "6")
    assert config.host == "10.0.0.1"  # TOML over the CLI default
    assert config.tick_rate == 30.0  # TOML over the library default
    assert (config.port, config.max_rooms) == (9100, 6)  # options over TOML
    assert config.threads == 0  # untouched default


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "http"], "argument --port: an integer expected, got 'http'"),
        (["--tick-rate", "fast"], "argument --tick-rate: a number expected, got 'fast'"),
        (["--port", "70000"], "argument --port: must be between 0 and 65535; got 70000"),
        (["--tick-rate", "-1"], "argument --tick-rate: must be between 0"),
        (["--log-level", "loud"], "invalid choice: 'loud'"),
        (["--no-such-option", "1"], "unrecognized arguments: --no-such-option"),
        (["--max-message-bytes", "2000000"], "max_frame_bytes (1048576) must be at least"),
        (["--allowed-origin", "example.com"], "argument --allowed-origin: 'example.com' is not"),
        (["--tls-cert", "c.pem"], "tls_cert and tls_key: give both"),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_toml_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("tickrate = 3\n")
    with pytest.raises(SystemExit) as info:
        main(["serve", "--config", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown setting 'tickrate'" in err and "did you mean 'tick_rate'" in err


def test_config_from_args_raises_config_error(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--config", str(tmp_path / "none.toml")])
    with pytest.raises(ConfigError, match="cannot read"):
        config_from_args(args)


def test_print_config_prints_toml_that_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--print-config", "--port", "1234", "--tick-rate", "5"]) == 0
    path = tmp_path / "out.toml"
    path.write_text(capsys.readouterr().out)
    assert Config.from_toml(path) == Config(host="0.0.0.0", port=1234, tick_rate=5)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import kasagi

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kasagi {kasagi.__version__}"


def test_no_command_prints_help_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------
# `kasagi serve` as a process (needs the native core)


def test_serve_answers_healthz_and_exits_0_on_sigterm(kasagi_instances: Any) -> None:
    (serve,) = kasagi_instances("--tick-rate", "10")
    with urllib.request.urlopen(serve.http_url + "/healthz", timeout=5) as response:
        assert response.status == 200
        json.loads(response.read())  # a small JSON status
    status, stderr = serve.terminate()
    assert status == 0, stderr
    assert f"kasagi listening on ws://127.0.0.1:{serve.port}/sync" in stderr
    assert "kasagi received SIGTERM" in stderr
    assert "kasagi stopped" in stderr


def test_serve_exits_0_on_sigint(kasagi_instances: Any) -> None:
    (serve,) = kasagi_instances()
    serve.send_signal(signal.SIGINT)
    status, stderr = serve.wait(15), serve.log_text()
    assert status == 0, stderr
    assert "kasagi received SIGINT" in stderr


def test_sigterm_closes_clients_with_1001(kasagi_instances: Any) -> None:
    from kasagi import AsyncClient

    (serve,) = kasagi_instances("--drain-timeout", "5")

    async def scenario() -> tuple[int | None, str | None]:
        client = AsyncClient()
        await client.connect(serve.url, auto_reconnect=False)
        try:
            await client.join("room1", playerName="ada")
            serve.send_signal(signal.SIGTERM)
            return await client.wait_closed(timeout=10)
        finally:
            await client.close()

    code, reason = asyncio.run(scenario())
    assert code == 1001, reason
    status, stderr = serve.wait(15), serve.log_text()
    assert status == 0, stderr


def test_serve_reads_the_toml_file(kasagi_instances: Any, tmp_path: Path) -> None:
    path = tmp_path / "kasagi.toml"
    path.write_text("max_members_per_room = 1\n")
    (serve,) = kasagi_instances("--config", str(path))

    async def scenario() -> str:
        from kasagi import AsyncClient, KasagiError

        async with AsyncClient() as a, AsyncClient() as b:
            await a.connect(serve.url)
            await b.connect(serve.url)
            await a.join("full")
            with pytest.raises(KasagiError) as info:
                await b.join("full")
            return info.value.code

    assert asyncio.run(scenario()) == "ROOM_FULL"


def test_serve_exits_1_when_the_port_is_taken(server: Any, run_kasagi: Any) -> None:
    proc = run_kasagi("serve", "--host", "127.0.0.1", "--port", str(server.port))
    assert proc.returncode == 1, proc.stderr
    # One line an operator can act on: what failed and why, no library source locations.
    assert (f"kasagi cannot start on 127.0.0.1:{server.port}: cannot listen on "
            f"127.0.0.1:{server.port}: bind: Address already in use\n") in proc.stderr


def test_python_m_kasagi_version(run_kasagi: Any) -> None:
    proc = run_kasagi("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kasagi "), proc.stderr


def test_field_order_groups_sections_contiguously() -> None:
    # The generated help and docs group fields by section: a section must not reappear.
    seen: list[str] = []
    for f in dataclasses.fields(Config):
        if not seen or seen[-1] != f.metadata["section"]:
            assert f.metadata["section"] not in seen, f.name
            seen.append(f.metadata["section"])
