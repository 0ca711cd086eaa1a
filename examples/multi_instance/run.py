"""Multi-instance: three ``kasagi serve`` instances sharing their rooms through Redis, behind
HAProxy, with bots writing through the balancer.

Starts a redis-server, the instances (``kasagi serve --redis redis://...``) and HAProxy with
a configuration generated from ``haproxy.cfg.template``, all on free loopback ports, then
runs :func:`kasagi.testing.run_scenario` through the balancer: every client connects to
``ws://127.0.0.1:PORT/sync?room=ID`` with its own room in the URL and writes to its own
player entry, waiting for each ACK. At the end it reports convergence, ACKed updates lost,
and which instances served each room (from HAProxy's log) and what each instance held
(its ``/healthz`` and ``/metrics``).

    python examples/multi_instance/run.py                          # --balance room
    python examples/multi_instance/run.py --balance roundrobin --seconds 20

Exit status: 0 when the clients converged with no ACKed update lost (and, with
``--balance room``, every room was served by one instance); 1 otherwise; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import string
import sys
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import quote

from kasagi import KasagiError
from kasagi.testing import (
    KasagiInstance,
    ManagedProcess,
    RedisServer,
    ScenarioReport,
    free_port,
    run_scenario,
)

HERE = Path(__file__).resolve().parent
#: ``--balance`` -> HAProxy's ``balance`` algorithm.
BALANCE = {"room": "url_param room", "roundrobin": "roundrobin"}
#: The line the template's log-format writes for each WebSocket connection.
ROUTE = re.compile(r"^route room=(\S*) server=(\S+)", re.MULTILINE)


class HAProxy(ManagedProcess):
    """``haproxy -db -f CONFIG``: in the foreground, its log (stdout) in ``log_path``.
    Ready once ``GET /healthz`` through it reaches an instance."""

    def __init__(self, config: Path, port: int, log_path: Path) -> None:
        self.port = port
        # Without LD_PRELOAD: the sanitizer test run preloads ASan, which is not for HAProxy.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        argv = ["haproxy", "-db", "-f", str(config)]
        super().__init__(argv, log_path, name="haproxy", env=env)

    def ready(self) -> bool:
        return http_get(f"http://127.0.0.1:{self.port}/healthz") is not None

    def routes(self) -> dict[str, set[str]]:
        """Room -> the instances HAProxy sent its WebSocket connections to (from its log:
        one line per connection, reconnections included)."""
        rooms: dict[str, set[str]] = {}
        for room, server in ROUTE.findall(self.log_text()):
            if room not in ("", "-"):  # the readiness check above names no room
                rooms.setdefault(room, set()).add(server)
        return rooms


def http_get(url: str) -> str | None:
    """The body of a 200 answer, or None (an error status, refused, timed out)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:  # URLError and HTTPError included
        return None


def metric(instance: KasagiInstance, name: str) -> float | None:
    """A counter or gauge without labels from the instance's ``/metrics``, or None."""
    text = http_get(instance.http_url + "/metrics") or ""
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def write_config(directory: Path, port: int, balance: str, instances: list[KasagiInstance]) -> Path:
    """Renders haproxy.cfg.template into ``directory``; returns the file."""
    template = string.Template((HERE / "haproxy.cfg.template").read_text())
    servers = "\n".join(f"    server {i.name} 127.0.0.1:{i.port}" for i in instances)
    config = directory / "haproxy.cfg"
    config.write_text(template.substitute(port=port, balance=BALANCE[balance], servers=servers))
    return config


async def run(args: argparse.Namespace, haproxy: HAProxy, instances: list[KasagiInstance]) -> bool:
    """Runs the bots through the balancer, prints the report; returns whether it passed."""
    rooms = [f"match-{r}" for r in range(args.rooms)]
    # run_scenario puts client i in room i % rooms and connects it to urls[i % len(urls)]:
    # with one URL per room, every client names its own room in its URL.
    urls = [f"ws://127.0.0.1:{haproxy.port}/sync?room={quote(room)}" for room in rooms]
    print(f"--balance {args.balance}: {args.clients} clients in {args.rooms} rooms through"
          f" HAProxy ws://127.0.0.1:{haproxy.port}/sync?room=..., {len(instances)} instances,"
          f" {args.seconds:g} s at {args.rate:g} updates/s", flush=True)
    # request_timeout: when a room's first clients join on several instances at once, a
    # relay's join can wait for its resend (about 2 s) while the authority is being decided.
    scenario = asyncio.create_task(run_scenario(
        urls, clients=args.clients, rooms=args.rooms, rate=args.rate, before=args.seconds,
        after=0.0, room_prefix="match", request_timeout=5.0))
    await asyncio.sleep(args.seconds / 2)  # while every client is connected:
    health = await asyncio.to_thread(lambda: [i.healthz() or {} for i in instances])
    try:
        report = dataclasses.replace(await scenario, instances=len(instances))
    except (OSError, KasagiError) as err:  # refused, unreachable, no answer (TimeoutError)
        print(f"FAILED: {err!r}", file=sys.stderr)
        return False
    print(report.summary())

    routes = haproxy.routes()
    print("rooms, by the instances HAProxy sent their clients to:")
    for room in rooms:
        print(f"  {room}: {len(routes.get(room, ()))} instance(s) {sorted(routes.get(room, ()))}")
    print("instances, halfway through (/healthz: a room's members are counted by its"
          " authority) and at the end (/metrics):")
    for instance, h in zip(instances, health, strict=True):
        received = metric(instance, "kasagi_redis_received_total")
        print(f"  {instance.name}: {h.get('connections', '?')} connections,"
              f" {h.get('rooms', '?')} rooms, {h.get('members', '?')} members;"
              f" Redis channel messages received: {'n/a' if received is None else int(received)}")
    return verdict(args.balance, report, rooms, routes)


def verdict(
    balance: str, report: ScenarioReport, rooms: list[str], routes: dict[str, set[str]]
) -> bool:
    """Prints what went wrong to stderr, or the last line ``OK: ...``; returns whether OK."""
    problems = []
    if not report.converged:
        problems.append("the clients did not converge")
    if report.acked_lost or not report.updates_acked:
        problems.append(f"{report.acked_lost} ACKed updates lost, {report.updates_acked} ACKed")
    spread = [len(routes.get(room, ())) for room in rooms]
    if balance == "room" and spread != [1] * len(rooms):
        problems.append("a room was not served by exactly one instance")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    if not problems:
        where = "every room on one instance" if balance == "room" else (
            f"rooms on {min(spread)} to {max(spread)} instances")
        print(f"OK: converged, 0 ACKed updates lost, {where}")
    return not problems


def main() -> int:
    """Parses the options, starts Redis, the instances and HAProxy, runs, stops them all."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--balance", choices=sorted(BALANCE), default="room",
                        help="room: hash the room in the URL (sticky); roundrobin: spread")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the bots write")
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--clients", type=int, default=12, help="in all, spread over the rooms")
    parser.add_argument("--rate", type=float, default=5.0, help="updates per second per client")
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--dir", type=Path, help="keep haproxy.cfg and the logs here"
                        " (default: a temporary directory, removed at the end)")
    args = parser.parse_args()
    if args.rooms < 1 or args.clients < args.rooms or args.instances < 1 or args.rate <= 0:
        parser.error("need --rooms >= 1, --clients >= --rooms, --instances >= 1, --rate > 0")
    if shutil.which("haproxy") is None:
        print("haproxy is not installed: apt-get install haproxy", file=sys.stderr)
        return 1

    try:
        with contextlib.ExitStack() as stack:  # stops everything in reverse order, always
            if args.dir:
                directory = args.dir.resolve()
                directory.mkdir(parents=True, exist_ok=True)
            else:
                directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            redis = stack.enter_context(RedisServer())
            # Behind a balancer every client has its address: no per-address limits.
            options = [*redis.kasagi_args(), "--max-connections-per-ip", "0",
                       "--join-rate-per-ip", "0"]
            instances = [KasagiInstance(*options, name=f"kasagi-{n}",
                                        log_path=directory / f"kasagi-{n}.log")
                         for n in range(1, args.instances + 1)]
            for process in instances:
                stack.enter_context(process)  # started; stopped (SIGTERM: a drain) at the end
            port = free_port()
            config = write_config(directory, port, args.balance, instances)
            haproxy = HAProxy(config, port, directory / "haproxy.log")
            stack.enter_context(haproxy)
            ok = asyncio.run(run(args, haproxy, instances))
            if not ok:
                for process in [*instances, haproxy]:
                    print(process.log_tail(15), file=sys.stderr)
    except RuntimeError as err:  # a process did not start; the message has its log
        print(f"failed: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the clients were closed; the ExitStack stopped the processes
        print("interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
