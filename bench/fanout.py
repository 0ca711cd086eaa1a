#!/usr/bin/env python3
"""Fan-out benchmark: Kasagi against Redis pub/sub, same traffic shape, same command.

Starts a Kasagi server (``python -m kasagi serve``) on a free port, drives it with
``kasagi-loadgen`` (R rooms x C clients, each sending U updates/s), then starts a private
redis-server on another free port and drives the same shape through Redis pub/sub. Prints
both side by side and the ratio of server CPU time per (message in + message out); the
machine is shared and noisy, so only numbers measured in the same command are compared.

    python bench/fanout.py [--rooms 100 --clients-per-room 10 --rate 20 --duration 20
                            --tick-rate 20 --encoding msgpack]

Every process it starts is stopped on the way out, also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from collections.abc import Iterator, Sequence
from typing import IO, Any

START_TIMEOUT = 20.0  # seconds for a server to answer /healthz or PING
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
LATENCY_SLACK_MS = 5.0  # the target: p99 < one tick interval + this
PROG = Path(sys.argv[0]).stem or "fanout"  # bench/relay.py imports the helpers below


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--clients-per-room", type=int, default=10)
    p.add_argument("--rate", type=float, default=20.0, help="updates/s per client")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    p.add_argument("--tick-rate", type=float, default=20.0, help="the Kasagi server's tick rate")
    p.add_argument("--encoding", choices=("msgpack", "json"), default="msgpack")
    p.add_argument("--threads", type=int, default=2, help="loadgen I/O threads")
    p.add_argument("--server-threads", type=int, default=0,
                   help="the Kasagi server's I/O threads (default 0: one per core)")
    p.add_argument("--serve-option", action="append", default=[], metavar="OPTION",
                   help="one more option for kasagi serve, e.g. --serve-option=--io-batch-wait=0"
                   " (repeatable)")
    p.add_argument("--loadgen", type=Path, help="kasagi-loadgen (default: the installed one)")
    p.add_argument("--redis-server", default="redis-server", help="redis-server binary")
    p.add_argument("--skip-redis", action="store_true", help="measure Kasagi only (no ratio)")
    p.add_argument("--json", action="store_true", help="also print both results as one JSON line")
    p.add_argument("-v", "--verbose", action="store_true", help="show the loadgen's own output")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------


def find_loadgen(explicit: Path | None) -> Path:
    """Returns the kasagi-loadgen shipped inside the installed kasagi package (or `explicit`)."""
    if explicit is not None:
        candidates = [explicit]
    else:
        import kasagi

        # Beside kasagi/__init__.py in a regular install; an editable install keeps the
        # built files apart from the sources, and lists both folders in __path__.
        dirs = [Path(kasagi.__file__).parent] if kasagi.__file__ else []
        dirs += [Path(p) for p in kasagi.__path__]
        candidates = [d / "bin" / "kasagi-loadgen" for d in dirs]
    for path in candidates:
        if path.is_file():
            return path
    raise SystemExit(f"{PROG}: kasagi-loadgen not found at {candidates[0]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Starts `cmd`, its output going to `log` (None: ours)."""
    # A session of its own: Ctrl-C reaches only this script, which then stops the child
    # in order (and never leaves it half shut down while we still measure).
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stops `proc`: SIGTERM, then SIGKILL after STOP_TIMEOUT. Safe to call twice."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(ready: Any, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{PROG}: {what} exited with code {proc.returncode}")
        if ready():
            return
        time.sleep(0.1)
    raise SystemExit(f"{PROG}: {what} not ready after {START_TIMEOUT:.0f} s")


def healthz_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def run_loadgen(loadgen: Path, args: list[str], verbose: bool) -> dict[str, Any]:
    """Runs the loadgen to completion and returns its final JSON line."""
    cmd = [str(loadgen), *args]
    if verbose:
        print("$", " ".join(cmd), flush=True)
    stderr = None if verbose else subprocess.PIPE
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, check=False)
    if verbose:
        print(done.stdout, end="", flush=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.stderr.write(done.stdout + (done.stderr or ""))
    raise SystemExit(f"{PROG}: kasagi-loadgen exited with code {done.returncode} and no result")


def shape_args(a: argparse.Namespace) -> list[str]:
    return ["--rooms", str(a.rooms), "--clients-per-room", str(a.clients_per_room),
            "--rate", str(a.rate), "--duration", str(a.duration), "--warmup", str(a.warmup),
            "--threads", str(a.threads)]


def measure_kasagi(a: argparse.Namespace, loadgen: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """One ``kasagi serve`` (with ``extra`` options) under the loadgen's traffic."""
    port = free_port()
    server = None
    try:
        server = start([sys.executable, "-m", "kasagi", "serve", "--host", "127.0.0.1",
                        "--port", str(port), "--tick-rate", str(a.tick_rate),
                        "--threads", str(a.server_threads), "--log-level", "warning",
                        # Every simulated client comes from 127.0.0.1: no per-address limits.
                        "--max-connections-per-ip", "0", "--join-rate-per-ip", "0", *extra])
        wait_until(lambda: healthz_ok(port), server, "kasagi server")
        return run_loadgen(loadgen, ["--port", str(port), "--encoding", a.encoding,
                                     "--server-pid", str(server.pid), *shape_args(a)], a.verbose)
    finally:
        stop(server)


def measure_redis(a: argparse.Namespace, loadgen: Path) -> dict[str, Any]:
    with redis_running(a.redis_server) as (port, pid):
        return run_loadgen(loadgen, ["--redis", f"127.0.0.1:{port}", "--server-pid", str(pid),
                                     *shape_args(a)], a.verbose)


@contextlib.contextmanager
def redis_running(redis_server: str) -> Iterator[tuple[int, int]]:
    """A private redis-server (the binary `redis_server`) on a free port: yields (port, pid)."""
    binary = shutil.which(redis_server)
    if binary is None:
        raise SystemExit(f"{PROG}: {redis_server} not found")
    port = free_port()
    redis = None
    # redis-server logs its start-up warnings (overcommit, ...) even at --loglevel warning:
    # keep them out of the report unless something fails.
    with tempfile.TemporaryFile() as log:
        try:
            redis = start([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--loglevel", "warning"], log)
            wait_until(lambda: redis_pong(port), redis, "redis-server")
            yield port, redis.pid
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            stop(redis)


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:,.{digits}f}"


def per_update_in(r: dict[str, Any]) -> float | None:
    """Server CPU-µs per update received, its whole fan-out included."""
    cpu, n = r.get("server_cpu_seconds"), r["updates_sent"]
    return cpu * 1e6 / n if cpu is not None and n else None


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def report(a: argparse.Namespace, k: dict[str, Any], r: dict[str, Any] | None) -> None:
    tick_ms = 1000.0 / a.tick_rate if a.tick_rate > 0 else 0.0
    print(f"\nfan-out: {a.rooms} rooms x {a.clients_per_room} clients, {a.rate:g} updates/s each, "
          f"{a.duration:g} s measured (+{a.warmup:g} s warm-up), kasagi tick {a.tick_rate:g} Hz, "
          f"{a.encoding}")
    rg = r or {}
    rows: list[tuple[str, str, str]] = []

    def row(name: str, kv: str, rv: str = "") -> None:
        rows.append((name, kv, rv if r is not None else ""))

    def core_pct(res: dict[str, Any], key: str) -> str:
        seconds = res.get(key)
        return fmt(None if seconds is None else seconds / a.duration * 100, 0)

    row("", "kasagi", "redis pub/sub")
    row("clients joined", f"{k['clients_joined']}/{k['clients']}",
        f"{rg.get('clients_joined')}/{rg.get('clients')}")
    row("updates in /s", fmt(k["updates_sent_per_s"], 0), fmt(rg.get("updates_sent_per_s"), 0))
    row("deliveries out /s", fmt(k["deliveries_per_s"], 0), fmt(rg.get("deliveries_per_s"), 0))
    row("bytes per delivery", fmt(k["bytes_per_delivery"], 1), fmt(rg.get("bytes_per_delivery"), 1))
    if r is not None:
        row("  of which payload", "", fmt(r.get("payload_bytes_per_delivery"), 1))
    for q, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        row(f"latency {name} ms", fmt(k["latency_ms"][q]), fmt(rg.get("latency_ms", {}).get(q)))
    row("server CPU % of a core", core_pct(k, "server_cpu_seconds"),
        core_pct(rg, "server_cpu_seconds"))
    row("CPU-µs per (in + out)", fmt(k.get("server_cpu_us_per_op"), 3),
        fmt(rg.get("server_cpu_us_per_op"), 3))
    row("CPU-µs per update in", fmt(per_update_in(k), 2), fmt(per_update_in(r) if r else None, 2))
    row("loadgen CPU % of a core", core_pct(k, "loadgen_cpu_seconds"),
        core_pct(rg, "loadgen_cpu_seconds"))
    row("loadgen send lag p99 ms", fmt(k["send_lag_ms"]["p99"]),
        fmt(rg.get("send_lag_ms", {}).get("p99")))
    row("errors", str(k["errors"]), str(rg.get("errors")))
    row("disconnects", str(k["disconnects"]), str(rg.get("disconnects")))
    w0 = max(len(x[0]) for x in rows)
    w1 = max(len(x[1]) for x in rows)
    w2 = max(len(x[2]) for x in rows)
    for name, kv, rv in rows:
        print(f"  {name:<{w0}}  {kv:>{w1}}   {rv:>{w2}}")
    for res in (k, rg):
        for e in res.get("error_samples", []):
            print(f"  {res['mode']} error, e.g.: {e}")

    print()
    if r is not None:
        kop, rop = k.get("server_cpu_us_per_op"), r.get("server_cpu_us_per_op")
        print(f"kasagi CPU-µs per (update in + delta out): {fmt(kop)}"
              f"  | redis pub/sub CPU-µs per (publish + delivery): {fmt(rop)}"
              f"  | ratio {ratio(kop, rop)}")
        print(f"kasagi CPU-µs per update in (fan-out included): {fmt(per_update_in(k))}"
              f"  | redis pub/sub: {fmt(per_update_in(r))}"
              f"  | ratio {ratio(per_update_in(k), per_update_in(r))}")
    target = tick_ms + LATENCY_SLACK_MS
    p99 = k["latency_ms"]["p99"]
    verdict = "PASS" if k["latency_ms"]["samples"] and p99 < target else "FAIL"
    print(f"latency target: kasagi p99 {p99:.2f} ms < tick interval {tick_ms:g} ms + "
          f"{LATENCY_SLACK_MS:g} ms = {target:g} ms: {verdict}")
    print(f"loadgen errors: kasagi {k['errors']}" + (f", redis {r['errors']}" if r else ""))
    if a.json:
        print(json.dumps({"kasagi": k, "redis": r, "latency_target_ms": target,
                          "latency_target": verdict}))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loadgen = find_loadgen(a.loadgen)
    try:
        kasagi_result = measure_kasagi(a, loadgen, a.serve_option)
        redis_result = None if a.skip_redis else measure_redis(a, loadgen)
    except KeyboardInterrupt:
        print("fanout: interrupted", file=sys.stderr)
        return 130
    report(a, kasagi_result, redis_result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
