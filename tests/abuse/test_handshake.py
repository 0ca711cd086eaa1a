"""Attacks before a WebSocket exists: header floods, slow handshakes, foreign origins, bad
tokens, and more connections from one address than it may have."""

from __future__ import annotations

import time

import pytest

from keys import SECRET, forged_token, token
from raw import open_socket, read_status, upgrade_request, websocket

TOO_LARGE = 431


def test_two_thousand_headers_get_431(target) -> None:
    server = target()
    headers = "".join(f"X-Flood-{i}: {i}\r\n" for i in range(2000))

    def attack() -> int:
        with open_socket(server.port) as sock:
            try:
                sock.sendall(upgrade_request(server.port, headers))
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before we finished: the answer is already there
            return read_status(sock)

    server.withstands(attack, expect=lambda status: status == TOO_LARGE)


def test_many_small_headers_within_the_byte_limit_get_431(target) -> None:
    server = target()
    headers = "".join(f"x{i}:\r\n" for i in range(1000))  # about 6 KiB, under 8 KiB

    def attack() -> int:
        with open_socket(server.port) as sock:
            sock.sendall(upgrade_request(server.port, headers))
            return read_status(sock)

    server.withstands(attack, expect=lambda status: status == TOO_LARGE)
    assert server.metric('kasagi_refusals_total{reason="headers"}') > 0


def test_slow_handshake_is_dropped_after_the_handshake_timeout(target) -> None:
    server = target()  # handshake_timeout 1 s
    request = upgrade_request(server.port)

    def attack() -> float:
        # Slowloris: one byte of the request every 0.2 s, so that it would take 30 s.
        with open_socket(server.port) as sock:
            started = time.monotonic()
            try:
                for byte in request:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)
                    if time.monotonic() - started > 10:
                        return float("inf")  # still not dropped
            except (BrokenPipeError, ConnectionResetError):
                pass
            return time.monotonic() - started

    # Dropped after about 1 s: writes fail once the server has closed (a write may still
    # succeed just after, so allow a few steps of 0.2 s).
    server.withstands(attack, threads=32, expect=lambda seconds: 0.8 < seconds < 3.0)


def test_foreign_origin_gets_403(target) -> None:
    server = target("--allowed-origin", "https://game.example")

    def attack() -> int:
        with open_socket(server.port) as sock:
            sock.sendall(upgrade_request(server.port, "Origin: https://evil.example\r\n"))
            return read_status(sock)

    server.withstands(attack, expect=lambda status: status == 403)
    with websocket(server.port, extra="Origin: https://game.example\r\n"):
        pass


BAD_TOKENS = {
    "missing": None,
    "expired": lambda: token(ttl=-3600, sub="x"),
    "wrongly signed": lambda: token("not-the-secret-but-long-enough-0123456789", sub="x"),
    "alg none": lambda: forged_token({"alg": "none", "typ": "JWT"}, {"sub": "x"}, None),
}


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_token_gets_401(target, kind: str) -> None:
    server = target("--jwt-secret", SECRET, token=token(sub="bystander"))
    make = BAD_TOKENS[kind]
    header = "" if make is None else f"Authorization: Bearer {make()}\r\n"

    def attack() -> int:
        with open_socket(server.port) as sock:
            sock.sendall(upgrade_request(server.port, header))
            return read_status(sock)

    server.withstands(attack, expect=lambda status: status == 401)


def test_connections_beyond_the_per_address_limit_are_closed(target) -> None:
    server = target()  # 64 connections per address; the bystander is on another address
    held = [websocket(server.port) for _ in range(64)]

    def attack() -> bool:
        # One more from the same address: closed at once, before any HTTP.
        with open_socket(server.port) as sock:
            try:
                sock.sendall(upgrade_request(server.port))
                return read_status(sock) == 0
            except (BrokenPipeError, ConnectionResetError):
                return True

    try:
        server.withstands(attack, threads=2, expect=lambda refused: refused)
        # Another address is not affected by this one's connections.
        with websocket(server.port, source="127.0.0.3"):
            pass
    finally:
        for sock in held:
            sock.close()
    # Once they are closed (and the server saw it), the address may connect again.
    deadline = time.monotonic() + 5
    while True:
        try:
            with websocket(server.port):
                break
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    # Read from this address too: only now is it sure to be let in.
    assert server.metric('kasagi_refusals_total{reason="connections_per_ip"}') > 0

