"""A well-behaved client for the abuse tests, in a process of its own so that the attacks
running in the test process cannot slow it down through the GIL: what it measures is the
server.

Usage: python bystander.py URL SOURCE_ADDRESS [TOKEN]

Connects from SOURCE_ADDRESS (another loopback address than the attackers', so per-address
limits do not count it with them), joins room "calm" and prints "ready". Then, for every line
N read from stdin, it makes N round trips (a STATE_UPDATE with a requestId, until its ACK),
20 ms apart, and prints their latencies in milliseconds as one JSON list.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.parse

from websockets.sync.client import connect


def main() -> None:
    url, source = sys.argv[1], sys.argv[2]
    headers = {"Authorization": f"Bearer {sys.argv[3]}"} if len(sys.argv) > 3 else None
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), source_address=(source, 0))
    with connect(url, sock=sock, subprotocols=["kasagi.v1.json"],  # type: ignore[list-item]
                 additional_headers=headers, max_size=None) as ws:
        ws.send(json.dumps({"type": "JOIN_ROOM", "roomId": "calm"}))
        while (joined := json.loads(ws.recv()))["type"] != "FULL_STATE":
            pass
        me = joined["payload"]["playerId"]
        print("ready", flush=True)
        request_id = 0
        for line in sys.stdin:
            latencies = []
            for _ in range(int(line)):
                request_id += 1
                started = time.perf_counter()
                ws.send(json.dumps({"type": "STATE_UPDATE", "roomId": "calm",
                                    "requestId": request_id,
                                    "payload": {"players": {me: {"n": request_id}}}}))
                while True:
                    msg = json.loads(ws.recv(timeout=30))
                    if msg.get("requestId") == request_id:
                        # Refused is not served: the round trip must end in its ACK.
                        assert msg["type"] == "ACK", msg
                        break
                latencies.append((time.perf_counter() - started) * 1000)
                time.sleep(0.02)
            print(json.dumps(latencies), flush=True)


if __name__ == "__main__":
    main()
