"""Authentication (JWT), permissions from claims, the Origin allowlist and TLS, against a real
server over real sockets (docs/security.md)."""

from __future__ import annotations

import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidHandshake, InvalidStatus

import kasagi
from keys import (
    SECRET,
    ec_key,
    forged_token,
    public_pem,
    rsa_key,
    self_signed_certificate,
    token,
)
from wire import Wire, raw_upgrade

# Connections and rooms on several I/O threads: CI runs these under ThreadSanitizer too.
pytestmark = pytest.mark.tsan


def bearer(tok: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {tok}"}}


def refused_status(url: str, **options: Any) -> int:
    """The HTTP status a handshake is refused with (fails if it is accepted)."""
    with pytest.raises(InvalidStatus) as info:
        Wire(url, **options)
    return int(info.value.response.status_code)


# ----------------------------------------------------------------------------------------
# Tokens


def test_hs256_token_names_the_player_and_its_claims_reach_the_session(make_server) -> None:
    server = make_server(jwt_secret=SECRET)
    ann = Wire(server.url, **bearer(token(sub="ann", team="red")))
    full = ann.join("lobby", playerName="Ann")
    assert full["payload"]["playerId"] == "ann"
    assert server.room_state("lobby")["state"]["players"] == {"ann": {"playerName": "Ann"}}
    [claims] = server.session_claims()
    assert claims["sub"] == "ann" and claims["team"] == "red"
    ann.close()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_public_key_tokens_in_the_query(make_server, tmp_path: Path, algorithm: str) -> None:
    key = rsa_key() if algorithm == "RS256" else ec_key()
    (tmp_path / "jwt.pem").write_bytes(public_pem(key))
    server = make_server(jwt_public_key=str(tmp_path / "jwt.pem"))
    bob = Wire(f"{server.url}?token={token(key, algorithm, sub='bob')}")
    assert bob.join("lobby")["payload"]["playerId"] == "bob"
    # The other algorithm, another key of the same kind, and HS256 are all refused.
    other = ec_key() if algorithm == "RS256" else rsa_key()
    other_alg = "ES256" if algorithm == "RS256" else "RS256"
    same_kind = rsa_key() if algorithm == "RS256" else ec_key()
    for tok in (token(other, other_alg), token(same_kind, algorithm), token(SECRET, "HS256")):
        assert refused_status(f"{server.url}?token={tok}") == 401
    bob.close()


def test_refused_tokens_get_401(make_server, tmp_path: Path) -> None:
    key = rsa_key()
    pem = public_pem(key)
    (tmp_path / "jwt.pem").write_bytes(pem)
    hs = make_server(jwt_secret=SECRET)
    rs = make_server(jwt_public_key=str(tmp_path / "jwt.pem"))
    now = int(time.time())
    head, _, signature = token(sub="eve").split(".")
    tampered_payload = token(sub="mallory").split(".")[1]
    bad = {
        "missing": (hs, None),
        "expired": (hs, token(ttl=-3600)),
        "not yet valid": (hs, token(nbf=now + 3600)),
        "wrong secret": (hs, token("another-secret-of-enough-length-0123456")),
        "alg none": (hs, forged_token({"alg": "none"}, {"sub": "eve"}, None)),
        "alg none, public key": (rs, forged_token({"alg": "none"}, {"sub": "eve"}, None)),
        # alg confusion: HS256 keyed with the server's public key, which anyone can read.
        "alg confusion": (rs, forged_token({"alg": "HS256"}, {"sub": "eve"}, pem)),
        "tampered": (hs, f"{head}.{tampered_payload}.{signature}"),
        "expired RS256": (rs, token(key, "RS256", ttl=-3600)),
        "garbage": (hs, "not.a.token"),
        "bad sub": (hs, token(sub="a/b")),
        "bad rooms": (hs, token(rooms="lobby")),
        "critical header": (hs, forged_token({"alg": "HS256", "crit": ["x"]}, {}, SECRET.encode())),
    }
    for name, (server, tok) in bad.items():
        options = {} if tok is None else bearer(tok)
        assert refused_status(server.url, **options) == 401, name
    assert Wire(hs.url, **bearer(token(sub="eve"))).join("x")["payload"]["playerId"] == "eve"
    assert Wire(rs.url, **bearer(token(key, "RS256"))).join("x")
    refusals = sum(1 for server, _ in bad.values() if server is hs)
    assert f'kasagi_refusals_total{{reason="token"}} {refusals}' in hs.metrics()
    # The refusal says how to authenticate.
    s, head_bytes = raw_upgrade(hs.port)
    s.close()
    assert head_bytes.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate: Bearer" in head_bytes


def test_health_and_metrics_need_no_token(make_server) -> None:
    server = make_server(jwt_secret=SECRET)
    with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=5) as response:
        assert response.status == 200


def test_room_patterns_and_read_only_tokens(make_server) -> None:
    server = make_server(jwt_secret=SECRET, tick_rate=0)
    viewer = Wire(server.url, **bearer(token(sub="v", rooms=["match:*", "lobby"], write=False)))
    viewer.send({"type": "JOIN_ROOM", "roomId": "secret", "requestId": 1})
    error = viewer.expect("ERROR")
    assert (error["payload"]["code"], error["requestId"]) == ("FORBIDDEN", 1)
    assert server.room_state("secret") is None  # refused before the room was made
    viewer.join("match:7")
    # Join attributes would write the player's entry: refused like a STATE_UPDATE, before
    # the room is made; the keys that only steer the join are not attributes.
    viewer.send({"type": "JOIN_ROOM", "roomId": "lobby", "requestId": 3,
                 "payload": {"name": "V", "sessionToken": "stale"}})
    error = viewer.expect("ERROR")
    assert (error["payload"]["code"], error["requestId"]) == ("FORBIDDEN", 3)
    assert "read-only" in error["payload"]["message"]
    assert server.room_state("lobby") is None
    viewer.join("lobby", sessionToken="stale", playerId="spoof")
    viewer.send({"type": "STATE_UPDATE", "roomId": "lobby", "requestId": 2, "payload": {"x": 1}})
    error = viewer.expect("ERROR")
    assert (error["payload"]["code"], error["requestId"]) == ("FORBIDDEN", 2)
    viewer.send({"type": "JOIN_ROOM", "roomId": "lobby", "requestId": 4, "payload": {"x": 1}})
    assert viewer.expect("ERROR")["payload"]["code"] == "FORBIDDEN"  # a member too
    assert server.room_state("lobby")["state"]["players"] == {"v": {}}
    patterned = Wire(server.url, **bearer(token(sub="p", rooms=["a*b*c"])))
    assert patterned.join("axxbyyc")["payload"]["playerId"] == "p"
    patterned.send({"type": "JOIN_ROOM", "roomId": "axxbyy"})
    assert patterned.expect("ERROR")["payload"]["code"] == "FORBIDDEN"
    writer = Wire(server.url, **bearer(token(sub="w", rooms=[])))
    writer.send({"type": "JOIN_ROOM", "roomId": "lobby"})
    assert writer.expect("ERROR")["payload"]["code"] == "FORBIDDEN"  # [] allows no room


def test_same_player_on_a_second_connection_takes_over(make_server) -> None:
    server = make_server(jwt_secret=SECRET, tick_rate=0)
    first = Wire(server.url, **bearer(token(sub="ann")))
    first.join("lobby", color="red")
    second = Wire(server.url, **bearer(token(sub="ann")))
    full = second.join("lobby")
    assert full["payload"]["playerId"] == "ann"
    assert full["payload"]["state"]["players"] == {"ann": {"color": "red"}}  # resumed
    second.send({"type": "STATE_UPDATE", "roomId": "lobby", "requestId": 1, "payload": {"x": 1}})
    assert second.expect("ACK")["requestId"] == 1
    first.send({"type": "STATE_UPDATE", "roomId": "lobby", "requestId": 2, "payload": {"x": 2}})
    assert first.expect("ERROR")["payload"]["code"] == "NOT_IN_ROOM"


def test_client_sends_its_token_and_stops_reconnecting_when_refused(make_server) -> None:
    server = make_server(jwt_secret=SECRET)
    with kasagi.Client().connect(server.url, token=token(sub="cli")) as client:
        assert client.join("lobby").player_id == "cli"
    with pytest.raises(InvalidStatus):
        kasagi.Client().connect(server.url, token=token(ttl=-3600))


def test_client_stops_reconnecting_once_its_token_has_expired(make_server) -> None:
    server = make_server(jwt_secret=SECRET)
    # Within the server's 30 s of clock tolerance now, beyond it two seconds later.
    almost_expired = token(ttl=-28, sub="late")
    client = kasagi.Client(reconnect_delay=0.05).connect(server.url, token=almost_expired)
    try:
        client.join("lobby")
        time.sleep(2.5)
        client.drop_connection()
        time.sleep(1.5)  # without the stop, several attempts would happen in this time
        assert not client.connected and client.reconnects == 0
        assert 'kasagi_refusals_total{reason="token"} 1' in server.metrics()
    finally:
        client.close()


def test_bad_key_files_fail_at_construction(tmp_path: Path) -> None:
    (tmp_path / "garbage.pem").write_text("not a key")
    with pytest.raises(ValueError, match="jwt_public_key"):
        kasagi.Server(jwt_public_key=str(tmp_path / "missing.pem")).start()
    with pytest.raises(ValueError, match="jwt_public_key"):
        kasagi.Server(jwt_public_key=str(tmp_path / "garbage.pem")).start()
    with pytest.raises(ValueError, match="tls_cert"):
        kasagi.Server(tls_cert=str(tmp_path / "garbage.pem"),
                      tls_key=str(tmp_path / "garbage.pem")).start()


# ----------------------------------------------------------------------------------------
# Origin


def test_origin_allowlist(make_server) -> None:
    server = make_server(allowed_origins=["https://game.example", "http://localhost:3000"])
    Wire(server.url, origin="https://game.example").close()
    Wire(server.url, origin="HTTP://LOCALHOST:3000").close()  # case-insensitive, like hosts
    Wire(server.url).close()  # no Origin: not a browser
    for origin in ("https://evil.example", "https://game.example.evil", "null"):
        assert refused_status(server.url, origin=origin) == 403, origin
    assert 'kasagi_refusals_total{reason="origin"} 3' in server.metrics()


# ----------------------------------------------------------------------------------------
# TLS


def test_tls_serves_wss_healthz_and_metrics(make_server, tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server = make_server(tls_cert=str(cert), tls_key=str(key), jwt_secret=SECRET)
    assert server.url.startswith("wss://") and server.http_url.startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(f"{server.http_url}/healthz", context=context, timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{server.http_url}/metrics", context=context, timeout=5) as r:
        assert b"kasagi_connections" in r.read()
    with kasagi.Client().connect(server.url, ca_file=str(cert), token=token(sub="tls")) as client:
        room = client.join("secure")
        client.update("secure", {"x": 1}, ack=True)
        assert room.player_id == "tls"
    # websockets' sync client reads its socket on a thread of its own while it writes the
    # handshake request on the caller's: one OpenSSL connection used by two threads at
    # once, which OpenSSL forbids. Under TLS 1.3 the reader handles the server's session
    # tickets meanwhile, and the request is sometimes lost (the server then times the
    # connection out: seen under ASan). TLS 1.2 sends nothing after its handshake; the
    # asyncio clients above cover TLS 1.3.
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    raw = Wire(server.url, ssl=context, **bearer(token()))
    raw.join("secure")
    raw.close()
    # A plain client, or one that does not trust the certificate, gets nowhere.
    with pytest.raises((InvalidHandshake, EOFError, OSError)):
        Wire(server.url.replace("wss://", "ws://"))
    with pytest.raises(ssl.SSLError):
        Wire(server.url, ssl=ssl.create_default_context())
    assert server.stats()["connections"] <= 1


def test_tls_handshake_that_never_completes_is_dropped(make_server, tmp_path: Path) -> None:
    # Slow-loris on TLS: a TCP connection that never sends its ClientHello, and one that
    # stops half-way through the TLS handshake. Both are cut after handshake_timeout.
    cert, key = self_signed_certificate(tmp_path)
    server = make_server(tls_cert=str(cert), tls_key=str(key), handshake_timeout=0.5)
    port = int(server.http_url.rsplit(":", 1)[1].split("/")[0])
    silent = socket.create_connection(("127.0.0.1", port))
    hello_only = socket.create_connection(("127.0.0.1", port))
    # The first bytes of a ClientHello record: a handshake record of 512 bytes, never sent.
    hello_only.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))
    for sock in (silent, hello_only):
        sock.settimeout(10)  # 20 times the timeout: a server that waits on fails here
        with sock:
            try:
                assert sock.recv(4096) == b""  # closed by the server
            except ConnectionResetError:
                pass  # closed too, less politely
