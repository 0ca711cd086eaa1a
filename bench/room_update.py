#!/usr/bin/env python3
"""Micro benchmark of a room's per-update path, without sockets (bench/room_update.cpp).

Compiles bench/room_update.cpp against the static libraries of a built tree (the C++ core
that ``pip install -e .`` built into build/), runs it, and prints the time per update of
decode + Room::update + the tick's flush, with its ratio to msgpack-c alone on the same
frames, measured in the same run. To compare two builds, give each its tree (sources and
build/ must match) and alternate:

    python bench/room_update.py                       # this tree
    python bench/room_update.py --tree ../other-tree  # another checkout, built
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBS = ("room", "telemetry", "protocol", "state")  # in link order


def library_dir(tree: Path) -> Path:
    """The build directory of `tree` that holds libkasagi_room.a (the newest, if several)."""
    found = sorted(tree.glob("build/*/cpp/room/libkasagi_room.a"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"room_update: no build/*/cpp/room/libkasagi_room.a under {tree}: build it")
    return found[-1].parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", type=Path, default=HERE.parent, help="source tree, built (default: this one)")
    p.add_argument("--ticks", type=int, default=20000, help="ticks per round (10 updates each)")
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    tree = a.tree.resolve()
    libs = library_dir(tree)
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "room_update"
        subprocess.run(["g++", "-std=c++20", "-O3", "-DNDEBUG", "-DMSGPACK_NO_BOOST",
                        "-I", str(tree / "cpp"), str(HERE / "room_update.cpp"),
                        *(str(libs / lib / f"libkasagi_{lib}.a") for lib in LIBS),
                        "-lboost_json", "-pthread", "-o", str(exe)], check=True)
        sys.exit(subprocess.run([str(exe), str(a.ticks), str(a.rounds)]).returncode)


if __name__ == "__main__":
    main()
