"""The ``kasagi`` command (also ``python -m kasagi``): the production entrypoint.

``kasagi serve`` runs a server until SIGTERM or SIGINT, then drains it: every client is
closed with 1001 "going away", the server waits up to ``drain_timeout`` seconds for them to
go, and the process exits 0. A second SIGINT (Ctrl-C) ends the process at once.

``kasagi redis up|status|failover-test|down|clean [--sentinel|--cluster]`` runs local
redis-server processes for development and tests (see :mod:`kasagi.testing.redis_command`).

Settings come from, in increasing precedence: the defaults of :class:`kasagi.Config` (with
``host`` 0.0.0.0 here), a TOML file (``--config``), and the command line, which has one
option per setting (``max_members_per_room`` is ``--max-members-per-room``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from kasagi.config import Config, ConfigError, option_name

__all__ = ["CLI_DEFAULTS", "OPTION_ALIASES", "build_parser", "config_from_args", "main"]

#: Where ``kasagi serve`` differs from the library defaults: it is the production entrypoint,
#: so it listens on every interface (the library listens on loopback only).
CLI_DEFAULTS: dict[str, Any] = {"host": "0.0.0.0"}

#: Further option names of some settings, for the commands people type most
#: (``kasagi serve --static clients/js/dist/demo``).
OPTION_ALIASES: dict[str, tuple[str, ...]] = {"static_dir": ("--static",)}

log = logging.getLogger("kasagi")


# ----------------------------------------------------------------------------------------
# Arguments


def _version() -> str:
    from kasagi import __version__

    return __version__


def _option_type(kind: str, name: str) -> Any:
    """Returns the argparse ``type`` converter for a Config field of ``kind``."""

    def convert(text: str) -> Any:
        try:
            return {"int": int, "float": float}.get(kind, str)(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{'an integer' if kind == 'int' else 'a number'} expected, got {text!r}"
            ) from None

    convert.__name__ = name  # argparse names the converter in its messages
    return convert


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of the ``kasagi`` command, with one ``serve`` option per setting."""
    from kasagi.config import _KINDS  # the field kinds, shared with validation

    parser = argparse.ArgumentParser(
        prog="kasagi",
        description="Kasagi: real-time state synchronization server.",
    )
    parser.add_argument("--version", action="version", version=f"kasagi {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run a server until SIGTERM/SIGINT, then drain it",
        description="Run a Kasagi server until SIGTERM or SIGINT, then drain it gracefully. "
        "Precedence of settings: defaults < --config file < options.",
        argument_default=argparse.SUPPRESS,  # only what was given overrides the TOML file
    )
    serve.add_argument(
        "-c", "--config", metavar="FILE.toml", help="read settings from this TOML file"
    )
    serve.add_argument(
        "--app",
        action="append",
        metavar="MODULE:ATTR",
        help="register the room type(s) ATTR of MODULE (a kasagi.RoomType subclass or a list "
        "of them; the current directory is importable); repeatable",
    )
    serve.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings as TOML and exit",
    )
    defaults = Config(**CLI_DEFAULTS)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(Config):
        section = f.metadata["section"]
        group = groups.get(section) or serve.add_argument_group(section.lower())
        groups[section] = group
        options = (option_name(f), *OPTION_ALIASES.get(f.name, ()))
        default = getattr(defaults, f.name)
        kind = _KINDS[f.name]
        help_text = f"{f.metadata['doc']} (default: {_show(default)})".replace("%", "%%")
        if kind == "list" and f.metadata["option"]:  # given once per value
            group.add_argument(*options, dest=f.name, action="append", metavar="VALUE",
                               help=help_text)
        elif kind == "list":
            group.add_argument(*options, dest=f.name, nargs="*", metavar="PATTERN", help=help_text)
        elif kind == "bool":
            group.add_argument(*options, dest=f.name, action=argparse.BooleanOptionalAction,
                               help=help_text)
        elif f.metadata["choices"]:
            group.add_argument(*options, dest=f.name, choices=f.metadata["choices"], help=help_text)
        else:
            group.add_argument(
                *options,
                dest=f.name,
                type=_option_type(kind, f.name),
                metavar={"int": "N", "float": "X", "str": "TEXT"}[kind],
                help=help_text,
            )
    serve.set_defaults(func=lambda args: _serve(args, serve))
    _add_redis_parser(commands)
    _add_trace_parser(commands)
    return parser


def _add_trace_parser(commands: Any) -> None:
    """``kasagi trace summary FILE...``: the key figures of recorded traces."""
    trace = commands.add_parser(
        "trace",
        help="read recorded traces (kasagi.trace)",
        description="Read traces recorded by a server (trace_file) or by clients "
        "(AsyncClient(trace=...)); several files are read as one trace.",
    )
    trace.add_argument("action", choices=("summary",),
                       help="summary: rooms, clients, deltas, bytes, latency, gaps, resyncs")
    trace.add_argument("files", nargs="+", metavar="FILE",
                       help="trace files, Parquet directories, or a redis:// URL with --room")
    trace.add_argument("--room", help="with a redis:// URL: the room whose log to read")
    trace.add_argument("--key-prefix", default="", help="with a redis:// URL: the key prefix")
    trace.add_argument("--json", action="store_true", help="print the figures as JSON")
    trace.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    import json

    from kasagi import trace

    try:
        loaded = trace.load(list(args.files), room=args.room, key_prefix=args.key_prefix)
    except (ImportError, OSError, ValueError) as err:  # ImportError: pandas missing
        print(f"kasagi trace {args.action}: {err}", file=sys.stderr)
        return 1
    figures = trace.summary(loaded)
    print(json.dumps(figures, indent=2) if args.json else trace.format_summary(figures))
    return 0


def _add_redis_parser(commands: Any) -> None:
    """``kasagi redis ACTION``: local Redis topologies (logic in kasagi.testing)."""
    redis = commands.add_parser(
        "redis",
        help="run a local Redis, Sentinel group or Cluster for development and tests",
        description="Start, inspect, fail over and stop local redis-server processes. Their "
        "state (configs, data, logs, pids) lives in --dir, so each command finds what an "
        "earlier one started.",
    )
    redis.add_argument(
        "action",
        choices=("up", "status", "failover-test", "down", "clean"),
        help="up: start (or restart) the topology; status: roles, replication lag and the "
        "kasagi serve options; failover-test: kill the master and time the failover; "
        "down: stop every node (data kept); clean: down, then remove --dir",
    )
    kind = redis.add_mutually_exclusive_group()
    kind.add_argument("--sentinel", dest="kind", action="store_const", const="sentinel",
                      help="up: a master, 2 replicas and 3 Sentinels (deploy/sentinel configs)")
    kind.add_argument("--cluster", dest="kind", action="store_const", const="cluster",
                      help="up: a Cluster of 3 masters and 3 replicas")
    redis.add_argument("--dir", type=Path, default=None, metavar="DIR",
                       help="the state directory (default: ./.kasagi-redis)")
    redis.add_argument("--base-port", type=int, metavar="PORT",
                       help="up: consecutive ports from PORT (default: free ports)")
    redis.add_argument("--password", metavar="TEXT", help="up: requirepass of the data nodes")
    redis.add_argument("--down-after", type=int, metavar="MS",
                       help="up --sentinel: down-after-milliseconds (default 1000)")
    redis.set_defaults(func=_redis, kind="standalone")


def _redis(args: argparse.Namespace) -> int:
    from kasagi.testing import redis_command

    directory = args.dir or redis_command.DEFAULT_DIR
    options: dict[str, Any] = {"base_port": args.base_port, "password": args.password}
    if args.down_after is not None:
        if args.kind != "sentinel":
            print("kasagi redis: --down-after goes with --sentinel", file=sys.stderr)
            return 2
        options["down_after_ms"] = args.down_after
    try:
        if args.action == "up":
            text = redis_command.up(directory, args.kind, **options)
        else:
            action = getattr(redis_command, args.action.replace("-", "_"))
            text = action(directory)
    except (redis_command.CommandError, RuntimeError, TimeoutError) as err:
        print(f"kasagi redis {args.action}: {err}", file=sys.stderr)
        return 1
    print(text)
    return 0


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    return str(value) if value != "" else "none"


def config_from_args(args: argparse.Namespace) -> Config:
    """Returns the Config of parsed ``serve`` arguments: CLI defaults, then the TOML file,
    then the options given.

    Raises:
        ConfigError: the file or an option is invalid.
    """
    config = Config(**CLI_DEFAULTS)
    path = getattr(args, "config", None)
    if path is not None:
        config = Config.from_toml(path, base=config)
    given = {name: getattr(args, name) for name in Config.field_names() if hasattr(args, name)}
    try:
        return config.replace(**given)
    except ConfigError as err:
        text = str(err)
        if err.key and text.startswith(f"{err.key}: "):  # name the option, not the field
            field = next(f for f in dataclasses.fields(Config) if f.name == err.key)
            text = f"argument {option_name(field)}: {text[len(err.key) + 2 :]}"
        raise ConfigError(text, key=err.key) from None


# ----------------------------------------------------------------------------------------
# serve


class _UTCFormatter(logging.Formatter):
    """Formats lines like the C++ core does: ``2026-11-23T10:00:00.123Z INFO message``."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("kasagi")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.CRITICAL + 1 if level == "off" else level.upper())


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as err:
        parser.error(str(err))  # exits 2
    if getattr(args, "print_config", False):
        sys.stdout.write(config.to_toml())
        return 0
    _setup_logging(config.log_level)
    from kasagi.server import Server

    server = Server(config)
    try:
        for target in getattr(args, "app", None) or ():
            for room_type in load_app(target):
                server.add_room_type(room_type)
                log.info("room type %s for rooms %s", room_type.type_name(),
                         " ".join(room_type.patterns()))
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        log.error("kasagi --app: %s", err)
        return 2
    try:
        server.start()
    except (RuntimeError, ValueError, OSError) as err:
        log.error("kasagi cannot start on %s:%s: %s", config.host, config.port, err)
        return 1
    host = f"[{config.host}]" if ":" in config.host else config.host
    log.info(
        "kasagi listening on %s://%s:%d/sync (version %s, threads=%s, tick_rate=%g Hz)",
        "wss" if server.tls else "ws",
        host,
        server.port,
        _version(),
        config.threads or "auto",
        config.tick_rate,
    )
    return _run_until_signal(server, config)


def load_app(target: str) -> list[Any]:
    """Returns the room types ``MODULE:ATTR`` names (``ATTR`` may be dotted). MODULE is a
    module name (the current directory is importable) or the path of a ``.py`` file.

    Raises:
        ValueError: ``target`` is not of the form MODULE:ATTR.
        ImportError, AttributeError: the module or attribute does not exist.
        TypeError: the attribute is not a RoomType subclass or a list of them.
    """
    import importlib
    import importlib.util

    from kasagi.rooms import room_types_of

    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{target!r}: expected MODULE:ATTR, e.g. examples/arena/app.py:Arena")
    obj: Any
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        spec = importlib.util.spec_from_file_location(f"kasagi_app_{path.stem}", path)
        if spec is None or spec.loader is None or not path.is_file():
            raise ImportError(f"no Python file {module_name}")
        obj = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = obj
        spec.loader.exec_module(obj)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return room_types_of(obj)


def _run_until_signal(server: Any, config: Config) -> int:
    """Blocks until SIGTERM/SIGINT (or until the server stops by itself), then drains."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        # A second Ctrl-C ends the process at once instead of waiting for the drain; a
        # repeated SIGTERM changes nothing (supervisors escalate to SIGKILL themselves).
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        # A timed wait lets the interpreter run the signal handler promptly.
        while not stop.wait(0.5):
            if not server.running:
                log.error("kasagi stopped unexpectedly")
                return 1
        name = signal.Signals(received[0]).name
        log.info("kasagi received %s: draining connections (up to %gs)", name, config.drain_timeout)
        server.drain(config.drain_timeout)
        log.info("kasagi stopped")
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ----------------------------------------------------------------------------------------
# Entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``kasagi`` command with ``argv`` (default: ``sys.argv[1:]``); returns the
    exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
