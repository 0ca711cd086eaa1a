#!/usr/bin/env python3
"""Cross-instance relay benchmark: what sharing rooms across Kasagi instances through Redis
costs, against one instance on the same Redis, in the same command.

Starts a private redis-server on a free port and, on it, (a) one ``kasagi serve --redis``
and (b) two more instances. Each round drives the same traffic at (a), every client on it,
and at (b), the members of every room split between them (client i of a room on instance
i mod 2), back to back. In (b) each room's authority is on one instance and the other
relays: an update from a member on the relay crosses Redis to the authority, and its delta
crosses back. Prints both side by side and the relay's added latency (per round b minus a,
the median over the rounds) and throughput (b against a).

    python bench/relay.py [--rooms 50 --clients-per-room 10 --rate 4 --duration 10
                           --rounds 3 --tick-rate 0]
    python bench/relay.py --ramp 4,6,8,10 --duration 8   # (a) only, at each rate

Every process it starts is stopped on the way out, also on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fanout import (fmt, find_loadgen, free_port, healthz_ok, redis_running, run_loadgen,
                    start, stop, wait_until)

TARGET_ADDED_P99_MS = 1.0  # the relay may add at most this to p99
NOISY_OTHERS = 0.2  # other processes busier than this fraction of a core: a noisy run
NOISY_SEND_LAG_MS = 5.0  # loadgen timers later than this at p99: the loadgen was starved


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--clients-per-room", type=int, default=10)
    p.add_argument("--rate", type=float, default=4.0, help="updates/s per client")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds, each measuring both configurations back to back")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    # 0: every update is sent at once, so latency is the path alone (the relay's hops),
    # not hidden in a wait for the next tick.
    p.add_argument("--tick-rate", type=float, default=0.0, help="the servers' tick rate")
    p.add_argument("--instances", type=int, default=2, help="instances in the relay run")
    p.add_argument("--server-threads", type=int, default=0,
                   help="I/O threads of each instance (0: one per core)")
    p.add_argument("--relay-server-threads", type=int,
                   help="I/O threads of each instance of (b) (default: --server-threads); "
                        "e.g. 2 for (a) and 1 for (b) give both the same threads in all")
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
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    return a


# ---------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def instances_running(a: argparse.Namespace, count: int, redis_port: int, threads: int
                      ) -> Iterator[list[tuple[int, int]]]:
    """`count` ``kasagi serve`` instances sharing the Redis: yields [(port, pid), ...]."""
    with contextlib.ExitStack() as stack:
        started = []
        for _ in range(count):
            port = free_port()
            proc = start([sys.executable, "-m", "kasagi", "serve", "--host", "127.0.0.1",
                          "--port", str(port), "--redis", f"redis://127.0.0.1:{redis_port}/0",
                          "--tick-rate", str(a.tick_rate), "--threads", str(threads),
                          "--log-level", "warning",
                          # Every simulated client comes from 127.0.0.1: no per-address limits.
                          "--max-connections-per-ip", "0", "--join-rate-per-ip", "0",
                          # A round's rooms are gone before the next round starts.
                          "--session-grace", "0", "--room-empty-ttl", "1"])
            stack.callback(stop, proc)
            started.append((port, proc))
        for port, proc in started:
            wait_until(lambda p=port: healthz_ok(p), proc, f"kasagi instance on {port}")
        yield [(port, proc.pid) for port, proc in started]


def roundtrip_histogram(ports: list[int]) -> dict[str, Any]:
    """The instances' Redis round trips so far (command sent -> reply; from /metrics, summed
    over the instances): bucket bounds (s), cumulative counts, sum (s), count."""
    name = "kasagi_redis_roundtrip_seconds"
    counts: dict[float, int] = {}
    total, count = 0.0, 0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
        for line in text.splitlines():
            key, _, value = line.rpartition(" ")
            if key.startswith(name + '_bucket{le="'):
                le = float(key.split('"')[1])  # "+Inf" parses as inf
                counts[le] = counts.get(le, 0) + int(value)
            elif key == name + "_sum":
                total += float(value)
            elif key == name + "_count":
                count += int(value)
    bounds = sorted(counts)
    return {"le": bounds, "counts": [counts[b] for b in bounds], "sum": total, "count": count}


def histogram_diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {"le": after["le"], "counts": [x - y for x, y in zip(after["counts"], before["counts"])],
            "sum": after["sum"] - before["sum"], "count": after["count"] - before["count"]}


def measure(a: argparse.Namespace, loadgen: Path, redis_pid: int,
            instances: list[tuple[int, int]], rate: float) -> dict[str, Any]:
    """Runs the loadgen once against `instances`; returns its JSON result, with the
    instances' Redis round trips during the run added."""
    ports = [port for port, _ in instances]
    args = ["--encoding", a.encoding, "--rooms", str(a.rooms),
            "--clients-per-room", str(a.clients_per_room), "--rate", str(rate),
            "--duration", str(a.duration), "--warmup", str(a.warmup), "--threads", str(a.threads)]
    for port, pid in instances:
        args += ["--port", str(port), "--server-pid", str(pid)]
    args += ["--server-pid", str(redis_pid)]  # last: reported apart from the instances
    before = roundtrip_histogram(ports)
    result = run_loadgen(loadgen, args, a.verbose)
    result["redis_roundtrip"] = histogram_diff(roundtrip_histogram(ports), before)
    return result


def combine(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One result for the rounds of one configuration: counts and CPU seconds summed, rates
    over the total time, latency quantiles the median of the rounds'."""
    out = dict(rounds[0])
    for key in ("duration", "updates_sent", "deliveries", "errors", "disconnects",
                "sends_skipped", "sends_dropped", "clients_without_deltas", "server_cpu_seconds",
                "loadgen_cpu_seconds", "machine_busy_seconds"):
        values = [r[key] for r in rounds]
        out[key] = None if None in values else sum(values)
    out["server_cpu_seconds_each"] = [
        None if None in column else sum(column)
        for column in zip(*(r["server_cpu_seconds_each"] for r in rounds))]
    out["updates_sent_per_s"] = out["updates_sent"] / out["duration"]
    out["deliveries_per_s"] = out["deliveries"] / out["duration"]
    out["clients_joined"] = min(r["clients_joined"] for r in rounds)
    out["per_port"] = [
        {"port": ports[0]["port"], "clients": ports[0]["clients"],
         "clients_joined": min(p["clients_joined"] for p in ports),
         "deliveries": sum(p["deliveries"] for p in ports),
         "clients_without_deltas": sum(p["clients_without_deltas"] for p in ports)}
        for ports in zip(*(r["per_port"] for r in rounds))]
    for key in ("latency_ms", "send_lag_ms"):
        out[key] = {q: statistics.median(r[key][q] for r in rounds) for q in rounds[0][key]}
    out["latency_ms"]["samples"] = sum(r["latency_ms"]["samples"] for r in rounds)
    out["error_samples"] = [e for r in rounds for e in r["error_samples"]][:5]
    trips = [r["redis_roundtrip"] for r in rounds]
    out["redis_roundtrip"] = {"le": trips[0]["le"],
                              "counts": [sum(c) for c in zip(*(t["counts"] for t in trips))],
                              "sum": sum(t["sum"] for t in trips),
                              "count": sum(t["count"] for t in trips)}
    return out


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def relay_threads(a: argparse.Namespace) -> int:
    """The I/O threads of each instance of (b)."""
    return a.server_threads if a.relay_server_threads is None else a.relay_server_threads


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


def pct(r: dict[str, Any], seconds: float | None) -> str:
    """`seconds` of CPU as a percentage of one core over the measured time of `r`."""
    return fmt(None if seconds is None else seconds / r["duration"] * 100, 0)


def roundtrip_ms(r: dict[str, Any]) -> tuple[float | None, float | None]:
    """(mean, the bucket bound holding p99) of the Redis round trips, in ms."""
    h = r["redis_roundtrip"]
    if not h["count"]:
        return None, None
    p99 = next(le for le, n in zip(h["le"], h["counts"]) if n >= 0.99 * h["count"])
    return h["sum"] / h["count"] * 1e3, p99 * 1e3


def noisy(r: dict[str, Any]) -> bool:
    """Whether other processes or a starved loadgen inflated this run's latencies."""
    others = others_cpu(r) or 0.0
    return others > NOISY_OTHERS * r["duration"] or r["send_lag_ms"]["p99"] > NOISY_SEND_LAG_MS


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [f"{r[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(r[1:], widths[1:])]
        print("  " + "   ".join(cells))


def report(a: argparse.Namespace, rounds: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    one, many = combine([r[0] for r in rounds]), combine([r[1] for r in rounds])
    print(f"\nrelay: {a.rooms} rooms x {a.clients_per_room} clients, {a.rate:g} updates/s each, "
          f"{len(rounds)} rounds of {a.duration:g} s measured (+{a.warmup:g} s warm-up) per "
          f"configuration, tick {a.tick_rate:g} Hz, {a.encoding}, one redis-server; I/O threads "
          f"per instance {a.server_threads or 'one per core'} in (a), "
          f"{relay_threads(a) or 'one per core'} in (b)")
    # The relay's cost: per round, N instances minus 1 instance (run back to back, so the
    # machine's state is alike), then the median over the rounds.
    added = {q: statistics.median(m["latency_ms"][q] - o["latency_ms"][q] for o, m in rounds)
             for q in ("p50", "p99", "p999")}
    (k1, r1), (kn, rn) = cpu_split(one), cpu_split(many)
    (t1, t1_99), (tn, tn_99) = roundtrip_ms(one), roundtrip_ms(many)

    def ratio(x: float | None, y: float | None) -> str:
        return f"x {y / x:.2f}" if x and y is not None else ""

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
        rows.append((f"latency {name} ms", fmt(one["latency_ms"][q]), fmt(many["latency_ms"][q]),
                     f"{added[q]:+.2f}"))
    rows += [
        ("kasagi CPU % of a core", pct(one, k1), pct(many, kn), ""),
        ("redis CPU % of a core", pct(one, r1), pct(many, rn), ""),
        ("kasagi CPU-µs per (in + out)", fmt(per_op_us(one, k1), 2), fmt(per_op_us(many, kn), 2),
         ratio(per_op_us(one, k1), per_op_us(many, kn))),
        ("redis CPU-µs per (in + out)", fmt(per_op_us(one, r1), 2), fmt(per_op_us(many, rn), 2),
         ratio(per_op_us(one, r1), per_op_us(many, rn))),
        ("redis round trip mean ms", fmt(t1), fmt(tn), ""),
        ("  p99 at most ms", fmt(t1_99), fmt(tn_99), ""),
        ("loadgen CPU % of a core", pct(one, one["loadgen_cpu_seconds"]),
         pct(many, many["loadgen_cpu_seconds"]), ""),
        ("loadgen send lag p99 ms", fmt(one["send_lag_ms"]["p99"]),
         fmt(many["send_lag_ms"]["p99"]), ""),
        ("other processes CPU %", pct(one, others_cpu(one)), pct(many, others_cpu(many)), ""),
        ("clients without deltas", str(one["clients_without_deltas"]),
         str(many["clients_without_deltas"]), ""),
        ("errors, disconnects", f"{one['errors']}, {one['disconnects']}",
         f"{many['errors']}, {many['disconnects']}", ""),
        ("sends skipped, dropped", f"{one['sends_skipped']}, {one['sends_dropped']}",
         f"{many['sends_skipped']}, {many['sends_dropped']}", ""),
    ]
    print_table(rows)
    for res in (one, many):
        for e in res["error_samples"]:
            print(f"  {len(res['ports'])} instance(s) error, e.g.: {e}")

    print(f"\nrounds (latency p50 / p99 ms; * = inflated: other processes over "
          f"{NOISY_OTHERS * 100:g} % of a core, or loadgen send lag p99 over "
          f"{NOISY_SEND_LAG_MS:g} ms):")
    for i, (o, m) in enumerate(rounds, 1):
        lo, lm = o["latency_ms"], m["latency_ms"]
        print(f"  {i}: 1 instance {lo['p50']:.2f} / {lo['p99']:.2f}{'*' if noisy(o) else ''}"
              f"   {a.instances} instances {lm['p50']:.2f} / {lm['p99']:.2f}"
              f"{'*' if noisy(m) else ''}   added p99 {lm['p99'] - lo['p99']:+.2f}")
    verdict = "PASS" if added["p99"] <= TARGET_ADDED_P99_MS else "FAIL"
    print(f"relay adds (median over rounds of {a.instances} instances minus 1): "
          f"p50 {added['p50']:+.2f} ms, p99 {added['p99']:+.2f} ms, p99.9 {added['p999']:+.2f} ms")
    if one["deliveries_per_s"]:
        print(f"throughput: deltas out /s, {a.instances} instances / 1 = "
              f"{many['deliveries_per_s'] / one['deliveries_per_s']:.3f}")
    print(f"target: relay adds <= {TARGET_ADDED_P99_MS:g} ms to p99: {verdict}")
    if any(noisy(r) for pair in rounds for r in pair):
        print("note: rounds marked * ran on a busy machine; rerun when it is quiet")
    if a.json:
        print(json.dumps({"one": one, "many": many, "added_ms": added, "target": verdict,
                          "rounds": [{"one": o, "many": m} for o, m in rounds]}))


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
                     fmt(r["latency_ms"]["p50"]), fmt(r["latency_ms"]["p99"]), pct(r, k),
                     pct(r, rd), pct(r, r["loadgen_cpu_seconds"]), pct(r, others_cpu(r)),
                     fmt(r["send_lag_ms"]["p99"]),
                     str(r["sends_skipped"] + r["sends_dropped"]), str(r["errors"])))
    print_table(rows)
    if a.json:
        print(json.dumps({"ramp": [{"rate": rate, "result": r} for rate, r in results]}))


def run_rounds(a: argparse.Namespace, loadgen: Path, redis_pid: int,
               one: list[tuple[int, int]], many: list[tuple[int, int]]
               ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Measures (a) `one` and (b) `many` back to back, --rounds times."""
    rounds = []
    for i in range(a.rounds):
        # Alternate which goes first, so that neither always follows the other.
        if i % 2 == 0:
            o = measure(a, loadgen, redis_pid, one, a.rate)
            m = measure(a, loadgen, redis_pid, many, a.rate)
        else:
            m = measure(a, loadgen, redis_pid, many, a.rate)
            o = measure(a, loadgen, redis_pid, one, a.rate)
        rounds.append((o, m))
        print(f"round {i + 1}/{a.rounds}: p99 1 instance {o['latency_ms']['p99']:.2f} ms, "
              f"{a.instances} instances {m['latency_ms']['p99']:.2f} ms", flush=True)
    return rounds


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop what was started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loadgen = find_loadgen(a.loadgen)
    try:
        with redis_running(a.redis_server) as (redis_port, redis_pid):
            if a.ramp:
                ramp = []
                for rate in (float(r) for r in a.ramp.split(",")):
                    # A fresh instance each time: an overloaded step leaves a backlog behind.
                    with instances_running(a, 1, redis_port, a.server_threads) as one:
                        ramp.append((rate, measure(a, loadgen, redis_pid, one, rate)))
                report_ramp(a, ramp)
                return 0
            with instances_running(a, 1, redis_port, a.server_threads) as one, \
                    instances_running(a, a.instances, redis_port, relay_threads(a)) as many:
                rounds = run_rounds(a, loadgen, redis_pid, one, many)
    except KeyboardInterrupt:
        print("relay: interrupted", file=sys.stderr)
        return 130
    report(a, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
