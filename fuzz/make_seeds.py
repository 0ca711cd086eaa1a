"""Writes the seed corpora of the fuzz targets into fuzz/corpus/ (run from the repository
root with the project's virtualenv: ``.venv/bin/python fuzz/make_seeds.py``). The seeds are
committed; this script documents where they come from and recreates them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import msgpack

ROOT = Path(__file__).parent / "corpus"

MESSAGES = [
    {"type": "JOIN_ROOM", "roomId": "lobby", "payload": {"playerName": "Ann", "color": "red"}},
    {"type": "JOIN_ROOM", "roomId": "r:1", "payload": {"sessionToken": "ab12", "lastVersion": 7},
     "epoch": "e1"},
    {"type": "STATE_UPDATE", "roomId": "lobby", "requestId": 3, "version": 2,
     "payload": {"x": 1, "y": 2.5, "tags": ["a", None, True], "deep": {"a": {"b": None}}}},
    {"type": "STATE_UPDATE", "roomId": "board", "path": "/board/cells/3", "payload": {"v": "x"}},
    {"type": "LEAVE_ROOM", "roomId": "lobby"},
    {"type": "RESYNC", "roomId": "lobby", "requestId": 9},
    {"type": "PING", "timestamp": 1700000000000},
    {"type": "DELTA_UPDATE", "roomId": "x", "payload": {}, "version": 2, "baseVersion": 1,
     "tick": 5, "epoch": "e"},
    {"type": "NOPE"},
]

PATCHES = [
    [{"players": {"a": {"x": 1}}}, {"players": {"a": {"x": 2, "y": None}}}],
    [{"a": {"b": 1}}, {"a": None}, {"a": {"c": [1, 2]}}],
    [{"a": 1, "b": {"c": {"d": 2}}}, {"b": {"c": {"d": None, "e": {}}}}, {"b": 3}, {"b": {}}],
    [{}, {"x": {"y": {"z": None}}}, {"x": 1.5}],
]

SECRET = b"fuzz-secret"  # the HS256 secret of fuzz/jwt.cpp


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(header: dict, claims: dict) -> str:
    signed = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(SECRET, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{b64(mac)}"


def write(target: str, seeds: list[bytes]) -> None:
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds):
        (folder / f"seed-{i:02d}").write_bytes(seed)


def main() -> None:
    write("decode_json", [json.dumps(m).encode() for m in MESSAGES] + [b"{", b"[]", b"\xff"])
    write("decode_msgpack", [msgpack.packb(m, use_bin_type=True) for m in MESSAGES]
          + [b"\xc1", b"\x80", b"\xdf\xff\xff\xff\xff"])
    write("merge_patch", [json.dumps(p).encode() for p in PATCHES])
    claims = {"sub": "ann", "rooms": ["lobby", "match:*"], "write": False,
              "exp": 1800000000, "nbf": 1600000000}
    def unsigned(alg: str, signature: bytes) -> str:
        header = b64(json.dumps({"alg": alg}).encode())
        return f"{header}.{b64(json.dumps(claims).encode())}.{b64(signature)}"

    tokens = [
        hs256_token({"alg": "HS256", "typ": "JWT"}, claims),
        hs256_token({"alg": "HS256"}, {"exp": 1}),
        unsigned("none", b""),
        unsigned("ES256", bytes(64)),
        unsigned("RS256", bytes(256)),
    ]
    signed_here = [
        b'{"alg":"HS256"}\n{}',
        b'{"alg":"HS256","crit":["x"]}\n{"sub":"a"}',
        b'{"alg":"HS256"}\n{"exp":1,"nbf":"x","rooms":[1]}',
    ]
    write("jwt", [b"\x00" + t.encode() for t in tokens] + [b"\x01" + s for s in signed_here])


if __name__ == "__main__":
    main()
