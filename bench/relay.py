#!/usr/bin/env python3
"""Cross-instance relay benchmark: what sharing rooms across Kasagi instances through Redis
costs, against one instance on the same Redis, in the same command.

Starts a private redis-server on a free port, then measures the same traffic twice:
(a) one ``kasagi serve --redis`` with every client on it, and (b) two instances on that
Redis with the members of every room split between them (client i of a room on instance
i mod 2). In (b) each room's authority is on one instance and the other relays: an update
from a member on the relay crosses Redis to the authority, and its delta crosses back.
Prints both side by side and the relay's added latency and throughput (b against a).

    python bench/relay.py [--rooms 50 --clients-per-room 10 --rate 20 --duration 20
                           --tick-rate 0]
    python bench/relay.py --ramp 10,20,40 --duration 10   # (a) only, at each rate

Every process it starts is stopped on the way out, also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fanout import (fmt, find_loadgen, free_port, healthz_ok, redis_pong, run_loadgen, start,
                    stop, wait_until)

TARGET_ADDED_P99_MS = 1.0  # the relay may add at most this to p99
NOISY_OTHERS = 0.2  # other processes busier than this fraction of a core: a noisy run
NOISY_SEND_LAG_MS = 5.0  # loadgen timers later than this at p99: the loadgen was starved


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--clients-per-room", type=int, default=10)
    p.add_argument("--rate", type=float, default=20.0, help="updates/s per client")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    # 0: every update is sent at once, so latency is the path alone (the relay's hops),
    # not hidden in a wait for the next tick.
    p.add_argument("--tick-rate", type=float, default=0.0, help="the servers' tick rate")
    p.add_argument("--instances", type=int, default=2, help="instances in the relay run")
    p.add_argument("--server-threads", type=int, default=0,
                   help="I/O threads of each instance (0: one per core)")
    p.add_argument("--encoding", choices=("msgpack", "json"), default="msgpack")
    p.add_argument("--threads", type=int, default=2, help="loadgen I/O threads")
    p.add_argument("--ramp", metavar="RATES",
                   help="comma-separated updates/s per client: measure one instance at each")
    p.add_argument("--loadgen", type=Path, help="kasagi-loadgen (default: the installed one)")
    p.add_argument("--redis-server", default="redis-server", help="redis-server binary")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    p.add_argument("-v", "--verbose", action="store_true", help="show the loadgen's own output")
    a = p.parse_args(argv)
    if a.instances < 2:
        p.error("--instances must be >= 2")
    return a


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_running(a: argparse.Namespace) -> Iterator[tuple[int, int]]:
    """A private redis-server on a free port: yields (port, pid)."""
    binary = shutil.which(a.redis_server)
    if binary is None:
        raise SystemExit(f"relay: {a.redis_server} not found")
    port = free_port()
    redis = None
    # Its start-up warnings (overcommit, ...) stay out of the report unless something fails.
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


@contextlib.contextmanager
def instances_running(a: argparse.Namespace, count: int, redis_port: int
                      ) -> Iterator[list[tuple[int, int]]]:
    """`count` ``kasagi serve`` instances sharing the Redis: yields [(port, pid), ...]."""
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(count):
            port = free_port()
            proc = start([sys.executable, "-m", "kasagi", "serve", "--host", "127.0.0.1",
                          "--port", str(port), "--redis", f"redis://127.0.0.1:{redis_port}/0",
                          "--tick-rate", str(a.tick_rate), "--threads", str(a.server_threads),
                          "--log-level", "warning",
                          # Every simulated client comes from 127.0.0.1: no per-address limits.
                          "--max-connections-per-ip", "0", "--join-rate-per-ip", "0"])
            stack.callback(stop, proc)
            started.append((port, proc))
        for port, proc in started:
            wait_until(lambda p=port: healthz_ok(p), proc, f"kasagi instance on {port}")
        yield [(port, proc.pid) for port, proc in started]


def redis_roundtrips(ports: list[int]) -> dict[str, Any]:
    """The instances' Redis round trips (command sent -> reply, from /metrics, summed over
    the instances, warm-up included): the mean and the bucket bound that holds p99."""
    buckets: dict[float, int] = {}
    total, count = 0.0, 0
    name = "kasagi_redis_roundtrip_seconds"
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if key.startswith(name + '_bucket{le="'):
                le = float(key.split('"')[1])  # "+Inf" parses as inf
                buckets[le] = buckets.get(le, 0) + int(value)
            elif key == name + "_sum":
                total += float(value)
            elif key == name + "_count":
                count += int(value)
    p99 = next((le for le, n in sorted(buckets.items()) if count and n >= 0.99 * count), None)
    return {"count": count, "mean_ms": total / count * 1e3 if count else None,
            "p99_at_most_ms": None if p99 is None else p99 * 1e3}


def measure(a: argparse.Namespace, loadgen: Path, redis: tuple[int, int], count: int,
            rate: float) -> dict[str, Any]:
    """Runs the loadgen against `count` fresh instances; returns its JSON result."""
    from kasagi.testing.resp import redis_call

    redis_port, redis_pid = redis
    redis_call(redis_port, "FLUSHALL")  # each run starts from an empty Redis
    with instances_running(a, count, redis_port) as instances:
        args = ["--encoding", a.encoding, "--rooms", str(a.rooms),
                "--clients-per-room", str(a.clients_per_room), "--rate", str(rate),
                "--duration", str(a.duration), "--warmup", str(a.warmup),
                "--threads", str(a.threads)]
        for port, pid in instances:
            args += ["--port", str(port), "--server-pid", str(pid)]
        args += ["--server-pid", str(redis_pid)]  # last: reported apart from the instances
        result = run_loadgen(loadgen, args, a.verbose)
        result["redis_roundtrip"] = redis_roundtrips([port for port, _ in instances])
        return result


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def cpu_split(r: dict[str, Any]) -> tuple[float | None, float | None]:
    """(CPU seconds of the Kasagi instances, of redis-server) within the window."""
    each = r.get("server_cpu_seconds_each") or []
    if not each or any(c is None for c in each):
        return None, None
    return sum(each[:-1]), each[-1]


def others_cpu(r: dict[str, Any]) -> float | None:
    """CPU seconds the rest of the machine used within the window (not the servers under
    test, not the loadgen): a shared machine's noise, which inflates every latency."""
    busy, servers = r.get("machine_busy_seconds"), r.get("server_cpu_seconds")
    if busy is None or servers is None:
        return None
    return max(0.0, busy - servers - r["loadgen_cpu_seconds"])


def per_op_us(r: dict[str, Any], seconds: float | None) -> float | None:
    """CPU-µs per (update in + delta out)."""
    ops = r["updates_sent"] + r["deliveries"]
    return seconds * 1e6 / ops if seconds is not None and ops else None


def pct(a: argparse.Namespace, seconds: float | None) -> str:
    return fmt(None if seconds is None else seconds / a.duration * 100, 0)


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [f"{r[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(r[1:], widths[1:])]
        print("  " + "   ".join(cells))


def report(a: argparse.Namespace, one: dict[str, Any], many: dict[str, Any]) -> None:
    print(f"\nrelay: {a.rooms} rooms x {a.clients_per_room} clients, {a.rate:g} updates/s each, "
          f"{a.duration:g} s measured (+{a.warmup:g} s warm-up), tick {a.tick_rate:g} Hz, "
          f"{a.encoding}, one redis-server")
    (k1, r1), (kn, rn) = cpu_split(one), cpu_split(many)

    def diff(x: float, y: float) -> str:
        return f"{y - x:+.2f}"

    def ratio(x: float | None, y: float | None) -> str:
        return f"x {y / x:.2f}" if x and y is not None else ""

    lat1, latn = one["latency_ms"], many["latency_ms"]
    rows = [
        ("", "1 instance", f"{a.instances} instances", "difference"),
        ("clients joined", f"{one['clients_joined']}/{one['clients']}",
         f"{many['clients_joined']}/{many['clients']}", ""),
        ("  per instance", "", " / ".join(str(p["clients_joined"]) for p in many["per_port"]), ""),
        ("updates in /s", fmt(one["updates_sent_per_s"], 0), fmt(many["updates_sent_per_s"], 0),
         ratio(one["updates_sent_per_s"], many["updates_sent_per_s"])),
        ("deltas out /s", fmt(one["deliveries_per_s"], 0), fmt(many["deliveries_per_s"], 0),
         ratio(one["deliveries_per_s"], many["deliveries_per_s"])),
        ("bytes per delta", fmt(one["bytes_per_delivery"], 1), fmt(many["bytes_per_delivery"], 1),
         ""),
    ]
    for q, name in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        rows.append((f"latency {name} ms", fmt(lat1[q]), fmt(latn[q]), diff(lat1[q], latn[q])))
    rows += [
        ("kasagi CPU % of a core", pct(a, k1), pct(a, kn), ""),
        ("redis CPU % of a core", pct(a, r1), pct(a, rn), ""),
        ("kasagi CPU-µs per (in + out)", fmt(per_op_us(one, k1), 2), fmt(per_op_us(many, kn), 2),
         ratio(per_op_us(one, k1), per_op_us(many, kn))),
        ("redis CPU-µs per (in + out)", fmt(per_op_us(one, r1), 2), fmt(per_op_us(many, rn), 2),
         ratio(per_op_us(one, r1), per_op_us(many, rn))),
        ("loadgen CPU % of a core", pct(a, one["loadgen_cpu_seconds"]),
         pct(a, many["loadgen_cpu_seconds"]), ""),
        ("loadgen send lag p99 ms", fmt(one["send_lag_ms"]["p99"]),
         fmt(many["send_lag_ms"]["p99"]), ""),
        ("other processes CPU %", pct(a, others_cpu(one)), pct(a, others_cpu(many)), ""),
        ("redis round trip mean ms", fmt(one["redis_roundtrip"]["mean_ms"]),
         fmt(many["redis_roundtrip"]["mean_ms"]), ""),
        ("  p99 at most ms", fmt(one["redis_roundtrip"]["p99_at_most_ms"]),
         fmt(many["redis_roundtrip"]["p99_at_most_ms"]), ""),
        ("clients without deltas", str(one["clients_without_deltas"]),
         str(many["clients_without_deltas"]), ""),
        ("errors, disconnects", f"{one['errors']}, {one['disconnects']}",
         f"{many['errors']}, {many['disconnects']}", ""),
        ("sends skipped, dropped", f"{one['sends_skipped']}, {one['sends_dropped']}",
         f"{many['sends_skipped']}, {many['sends_dropped']}", ""),
    ]
    print_table(rows)
    for res in (one, many):
        for e in res.get("error_samples", []):
            print(f"  {len(res['ports'])} instance(s) error, e.g.: {e}")

    for name, res in (("1 instance", one), (f"{a.instances} instances", many)):
        others = others_cpu(res)
        if (others or 0) > NOISY_OTHERS * a.duration \
                or res["send_lag_ms"]["p99"] > NOISY_SEND_LAG_MS:
            print(f"  warning: {name}: other processes took {pct(a, others)} % of a core, loadgen "
                  f"send lag p99 {res['send_lag_ms']['p99']:.1f} ms: its latencies are inflated")

    added_p99 = latn["p99"] - lat1["p99"]
    verdict = "PASS" if lat1["samples"] and latn["samples"] and added_p99 <= TARGET_ADDED_P99_MS \
        else "FAIL"
    print(f"\nrelay adds: p50 {latn['p50'] - lat1['p50']:+.2f} ms, p99 {added_p99:+.2f} ms, "
          f"p99.9 {latn['p999'] - lat1['p999']:+.2f} ms "
          f"({a.instances} instances minus 1, same command)")
    print(f"throughput: deltas out /s {a.instances} instances / 1 = "
          f"{many['deliveries_per_s'] / one['deliveries_per_s']:.3f}"
          if one["deliveries_per_s"] else "throughput: n/a")
    print(f"target: relay adds <= {TARGET_ADDED_P99_MS:g} ms to p99: {verdict}")
    if a.json:
        print(json.dumps({"one": one, "many": many, "added_p99_ms": added_p99,
                          "target": verdict}))


def report_ramp(a: argparse.Namespace, results: list[tuple[float, dict[str, Any]]]) -> None:
    print(f"\nramp, 1 instance: {a.rooms} rooms x {a.clients_per_room} clients, "
          f"{a.duration:g} s measured each, tick {a.tick_rate:g} Hz, {a.encoding}")
    rows = [("updates/s each", "in /s", "out /s", "out per in", "p50 ms", "p99 ms", "kasagi CPU %",
             "redis CPU %", "loadgen CPU %", "others CPU %", "send lag p99", "skipped+dropped",
             "errors")]
    for rate, r in results:
        k, rd = cpu_split(r)
        rows.append((f"{rate:g}", fmt(r["updates_sent_per_s"], 0), fmt(r["deliveries_per_s"], 0),
                     fmt(r["deliveries"] / r["updates_sent"] if r["updates_sent"] else None, 2),
                     fmt(r["latency_ms"]["p50"]), fmt(r["latency_ms"]["p99"]), pct(a, k),
                     pct(a, rd), pct(a, r["loadgen_cpu_seconds"]), pct(a, others_cpu(r)),
                     fmt(r["send_lag_ms"]["p99"]),
                     str(r["sends_skipped"] + r["sends_dropped"]), str(r["errors"])))
    print_table(rows)
    if a.json:
        print(json.dumps({"ramp": [{"rate": rate, "result": r} for rate, r in results]}))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loadgen = find_loadgen(a.loadgen)
    try:
        with redis_running(a) as redis:
            if a.ramp:
                rates = [float(r) for r in a.ramp.split(",")]
                report_ramp(a, [(r, measure(a, loadgen, redis, 1, r)) for r in rates])
                return 0
            one = measure(a, loadgen, redis, 1, a.rate)
            many = measure(a, loadgen, redis, a.instances, a.rate)
    except KeyboardInterrupt:
        print("relay: interrupted", file=sys.stderr)
        return 130
    report(a, one, many)
    return 0


if __name__ == "__main__":
    sys.exit(main())
