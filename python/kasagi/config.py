"""Every setting of a Kasagi server, with its default and the reason for it, in one place.

:class:`Config` is the single documented source of the server's settings: ``kasagi.Server``
takes its fields as keywords, ``kasagi serve`` generates one command-line option per field and
reads them from a TOML file, and docs/configuration.md is rendered from it by
:func:`docs_markdown`. The C++ core (``kasagi._core.ServerConfig``) carries the same defaults;
``tests/unit/test_config.py`` checks that the two agree field by field.

Example::

    from kasagi import Config

    config = Config.from_toml("kasagi.toml").replace(port=9000)
    config.to_core()  # the kasagi._core.ServerConfig handed to the native server

Errors: every problem with a setting (unknown name, wrong type, out of range, unreadable file)
raises :class:`ConfigError`, a :class:`ValueError` whose message names the setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

__all__ = [
    "LOG_LEVELS",
    "Config",
    "ConfigError",
    "Settings",
    "docs_markdown",
    "option_name",
]

#: The accepted values of :attr:`Config.log_level`, most verbose first.
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "off")

# What Config.from_env accepts for a boolean.
_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}

_UINT16_MAX = 2**16 - 1
_UINT32_MAX = 2**32 - 1


class ConfigError(ValueError):
    """A setting is unknown, has the wrong type or is out of range.

    Attributes:
        key: the name of the offending setting, or None when the problem is not about one
            setting (an unreadable file, for instance).
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _setting(
    default: Any,
    *,
    section: str,
    doc: str,
    why: str,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] | None = None,
    option: str | None = None,
    secret: bool = False,
) -> Any:
    """Declares one field of Config: its default, what it means and why that default.

    Args:
        default: the default value (tuples are immutable, so they need no factory).
        section: the heading it is listed under in the documentation.
        doc: what the setting does (one or two sentences).
        why: the reason for the default.
        minimum: the smallest allowed value (inclusive).
        above: a bound the value must exceed (exclusive).
        maximum: the largest allowed value (inclusive).
        choices: the allowed values of a string setting.
        option: the command-line option when it is not ``--`` + the dashed name (a list
            setting whose option is given once per value, like ``--allowed-origin``).
        secret: kept out of ``repr()``, so that logging a Config does not leak it.
    """
    metadata = {
        "section": section,
        "doc": doc,
        "why": why,
        "minimum": minimum,
        "above": above,
        "maximum": maximum,
        "choices": choices,
        "option": option,
    }
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The settings of one Kasagi server. Immutable: derive variants with :meth:`replace`.

    Every field is keyword-only and validated on construction (:class:`ConfigError`). Float
    fields accept ints; ``writable_paths`` accepts any sequence of strings and is stored as a
    tuple. See each field's ``doc`` and ``why`` metadata (or docs/configuration.md) for its
    meaning and the reason for its default.
    """

    # ------------------------------------------------------------------------------------
    # Network

    host: str = _setting(
        "127.0.0.1",
        section="Network",
        doc="Address to listen on (IPv4 or IPv6 literal, or a host name).",
        why="Loopback keeps an embedded or test server unreachable from the network until "
        "asked; `kasagi serve`, the production entrypoint, defaults to 0.0.0.0 instead.",
    )
    port: int = _setting(
        8080,
        section="Network",
        doc="TCP port for WebSocket (`/sync`) and HTTP (`/healthz`, `/metrics`); 0 picks a "
        "free port (the server reports which).",
        why="A conventional unprivileged HTTP port. `kasagi.Server` uses 0 unless told "
        "otherwise, so that tests and embedded servers never collide.",
        minimum=0,
        maximum=_UINT16_MAX,
    )
    threads: int = _setting(
        0,
        section="Network",
        doc="Number of I/O threads; rooms are spread across them, and a connection (plain "
        "TCP) moves to the thread of the first room it joins. 0 means one per CPU core.",
        why="One thread per core uses the machine fully without oversubscribing it; nothing "
        "blocks a thread, so more threads would only add context switches.",
        minimum=0,
        maximum=4096,
    )
    io_batch_wait: float = _setting(
        0.001,
        section="Network",
        doc="Seconds a busy I/O thread (one that has just handled a burst: a tick's sends, "
        "several messages) waits before it looks for more, so that what arrives meanwhile "
        "is handled in one wake-up. A thread that is not busy wakes at the first message, "
        "so a lone request is answered at once. The wait used is at most 2 % of the "
        "server's tick interval (`tick_rate`; room types' own rates do not change it), and "
        "none when `tick_rate` is 0. A message can meet it on each thread it crosses (a TLS "
        "connection or a room with hooks adds a thread). 0 turns it off.",
        why="Under load, putting threads to sleep and waking them for each message cost "
        "about a quarter of the server's CPU; 1 ms adds at most 1 ms per thread to a delta "
        "that already waits up to a tick interval (50 ms at 20 Hz) (docs/benchmarks.md).",
        minimum=0,
        maximum=0.1,
    )

    static_dir: str = _setting(
        "",
        section="Network",
        doc="Directory whose files are served over plain HTTP on the same port (GET and HEAD; "
        "`/` is its index.html), e.g. the browser demo `clients/js/dist/demo`. `/sync`, "
        "`/healthz` and `/metrics` keep priority; paths that would leave the directory "
        "(`..`, encoded or not, symlinks pointing out) and hidden names are refused. Empty: "
        "no files are served. `kasagi serve --static DIR` is the same option.",
        why="Off by default: a synchronization server exposes no files unless asked. One "
        "port for the page and its WebSocket lets a demo or a small app run without a web "
        "server in front.",
    )

    # ------------------------------------------------------------------------------------
    # Security

    jwt_secret: str = _setting(
        "",
        section="Security",
        doc="Shared secret for HS256 tokens. When it (or jwt_public_key) is set, every "
        "WebSocket connection must present a valid JWT (`Authorization: Bearer` header or "
        "`token` query parameter) or is refused with HTTP 401. See docs/security.md.",
        why="Off: an embedded or test server needs no identity provider. Prefer a TOML file "
        "readable by the server only to the command line, where other users can see it.",
        secret=True,
    )
    jwt_public_key: str = _setting(
        "",
        section="Security",
        doc="PEM file with the public key that verifies RS256 (an RSA key) or ES256 (a P-256 "
        "key) tokens; tokens of any other algorithm are refused. Setting it makes tokens "
        "required, like jwt_secret.",
        why="Off, as jwt_secret. With a public key the server cannot mint tokens itself, so a "
        "leaked server configuration does not let anyone in.",
    )
    allowed_origins: tuple[str, ...] = _setting(
        (),
        section="Security",
        doc="Origins (`https://game.example.com`) whose browser pages may open WebSocket "
        "connections; an upgrade with any other `Origin` header is refused with HTTP 403. "
        "Requests without `Origin` (non-browser clients) are not affected. Empty allows "
        "every origin. On the command line, one `--allowed-origin` per origin.",
        why="Off, because only the deployment knows its origins. Set it whenever browsers "
        "connect with cookies or other ambient credentials: it stops other sites' pages "
        "from connecting in their users' name.",
        option="--allowed-origin",
    )
    tls_cert: str = _setting(
        "",
        section="Security",
        doc="PEM file with the server's certificate (chain). With tls_key, the port speaks "
        "TLS only: `wss://` and `https://` for /healthz and /metrics.",
        why="Off: TLS is often ended at a load balancer in front of the server.",
    )
    tls_key: str = _setting(
        "",
        section="Security",
        doc="PEM file with the private key of tls_cert.",
        why="Set together with tls_cert, or not at all.",
    )

    # ------------------------------------------------------------------------------------
    # Rooms

    tick_rate: float = _setting(
        20.0,
        section="Rooms",
        doc="Deltas per second per room (Hz): changes within one tick are coalesced into one "
        "DELTA_UPDATE. 0 sends every change at once.",
        why="50 ms batches are the common rate of networked games: latency stays well under "
        "what people perceive while the messages per member stay bounded however often the "
        "state changes.",
        minimum=0,
        maximum=10000,
    )
    room_empty_ttl: float = _setting(
        30.0,
        section="Rooms",
        doc="Seconds a room without players (attached or in their grace period) is kept "
        "before it is discarded.",
        why="A room that empties for a moment (everyone reloading) keeps its state and epoch; "
        "abandoned rooms still go away quickly enough not to pile up.",
        minimum=0,
    )
    max_rooms: int = _setting(
        10000,
        section="Rooms",
        doc="Rooms one server holds at once; a JOIN_ROOM that would create one more is "
        "answered with ERROR UNAVAILABLE.",
        why="Each room costs a document and a delta history; the cap protects memory from "
        "clients spraying room ids while staying far above what one process serves well.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    max_members_per_room: int = _setting(
        100,
        section="Rooms",
        doc="Players per room, counting those in their grace period; beyond it JOIN_ROOM is "
        "answered with ERROR ROOM_FULL.",
        why="Fan-out cost grows with the square of the members (every change goes to every "
        "member); 100 covers game matches and shared documents with room to spare.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    delta_history: int = _setting(
        256,
        section="Rooms",
        doc="DELTA_UPDATEs kept per room so that a resuming client (JOIN_ROOM with "
        "`lastVersion`) gets the deltas it missed instead of a FULL_STATE. 0 disables it.",
        why="At 20 Hz this covers about 13 s of changes, more than a typical network blip, "
        "while bounding the memory of every room.",
        minimum=0,
        maximum=_UINT32_MAX,
    )
    delta_history_bytes: int = _setting(
        1024 * 1024,
        section="Rooms",
        doc="Encoded bytes of those deltas kept per room at most: the oldest go first. A "
        "resume that needs a delta no longer kept gets a FULL_STATE.",
        why="Bounds a room's memory by size, not only by count: 256 deltas of a 16 KB "
        "value would otherwise hold several MiB per room, for every room.",
        minimum=0,
        maximum=_UINT32_MAX,
    )
    conflict_window: int = _setting(
        4096,
        section="Rooms",
        doc="Versions of write history kept for optimistic checks: a STATE_UPDATE whose "
        "`version` is older than this window is refused with CONFLICT, since it can no "
        "longer be decided.",
        why="Far longer than any client takes to act on what it saw, yet bounded per room.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    writable_paths: tuple[str, ...] = _setting(
        ("/players/$self",),
        section="Rooms",
        doc="JSON Pointer patterns a STATE_UPDATE may write at or below; `*` matches any one "
        "segment and `$self` the writer's playerId. Anything else is refused with FORBIDDEN.",
        why="Least privilege: each client writes only its own player entry. Rooms with shared "
        "objects add patterns such as `/board/*`.",
    )
    max_state_depth: int = _setting(
        32,
        section="Rooms",
        doc="Deepest nesting of maps and arrays a document (and so a patch) may have; deeper "
        "updates are refused with BAD_MESSAGE.",
        why="Bounds recursion in decoding, merging and encoding (stack and CPU) far above the "
        "few levels real documents use.",
        minimum=1,
        maximum=1024,
    )
    hook_threads: int = _setting(
        2,
        section="Rooms",
        doc="Threads that run the rooms whose room type has Python hooks (docs/hooks.md), "
        "besides the I/O threads; started only when such a type is registered. Rooms "
        "without hooks never run there and never wait for the GIL.",
        why="Python runs one hook at a time anyway (the GIL); every hook thread serves every "
        "hooked room, so a second thread keeps all other hooked rooms going while one hook "
        "waits (I/O, sleep), at the cost of one idle thread.",
        minimum=1,
        maximum=256,
    )

    # ------------------------------------------------------------------------------------
    # Sessions

    session_grace: float = _setting(
        60.0,
        section="Sessions",
        doc="Seconds a disconnected player's entry is kept so that JOIN_ROOM with its "
        "`sessionToken` resumes it; afterwards it is removed (PLAYER_LEFT, reason `timeout`). "
        "0 removes it at once.",
        why="Covers a phone switching networks or a browser reload, without keeping ghosts "
        "in the room for long.",
        minimum=0,
    )
    idle_timeout: float = _setting(
        30.0,
        section="Sessions",
        doc="Seconds of silence after which a connection is closed and its players enter "
        "their grace period. The server pings idle connections before that.",
        why="Detects dead peers (half-open TCP) within half a minute; a live client answers "
        "the pings and never reaches it.",
        above=0,
    )
    handshake_timeout: float = _setting(
        10.0,
        section="Sessions",
        doc="Seconds a new connection has to complete its HTTP request or WebSocket handshake.",
        why="Stops slow-loris connections from holding sockets, while leaving slow mobile "
        "networks ample time.",
        above=0,
    )
    max_rooms_per_connection: int = _setting(
        16,
        section="Sessions",
        doc="Rooms one connection may be in at once; a further JOIN_ROOM is refused with "
        "ERROR FORBIDDEN.",
        why="A client seldom needs more than a few rooms; the cap bounds the work one "
        "connection can create.",
        minimum=1,
        maximum=_UINT32_MAX,
    )

    # ------------------------------------------------------------------------------------
    # Limits on input

    max_message_bytes: int = _setting(
        64 * 1024,
        section="Limits on input",
        doc="Largest message accepted, in bytes; a larger one is answered with ERROR "
        "TOO_LARGE and dropped, and the connection stays open.",
        why="Updates are small deltas: 64 KiB is generous for them, while a bigger message "
        "is almost certainly a bug or abuse.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    max_frame_bytes: int = _setting(
        1024 * 1024,
        section="Limits on input",
        doc="Hard limit on one WebSocket frame, in bytes: a larger frame closes the "
        "connection with code 1009. At least max_message_bytes.",
        why="Above it the frame is not even buffered, so closing is the only safe answer; "
        "1 MiB leaves room for the TOO_LARGE path to answer politely below it.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    rate_limit: float = _setting(
        100.0,
        section="Limits on input",
        doc="Sustained messages per second per connection (token bucket); beyond it messages "
        "are refused with ERROR RATE_LIMITED.",
        why="Well above a 60 Hz input loop, well below what would let one client flood a room.",
        above=0,
    )
    rate_burst: float = _setting(
        200.0,
        section="Limits on input",
        doc="Token bucket size: messages a connection may send at once above the rate.",
        why="Absorbs legitimate bursts such as joining several rooms or catching up after a "
        "reconnect.",
        minimum=1,
    )
    rate_limit_close_after: float = _setting(
        10.0,
        section="Limits on input",
        doc="Seconds of continuous rate limiting after which the connection is closed with "
        "code 1008.",
        why="A client limited for ten seconds straight is misbehaving, not bursting.",
        above=0,
    )

    max_header_bytes: int = _setting(
        8 * 1024,
        section="Limits on input",
        doc="Largest HTTP request line plus headers, in bytes; a larger request is refused "
        "with HTTP 431 and the connection closed.",
        why="Real upgrade requests are well under 2 KiB; 8 KiB leaves room for cookies while "
        "bounding what a header flood can make the server buffer.",
        minimum=256,
        maximum=_UINT32_MAX,
    )
    max_header_count: int = _setting(
        64,
        section="Limits on input",
        doc="Most HTTP header fields in one request; more are refused with HTTP 431.",
        why="Browsers send about 15; thousands of tiny ones within max_header_bytes are "
        "refused before any handler sees them.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    max_fragments: int = _setting(
        64,
        section="Limits on input",
        doc="Most small pieces (under 64 bytes: WebSocket fragments, in practice) one message "
        "may arrive in; beyond, the connection is closed with code 1008. Empty fragments are "
        "not counted (read_bytes_per_second bounds them), nor larger ones (max_frame_bytes "
        "bounds the message's total).",
        why="Clients send each message in one frame; a stream of tiny fragments is only a way "
        "to make the server do work per byte.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    permessage_deflate: bool = _setting(
        False,
        section="Limits on input",
        doc="Offer WebSocket compression (permessage-deflate). Decompressed messages are "
        "bounded by max_frame_bytes like uncompressed ones.",
        why="Off: deltas are small, compression costs CPU and memory per connection, and "
        "compressed input is the classic way to make a server inflate a bomb.",
    )
    read_bytes_per_second: int = _setting(
        1024 * 1024,
        section="Limits on input",
        doc="Bytes per second read from one WebSocket connection (a token bucket holding one "
        "second); beyond it the server stops reading until the budget refills, so TCP slows "
        "the sender. 0 means unlimited.",
        why="Covers 100 messages/s of 10 KiB, far above real traffic, and bounds the CPU a "
        "flood of pings or empty frames can take, which the message rate limit cannot see.",
        minimum=0,
        maximum=_UINT32_MAX,
    )
    max_connections_per_ip: int = _setting(
        256,
        section="Limits on input",
        doc="Open connections (HTTP and WebSocket) from one IP address; further ones are "
        "closed as soon as they are accepted. 0 means unlimited.",
        why="Many players can share one address (NAT, carrier-grade NAT), so it is generous; "
        "it still stops one host from taking every file descriptor. Set 0 behind a proxy that "
        "hides client addresses.",
        minimum=0,
        maximum=_UINT32_MAX,
    )
    join_rate_per_ip: float = _setting(
        20.0,
        section="Limits on input",
        doc="JOIN_ROOM messages per second from one IP address, over all its connections "
        "(token bucket); beyond it JOIN_ROOM is answered with ERROR RATE_LIMITED. 0 means "
        "unlimited.",
        why="A join costs a FULL_STATE and maybe a new room; people join a few rooms a minute, "
        "while a script spraying joins from many connections is stopped.",
        minimum=0,
    )
    join_burst_per_ip: float = _setting(
        100.0,
        section="Limits on input",
        doc="Token bucket size of join_rate_per_ip: joins one address may make at once.",
        why="Lets a whole LAN party or a reconnecting office join together.",
        minimum=1,
    )

    # ------------------------------------------------------------------------------------
    # Output

    send_queue_max_bytes: int = _setting(
        4 * 1024 * 1024,
        section="Output",
        doc="Bytes queued for one connection before it counts as a slow consumer: its queue "
        "is replaced by one FULL_STATE (the second time within slow_consumer_window, it is "
        "disconnected).",
        why="Holds several full states of a large room; a client further behind is served "
        "better by a resync than by a backlog, and memory per connection stays bounded.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    send_queue_max_messages: int = _setting(
        4096,
        section="Output",
        doc="Messages queued for one connection before it counts as a slow consumer (see "
        "send_queue_max_bytes).",
        why="At 20 Hz in 16 rooms this is about 13 s of backlog: any client that far behind "
        "needs a resync.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    slow_consumer_window: float = _setting(
        10.0,
        section="Output",
        doc="Seconds within which a second send-queue overflow disconnects the connection; "
        "the first overflow resyncs it.",
        why="One overflow can be a hiccup and is repaired by a FULL_STATE; two in ten seconds "
        "mean the client cannot keep up and would only slow itself further.",
        minimum=0,
    )

    # ------------------------------------------------------------------------------------
    # Sharing rooms across instances

    redis: str = _setting(
        "",
        section="Sharing rooms across instances",
        doc="redis://[user:password@]HOST:PORT[/DB] of the Redis through which several "
        "instances serve the same rooms (docs/operations.md). Empty: this server alone, "
        "with the embedded in-memory broker.",
        why="One process needs no dependency; Redis is opted into when scaling out.",
    )
    sentinel: str = _setting(
        "",
        section="Sharing rooms across instances",
        doc="HOST:PORT[,HOST:PORT...] of Redis Sentinels, instead of redis: the master "
        "master_name is found through them, asked again on every reconnection and every "
        "second, and followed after a failover (docs/operations.md).",
        why="Sentinel is opted into for a Redis that survives the loss of its master; list "
        "every Sentinel so that any reachable one can answer.",
    )
    master_name: str = _setting(
        "kasagi-master",
        section="Sharing rooms across instances",
        doc="With sentinel: the name under which the Sentinels monitor the master.",
        why="The name used by deploy/sentinel/ and kasagi redis up --sentinel.",
    )
    cluster: str = _setting(
        "",
        section="Sharing rooms across instances",
        doc="HOST:PORT[,HOST:PORT...] of Redis Cluster nodes, instead of redis: each room is "
        "routed to the master of its hash slot, the slot map is read from any node and "
        "refreshed every second and on every redirection (docs/redis.md).",
        why="Cluster is opted into when one Redis master is not enough; list several nodes "
        "so that any reachable one can answer.",
    )
    redis_password: str = _setting(
        "",
        section="Sharing rooms across instances",
        doc="With sentinel: the password of the Redis data nodes; with cluster: of every "
        "node (AUTH; requirepass). With redis, the password goes in the URL.",
        why="deploy/sentinel/ leaves requirepass off by default.",
        secret=True,
    )
    sentinel_password: str = _setting(
        "",
        section="Sharing rooms across instances",
        doc="With sentinel: the password of the Sentinels themselves (AUTH), if they have "
        "one (requirepass in sentinel.conf).",
        why="Sentinels have no password by default.",
        secret=True,
    )
    key_prefix: str = _setting(
        "",
        section="Sharing rooms across instances",
        doc="Put before every Redis key (room:{id}:snapshot becomes PREFIXroom:{id}:snapshot), "
        "so several deployments can share one Redis.",
        why="Most deployments own their Redis.",
    )
    durability: str = _setting(
        "auto",
        section="Sharing rooms across instances",
        doc="When an update is ACKed: none (once applied), redis (once its delta is in the "
        "room's Redis log), replicated (once a Redis replica has it too, by WAIT); auto is "
        "redis with Redis and none without.",
        why="With Redis, an ACK should survive the instance that gave it: the append costs "
        "one round trip per tick, not per update.",
        choices=("auto", "none", "redis", "replicated"),
    )
    lease_ttl: float = _setting(
        3.0,
        section="Sharing rooms across instances",
        doc="Seconds a room's authority lease lasts without renewal (renewed every third of "
        "it). Another instance takes over a dead authority's rooms after at most this long.",
        why="Short enough for a quick failover, long enough that a GC-free C++ process never "
        "misses a renewal on a loaded machine.",
        minimum=0.3,
    )
    snapshot_every: int = _setting(
        100,
        section="Sharing rooms across instances",
        doc="Versions between two snapshots of a room (room:{id}:snapshot); a recovering "
        "authority replays at most this many log entries.",
        why="A snapshot is the whole document; 100 versions keep replay short and writes rare.",
        minimum=1,
        maximum=_UINT32_MAX,
    )
    snapshot_interval: float = _setting(
        10.0,
        section="Sharing rooms across instances",
        doc="Seconds after which a changed room is snapshotted even if fewer than "
        "snapshot_every versions passed.",
        why="Keeps the snapshot of a slow room recent.",
        above=0,
    )
    ops_max_len: int = _setting(
        1000,
        section="Sharing rooms across instances",
        doc="Entries kept in a room's log (room:{id}:ops); must be at least twice "
        "snapshot_every, so the entries after the last snapshot are never trimmed.",
        why="Ten snapshot intervals of history, a few hundred KB per busy room.",
        minimum=2,
        maximum=_UINT32_MAX,
    )
    wait_timeout: float = _setting(
        1.0,
        section="Sharing rooms across instances",
        doc="With durability replicated: seconds to wait for a replica to confirm a delta "
        "before the ACK is held back (and retried with the next one).",
        why="Replication on a healthy link takes milliseconds; a longer wait means a "
        "replica is down and callers should not hang.",
        above=0,
    )
    redis_replay_timeout: float = _setting(
        5.0,
        section="Sharing rooms across instances",
        doc="After a lost Redis connection: seconds during which the commands that were in "
        "flight are kept and sent again on the next connection (each can run twice without "
        "effect), and new ones wait for it; then they fail, and rooms repair their logs. "
        "0: they fail at once.",
        why="Rides out a quick failover (Sentinel down-after 1 s plus the election, a Cluster "
        "replica promotion) with ACKs delayed, not failed; raise it with a longer down-after.",
        minimum=0,
    )

    # ------------------------------------------------------------------------------------
    # Lifecycle

    drain_timeout: float = _setting(
        5.0,
        section="Lifecycle",
        doc="Seconds a graceful shutdown (SIGTERM, Server.drain) waits for clients to close "
        'after telling them 1001 "going away".',
        why="Clients close within milliseconds; 5 s fits well inside orchestrators' "
        "termination grace periods (30 s in Kubernetes).",
        minimum=0,
    )
    log_level: str = _setting(
        "info",
        section="Lifecycle",
        doc="Least severe level written to stderr: debug, info, warning, error or off.",
        why="Start, stop and errors without per-message noise; the hot path never logs.",
        choices=LOG_LEVELS,
    )

    # ------------------------------------------------------------------------------------
    # Tracing

    trace_file: str = _setting(
        "",
        section="Tracing",
        doc="File the deltas of traced rooms are appended to (MessagePack records: version, "
        "tick, epoch, time, bytes per encoding, changed paths, the patch; docs/tracing.md). "
        "Read it with `kasagi.trace.load` or `kasagi trace summary FILE`. Empty: no tracing. "
        "`kasagi serve --trace FILE` is the same option.",
        why="Off: a recording costs an encoding per delta and disk space, worth it while "
        "studying a room, not always. A writer thread keeps the disk off the rooms' threads.",
        option="--trace",
    )
    trace_rooms: tuple[str, ...] = _setting(
        (),
        section="Tracing",
        doc="Room ids to trace when trace_file is set: patterns where `*` matches any run of "
        "characters (`match-*`). Empty traces every room. On the command line, one "
        "`--trace-room` per pattern.",
        why="All rooms, since a trace is asked for on purpose; narrow it on a busy server.",
        option="--trace-room",
    )

    # ------------------------------------------------------------------------------------
    # Construction and validation

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = _coerce(f.name, _KINDS[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
            _check_range(f, value)
        if self.max_frame_bytes < self.max_message_bytes:
            raise ConfigError(
                f"max_frame_bytes ({self.max_frame_bytes}) must be at least max_message_bytes "
                f"({self.max_message_bytes})",
                key="max_frame_bytes",
            )
        if not self.host:
            raise ConfigError("host: must not be empty", key="host")
        if self.ops_max_len < 2 * self.snapshot_every:
            raise ConfigError(
                f"ops_max_len ({self.ops_max_len}) must be at least twice snapshot_every "
                f"({self.snapshot_every}): entries after a snapshot must never be trimmed",
                key="ops_max_len",
            )
        if self.redis and not self.redis.startswith("redis://"):
            raise ConfigError(
                f"redis: must look like redis://HOST:PORT/DB; got {self.redis!r}", key="redis"
            )
        if self.redis and self.sentinel:
            raise ConfigError("redis and sentinel: give one or the other", key="sentinel")
        if self.cluster and (self.redis or self.sentinel):
            raise ConfigError("cluster: give redis, sentinel or cluster, not two", key="cluster")
        for name in ("sentinel", "cluster"):
            for address in getattr(self, name).split(",") if getattr(self, name) else ():
                host, _, port = address.strip().rpartition(":")
                if not host or not port.isdigit() or not 0 < int(port) < 65536:
                    raise ConfigError(
                        f"{name}: {address.strip()!r} is not HOST:PORT "
                        "(expected HOST:PORT[,HOST:PORT...])",
                        key=name,
                    )
        if self.sentinel:
            if not self.master_name:
                raise ConfigError("master_name: must not be empty with sentinel", key="master_name")
        if self.durability in ("redis", "replicated") and not (
            self.redis or self.sentinel or self.cluster
        ):
            raise ConfigError(
                f"durability {self.durability!r} needs redis, sentinel or cluster to be set",
                key="durability",
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(
                "tls_cert and tls_key: give both (TLS) or neither (plain)",
                key="tls_cert" if self.tls_cert else "tls_key",
            )
        for origin in self.allowed_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ConfigError(
                    f"allowed_origins: {origin!r} is not an origin such as "
                    "'https://game.example.com' (scheme, host, optional port; no path)",
                    key="allowed_origins",
                )
        for pattern in self.writable_paths:
            if not pattern.startswith("/"):
                raise ConfigError(
                    f"writable_paths: {pattern!r} is not a JSON Pointer below the root "
                    "(it must start with '/')",
                    key="writable_paths",
                )

    def replace(self, **changes: Any) -> Config:
        """Returns a copy with ``changes`` applied, validated like a new Config.

        Raises:
            ConfigError: a name is not a setting, or a value is invalid.
        """
        _check_names(changes, source=None)
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, base: Config | None = None, source: str | None = None
    ) -> Config:
        """Returns ``base`` (default: the defaults) with ``values`` applied.

        Args:
            values: setting name to value, as read from TOML or JSON.
            base: the configuration the values override.
            source: where the values come from (a file name), used in error messages.

        Raises:
            ConfigError: a name is not a setting, or a value is invalid; the message names the
                setting and the source.
        """
        base = base if base is not None else cls()
        try:
            return base.replace(**dict(values))
        except ConfigError as err:
            if source is None:
                raise
            raise ConfigError(f"{source}: {err}", key=err.key) from None

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, base: Config | None = None) -> Config:
        """Reads settings from a TOML file of top-level ``name = value`` lines.

        Settings missing from the file keep their value in ``base`` (default: the defaults).
        Example file::

            port = 9000
            tick_rate = 30
            writable_paths = ["/players/$self", "/board/*"]

        Raises:
            ConfigError: the file cannot be read or parsed, holds an unknown name (tables
                included), or a value is invalid.
        """
        name = os.fspath(path)
        try:
            with open(name, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as err:
            raise ConfigError(f"{name}: cannot read: {err.strerror or err}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{name}: invalid TOML: {err}") from None
        return cls.from_mapping(data, base=base, source=name)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        prefix: str = "KASAGI_",
        base: Config | None = None,
    ) -> Config:
        """Reads settings from environment variables named ``<prefix><SETTING>``
        (``KASAGI_PORT=9000``, ``KASAGI_REDIS=redis://cache:6379/0``), the way containers are
        configured. Booleans are ``true``/``false`` (or 1/0, yes/no, on/off); lists are
        comma-separated (``KASAGI_ALLOWED_ORIGINS=https://a.example,https://b.example``).
        Variables with the prefix that name no setting are ignored (other tools share it).

        Args:
            environ: the variables (default: ``os.environ``).
            prefix: what every variable name starts with.
            base: the configuration they override (default: the defaults).

        Raises:
            ConfigError: a value cannot be read as its setting's type, or is invalid; the
                message names the variable.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            variable = prefix + f.name.upper()
            if variable not in environ:
                continue
            text = environ[variable].strip()
            kind = _KINDS[f.name]
            try:
                if kind == "bool":
                    lowered = text.lower()
                    if lowered not in _BOOL_WORDS:
                        raise ValueError("true or false expected")
                    values[f.name] = _BOOL_WORDS[lowered]
                elif kind == "list":
                    values[f.name] = tuple(p.strip() for p in text.split(",") if p.strip())
                elif kind in ("int", "float"):
                    values[f.name] = int(text) if kind == "int" else float(text)
                else:
                    values[f.name] = text
            except ValueError as err:
                raise ConfigError(f"{variable}={text!r}: {err}", key=f.name) from None
        return cls.from_mapping(values, base=base, source="environment")

    # ------------------------------------------------------------------------------------
    # Conversion

    def to_dict(self) -> dict[str, Any]:
        """Returns the settings as a plain dict (lists for sequences), e.g. for JSON."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def to_toml(self) -> str:
        """Returns the settings as a TOML document that :meth:`from_toml` reads back."""
        lines = []
        for name, value in self.to_dict().items():
            # JSON strings, numbers and string arrays are valid TOML values; floats keep their
            # decimal point, so they read back as floats.
            lines.append(f"{name} = {json.dumps(value, ensure_ascii=False)}")
        return "\n".join(lines) + "\n"

    def to_core(self) -> Any:
        """Returns the equivalent ``kasagi._core.ServerConfig`` for the native server."""
        from kasagi import _core

        core = _core.ServerConfig()
        for name, value in self.to_dict().items():
            setattr(core, name, value)
        return core

    @classmethod
    def from_core(cls, core: Any) -> Config:
        """Returns the Config equal to a ``kasagi._core.ServerConfig``."""
        return cls(**{f.name: getattr(core, f.name) for f in dataclasses.fields(cls)})

    @staticmethod
    def field_names() -> tuple[str, ...]:
        """Returns the names of all settings, in documentation order."""
        return tuple(f.name for f in dataclasses.fields(Config))


class Settings(TypedDict, total=False):
    """The keyword arguments ``kasagi.Server`` accepts: any subset of the Config fields."""

    host: str
    port: int
    threads: int
    io_batch_wait: float
    static_dir: str
    jwt_secret: str
    jwt_public_key: str
    allowed_origins: Iterable[str]
    tls_cert: str
    tls_key: str
    tick_rate: float
    room_empty_ttl: float
    max_rooms: int
    max_members_per_room: int
    delta_history: int
    delta_history_bytes: int
    conflict_window: int
    writable_paths: Iterable[str]
    max_state_depth: int
    hook_threads: int
    session_grace: float
    idle_timeout: float
    handshake_timeout: float
    max_rooms_per_connection: int
    max_message_bytes: int
    max_frame_bytes: int
    rate_limit: float
    rate_burst: float
    rate_limit_close_after: float
    max_header_bytes: int
    max_header_count: int
    max_fragments: int
    permessage_deflate: bool
    read_bytes_per_second: int
    max_connections_per_ip: int
    join_rate_per_ip: float
    join_burst_per_ip: float
    send_queue_max_bytes: int
    send_queue_max_messages: int
    slow_consumer_window: float
    redis: str
    sentinel: str
    master_name: str
    cluster: str
    redis_password: str
    sentinel_password: str
    key_prefix: str
    durability: str
    lease_ttl: float
    snapshot_every: int
    snapshot_interval: float
    ops_max_len: int
    wait_timeout: float
    redis_replay_timeout: float
    drain_timeout: float
    log_level: str
    trace_file: str
    trace_rooms: Iterable[str]


# ----------------------------------------------------------------------------------------
# Validation helpers

# The Python type of each field ("int", "float", "str", "bool" or "list" of strings), from
# the annotations.
_KINDS: dict[str, str] = {}
for _name, _hint in typing.get_type_hints(Config).items():
    _KINDS[_name] = {int: "int", float: "float", str: "str", bool: "bool"}.get(_hint, "list")
del _name, _hint

# scheme://host[:port], as browsers send it in the Origin header.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s@]+", re.IGNORECASE)


def _kind_label(kind: str) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "bool": "true or false",
        "list": "a list of strings",
    }[kind]


def _coerce(name: str, kind: str, value: Any) -> Any:
    """Returns ``value`` in the field's canonical type, or raises ConfigError."""
    bad = False
    if kind == "int":
        bad = not isinstance(value, int) or isinstance(value, bool)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            bad = not math.isfinite(value)
        else:
            bad = True
    elif kind == "str":
        bad = not isinstance(value, str)
    elif kind == "bool":
        bad = not isinstance(value, bool)
    else:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = tuple(value)
        else:
            bad = True
    if bad:
        raise ConfigError(
            f"{name}: must be {_kind_label(kind)}"
            + (" (finite)" if kind == "float" else "")
            + f", got {value!r} ({type(value).__name__})",
            key=name,
        )
    return value


def _check_range(f: dataclasses.Field[Any], value: Any) -> None:
    meta = f.metadata
    if meta["choices"] is not None and value not in meta["choices"]:
        raise ConfigError(
            f"{f.name}: must be one of {', '.join(meta['choices'])}; got {value!r}", key=f.name
        )
    lo, gt, hi = meta["minimum"], meta["above"], meta["maximum"]
    if (
        (lo is not None and value < lo)
        or (gt is not None and value <= gt)
        or (hi is not None and value > hi)
    ):
        raise ConfigError(f"{f.name}: must be {_range_text(f)}; got {value!r}", key=f.name)


def _range_text(f: dataclasses.Field[Any]) -> str:
    """Returns the allowed values of a numeric field in words, e.g. '0 to 65535'."""
    lo, gt, hi = f.metadata["minimum"], f.metadata["above"], f.metadata["maximum"]
    if lo is not None and hi is not None:
        return f"between {_num(lo)} and {_num(hi)}"
    if gt is not None and hi is not None:
        return f"above {_num(gt)} and at most {_num(hi)}"
    if lo is not None:
        return f">= {_num(lo)}"
    if gt is not None:
        return f"> {_num(gt)}"
    if hi is not None:
        return f"<= {_num(hi)}"
    return "any value"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_names(values: Mapping[str, Any], source: str | None) -> None:
    known = Config.field_names()
    for key in values:
        if key in _KINDS:
            continue
        hint = difflib.get_close_matches(str(key).replace("-", "_"), known, n=1)
        where = f"{source}: " if source else ""
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(
            f"{where}unknown setting '{key}'{suggestion}; the settings are listed in "
            "docs/configuration.md",
            key=str(key),
        )


# ----------------------------------------------------------------------------------------
# Documentation


def option_name(f: dataclasses.Field[Any]) -> str:
    """Returns the ``kasagi serve`` option of a Config field: ``--tick-rate`` for
    ``tick_rate``, unless the field declares its own (``--allowed-origin``, given once per
    value)."""
    return str(f.metadata["option"] or "--" + f.name.replace("_", "-"))


def docs_markdown() -> str:
    """Returns the settings reference (docs/configuration.md) as Markdown.

    One table per section, with each setting's name, TOML type, default, command-line
    option, allowed values, meaning and the reason for its default.
    """
    defaults = Config()
    out = [
        "# Configuration",
        "",
        "<!-- Generated by kasagi.config.docs_markdown(); edit python/kasagi/config.py. -->",
        "",
        "Every setting of a Kasagi server is a field of `kasagi.Config`. The same names work",
        "as keyword arguments of `kasagi.Server(...)`, as keys of a TOML file",
        "(`kasagi serve --config kasagi.toml`), and as `kasagi serve` options (`tick_rate` is",
        "`--tick-rate`). Precedence: defaults < TOML file < command line.",
        "",
        "```toml",
        "# kasagi.toml",
        "port = 9000",
        "tick_rate = 30",
        'writable_paths = ["/players/$self", "/board/*"]',
        "```",
        "",
        "`kasagi serve` listens on `0.0.0.0` unless told otherwise, and `kasagi.Server` on a",
        "free port (`port = 0`); all other defaults are the same everywhere.",
    ]
    section = None
    for f in dataclasses.fields(Config):
        meta = f.metadata
        if meta["section"] != section:
            section = meta["section"]
            out += [
                "",
                f"## {section}",
                "",
                "| Setting | Type | Default | Allowed | Meaning | Why this default |",
                "|---|---|---|---|---|---|",
            ]
        kind = _KINDS[f.name]
        toml_type = {"int": "integer", "float": "float", "str": "string", "bool": "boolean"}.get(
            kind, "array of strings"
        )
        allowed = (
            ", ".join(f"`{c}`" for c in meta["choices"])
            if meta["choices"]
            else (_range_text(f) if kind in ("int", "float") else "")
        )
        default = json.dumps(defaults.to_dict()[f.name], ensure_ascii=False)
        cells = [
            f"`{f.name}`<br>`{option_name(f)}`",
            toml_type,
            f"`{default}`",
            allowed,
            meta["doc"],
            meta["why"],
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(out) + "\n"
