#!/usr/bin/env python3
"""Hooks benchmark: the fan-out scenario without hooks, with typed path rules only, and with
a trivial Python ``on_update`` hook, in one command.

Each run starts its own ``python -m kasagi serve`` (the last two with ``--app
bench/hooks_app.py:Rules`` / ``:Trivial``, which govern every room) and drives it with
``kasagi-loadgen`` in the same shape (fanout.py's helpers and options, imported). Prints the
three side by side and the ratios of server CPU per update in against the run without
hooks; the machine is shared and noisy, so only numbers of the same command are compared.

    python bench/hooks.py [--rooms 100 --clients-per-room 10 --rate 20 --duration 20]

See bench/README.md.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import fanout  # beside this file
from fanout import fmt, per_update_in, ratio

APP = Path(__file__).resolve().parent / "hooks_app.py"
RUNS = (("no hooks", None), ("rules only", "Rules"), ("on_update hook", "Trivial"))


def measure(a: Any, loadgen: Path, app: str | None, hook_threads: int) -> dict[str, Any]:
    extra = ["--app", f"{APP}:{app}", "--hook-threads", str(hook_threads)] if app else []
    return fanout.measure_kasagi(a, loadgen, extra)


def report(a: Any, results: list[tuple[str, dict[str, Any]]]) -> None:
    print(f"\nhooks: {a.rooms} rooms x {a.clients_per_room} clients, {a.rate:g} updates/s each, "
          f"{a.duration:g} s measured (+{a.warmup:g} s warm-up), tick {a.tick_rate:g} Hz, "
          f"{a.encoding}, hook threads {a.hook_threads}")
    names = [n for n, _ in results]
    rows = [("", *names)]

    def row(label: str, f: Any) -> None:
        rows.append((label, *(f(r) for _, r in results)))

    row("clients joined", lambda r: f"{r['clients_joined']}/{r['clients']}")
    row("updates in /s", lambda r: fmt(r["updates_sent_per_s"], 0))
    row("deliveries out /s", lambda r: fmt(r["deliveries_per_s"], 0))
    row("latency p50 ms", lambda r: fmt(r["latency_ms"]["p50"]))
    row("latency p99 ms", lambda r: fmt(r["latency_ms"]["p99"]))
    row("server CPU % of a core", lambda r: fmt(
        None if r.get("server_cpu_seconds") is None else r["server_cpu_seconds"] / a.duration * 100, 0))
    row("CPU-µs per update in", lambda r: fmt(per_update_in(r)))
    row("loadgen send lag p99 ms", lambda r: fmt(r["send_lag_ms"]["p99"]))
    row("errors", lambda r: str(r["errors"]))
    widths = [max(len(x[i]) for x in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "   ".join(f"{c:<{widths[0]}}" if i == 0 else f"{c:>{widths[i]}}"
                                for i, c in enumerate(r)))
    base = per_update_in(results[0][1])
    print()
    for name, r in results[1:]:
        print(f"CPU-µs per update in, {name} / no hooks: {ratio(per_update_in(r), base)}")


def main(argv: list[str] | None = None) -> int:
    parser_args = list(sys.argv[1:] if argv is None else argv)
    hook_threads = 2
    if "--hook-threads" in parser_args:  # ours; the rest are fanout.py's options
        i = parser_args.index("--hook-threads")
        hook_threads = int(parser_args[i + 1])
        del parser_args[i : i + 2]
    a = fanout.parse_args(parser_args)
    a.hook_threads = hook_threads
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    loadgen = fanout.find_loadgen(a.loadgen)
    results = []
    try:
        for name, app in RUNS:
            results.append((name, measure(a, loadgen, app, hook_threads)))
    except KeyboardInterrupt:
        print("hooks: interrupted", file=sys.stderr)
        return 130
    report(a, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
