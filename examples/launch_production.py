"""A production-style entrypoint for a Kasagi server with your own room types: what a
deployment's ``main.py`` looks like when ``kasagi serve`` is not enough (you want your own
logging, start-up checks, or to run code around the server's life).

- Settings: defaults < a TOML file (``--config`` or ``$KASAGI_CONFIG``) < environment
  variables (``KASAGI_PORT=9000``, ``KASAGI_REDIS=redis://cache:6379/0``: any setting of
  docs/configuration.md, upper-cased, prefixed with ``KASAGI_``). A bad value exits 2 with
  the setting named, before anything starts.
- Logging: one line per event, ``time level logger message``, on stderr, at the configured
  ``log_level``; a status line (connections, rooms, members) every ``--status-every`` seconds.
- Room types: the arena game of examples/arena (speed-limited players, NPCs), registered in
  code.
- Shutdown: SIGTERM or SIGINT drains the server (clients are told 1001 "going away" and given
  ``drain_timeout`` seconds to reconnect elsewhere), then the process exits 0.

Run it::

    python examples/launch_production.py --config deploy/kasagi.toml
    KASAGI_PORT=9000 KASAGI_TICK_RATE=30 python examples/launch_production.py

tests/integration/test_examples.py runs it with a TOML file and an environment override,
plays through it, sends SIGTERM, and checks the drain and the exit status.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import kasagi

sys.path.insert(0, str(Path(__file__).resolve().parent / "arena"))
from app import Arena  # noqa: E402  (examples/arena/app.py)

log = logging.getLogger("launch")


def load_config(path: str | None) -> kasagi.Config:
    """Defaults for a production process, then the TOML file, then the environment."""
    config = kasagi.Config(host="0.0.0.0")
    if path:
        config = kasagi.Config.from_toml(path, base=config)
    return kasagi.Config.from_env(base=config)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.CRITICAL + 1 if level == "off" else level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.environ.get("KASAGI_CONFIG"),
                        help="TOML settings file (default: $KASAGI_CONFIG)")
    parser.add_argument("--status-every", type=float, default=60.0, metavar="SECONDS",
                        help="seconds between status lines (0: none)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except kasagi.ConfigError as err:
        print(f"launch: {err}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)

    server = kasagi.Server(config)
    server.add_room_type(Arena)
    try:
        server.start()
    except (RuntimeError, ValueError, OSError) as err:
        log.error("cannot start: %s", err)
        return 1
    log.info("ready: %s (kasagi %s, tick_rate %g Hz, redis %s)", server.url,
             kasagi.__version__, config.tick_rate, config.redis or "none")

    stop = threading.Event()
    signals: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    period = args.status_every if args.status_every > 0 else None
    while not stop.wait(period):
        stats = server.stats()
        log.info("status: %d connections, %d rooms, %d members",
                 stats["connections"], stats["rooms"], stats["members"])

    log.info("%s: draining (up to %g s)", signal.Signals(signals[0]).name, config.drain_timeout)
    server.drain()
    server.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
