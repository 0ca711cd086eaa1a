"""``static_dir``: files served over plain HTTP next to ``/sync``, over real sockets.

Requests are written by hand on raw sockets, so that targets such as ``/../x`` reach the
server exactly as written (HTTP libraries and browsers normalize them away).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SECRET = b"the secret outside the static directory"


def request(port: int, raw: bytes) -> bytes:
    """Sends ``raw`` and returns everything the server writes until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def get(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Sends one request for ``target`` and returns (status, headers, body)."""
    raw = f"{method} {target} HTTP/1.1\r\nHost: kasagi.test\r\nConnection: close\r\n\r\n"
    head, _, body = request(port, raw.encode()).partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (ln.split(":", 1) for ln in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A static directory with pages, a nested index, a dotfile, files named like the
    endpoints, and symlinks pointing inside and outside it; a secret lies beside it."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "index.html").write_bytes(SECRET)
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>board</h1>\n")
    (root / "app.js").write_text("export const answer = 42;\n")
    (root / "style.css").write_text("body { margin: 0 }\n")
    (root / "logo.PNG").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "data.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "index.html").write_text("<p>nested</p>\n")
    (root / ".env").write_bytes(SECRET)
    for endpoint in ("healthz", "metrics", "sync"):
        (root / endpoint).write_text("a file that must not shadow the endpoint\n")
    (root / "inside-link.js").symlink_to("app.js")
    (root / "outside-link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path / "outside")
    return root


@pytest.fixture
def port(server_factory: Callable[..., Any], site: Path) -> int:
    return int(server_factory(static_dir=str(site)).port)


@pytest.mark.parametrize(
    ("target", "content_type", "body"),
    [
        ("/", "text/html; charset=utf-8", b"<h1>board</h1>\n"),
        ("/index.html", "text/html; charset=utf-8", b"<h1>board</h1>\n"),
        ("/index.html?v=3", "text/html; charset=utf-8", b"<h1>board</h1>\n"),
        ("/app.js", "text/javascript; charset=utf-8", b"export const answer = 42;\n"),
        ("/%61pp.js", "text/javascript; charset=utf-8", b"export const answer = 42;\n"),
        ("/style.css", "text/css; charset=utf-8", b"body { margin: 0 }\n"),
        ("/logo.PNG", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("/data.bin", "application/octet-stream", bytes(range(256))),
        ("/sub/", "text/html; charset=utf-8", b"<p>nested</p>\n"),
        ("/sub", "text/html; charset=utf-8", b"<p>nested</p>\n"),
        ("//sub//index.html", "text/html; charset=utf-8", b"<p>nested</p>\n"),
        ("/inside-link.js", "text/javascript; charset=utf-8", b"export const answer = 42;\n"),
    ],
)
def test_files_are_served_with_their_content_type(
    port: int, target: str, content_type: str, body: bytes
) -> None:
    status, headers, received = get(port, target)
    assert (status, headers["content-type"], received) == (200, content_type, body)
    assert headers["content-length"] == str(len(body))


def test_head_sends_the_headers_of_get_without_the_body(port: int) -> None:
    # Two requests on one connection: if HEAD sent a body, the second answer would not
    # start right after the first one's headers.
    raw = (
        b"HEAD /app.js HTTP/1.1\r\nHost: kasagi.test\r\n\r\n"
        b"GET /style.css HTTP/1.1\r\nHost: kasagi.test\r\nConnection: close\r\n\r\n"
    )
    first, _, rest = request(port, raw).partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 26" in first
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"\r\n\r\nbody { margin: 0 }\n")


@pytest.mark.parametrize(
    "target",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2e/secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/sub%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "/sub\\..\\..\\secret.txt",
        "/./index.html",
        "/index.html%00.png",
        "/%zz",
        "/%2",
        "relative/index.html",
    ],
)
def test_traversal_and_malformed_targets_are_refused(port: int, target: str) -> None:
    status, _, body = get(port, target)
    assert status == 400
    assert SECRET not in body


@pytest.mark.parametrize(
    "target",
    [
        "/missing.html",
        "/sub/missing/",
        "/index.html/more",
        "/outside-link.txt",  # a symlink out of the directory
        "/outside-dir/",  # a symlinked directory out of it
        "/outside-dir/index.html",
        "/.env",  # hidden names are never served
        "/%2eenv",
        "/sub/.hidden/index.html",
    ],
)
def test_missing_hidden_and_outside_files_are_not_found(port: int, target: str) -> None:
    status, _, body = get(port, target)
    assert status == 404
    assert SECRET not in body


def test_endpoints_keep_priority_over_files(port: int) -> None:
    status, headers, body = get(port, "/healthz")
    assert status == 200 and headers["content-type"] == "application/json"
    assert b'"status":"ok"' in body
    status, headers, _ = get(port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    status, _, body = get(port, "/sync")
    assert status == 404 and b"must not shadow" not in body
    assert get(port, "/healthz", method="HEAD")[0] == 200


def test_other_methods_are_refused(port: int) -> None:
    assert get(port, "/index.html", method="POST")[0] == 405
    assert get(port, "/index.html", method="DELETE")[0] == 405


def test_without_static_dir_no_file_is_served(server_factory: Callable[..., Any]) -> None:
    port = server_factory().port
    assert get(port, "/")[0] == 404
    assert get(port, "/index.html")[0] == 404


def test_a_missing_directory_is_refused_at_start(tmp_path: Path) -> None:
    import kasagi

    with pytest.raises(ValueError, match="static_dir: .* is not a directory"):
        kasagi.Server(static_dir=str(tmp_path / "nowhere"), log_level="off").start()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        kasagi.Server(static_dir=str(tmp_path / "file"), log_level="off").start()


def test_kasagi_serve_static(kasagi_instances: Callable[..., Any], site: Path) -> None:
    (serve,) = kasagi_instances("--static", str(site))
    status, _, body = get(serve.port, "/")
    assert (status, body) == (200, b"<h1>board</h1>\n")
    code, log = serve.terminate()
    assert code == 0, log
    assert f"serving files from {os.path.realpath(site)}" in log
