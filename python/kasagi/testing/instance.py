"""``kasagi serve`` as a subprocess on a loopback port: started, waited for (``/healthz``),
killed, paused, resumed and restarted on the same port.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any

from kasagi.testing.metrics import metric_value
from kasagi.testing.process import ManagedProcess, free_port, listens_on

__all__ = ["KasagiInstance", "child_env"]

_PORT_ATTEMPTS = 3  # first starts on a port taken meanwhile


def child_env() -> dict[str, str]:
    """The environment for a child Python process: it imports the same kasagi package as
    this one (an installed one, or a source tree on PYTHONPATH)."""
    import kasagi

    env = dict(os.environ)
    parent = str(Path(kasagi.__file__).absolute().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env


class KasagiInstance(ManagedProcess):
    """``python -m kasagi serve --host 127.0.0.1 --port PORT *args`` in a process group of
    its own, with its log in a file. :meth:`start` returns once ``/healthz`` answers 200.

    Args:
        *args: more ``kasagi serve`` options, passed through (``"--tick-rate", "30"``,
            ``*redis.kasagi_args()``).
        port: the port (default: a free one, and another one if something else takes it
            before the first start binds it); kept across restarts.
        log_path: where stdout and stderr go (default: a temporary file, removed when the
            object is collected or the interpreter exits).
        name: a name for messages and logs.
        python: the interpreter that runs it.

    Example::

        with KasagiInstance("--tick-rate", "20") as instance:
            client.connect(instance.url)
            instance.kill(); instance.restart()
    """

    def __init__(
        self,
        *args: str,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        name: str = "kasagi",
        python: str = sys.executable,
    ) -> None:
        self.port = port or free_port()
        self._may_move = port is None  # until the first start succeeds
        if log_path is None:
            fd, temp = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
            os.close(fd)
            log_path = temp
            weakref.finalize(self, Path(temp).unlink, missing_ok=True)
        argv = [python, "-m", "kasagi", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__([*argv, *args], log_path, name=name, env=child_env())

    def start(self) -> KasagiInstance:
        """Starts the server and waits for ``/healthz``; returns ``self``.

        A port picked here can be taken by another process (a test suite running beside
        this one) between the pick and the server's bind: the first start then tries again
        on fresh ports, a few times. A port that was given, or has served once, is kept.

        Raises:
            RuntimeError: as :meth:`ManagedProcess.start`.
        """
        for attempt in range(_PORT_ATTEMPTS):
            try:
                super().start()
                break
            except RuntimeError as e:
                # the message ends with the log's tail: what follows this run's start line
                last_run = str(e).rpartition("\n--- ")[2]
                taken = "Address already in use" in last_run and not self.running
                if not (self._may_move and taken) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                self._use_port(free_port())
        self._may_move = False
        return self

    def _use_port(self, port: int) -> None:
        self.port = port
        self.argv[self.argv.index("--port") + 1] = str(port)

    @property
    def url(self) -> str:
        """The WebSocket URL, ``ws://127.0.0.1:PORT/sync``."""
        return f"ws://127.0.0.1:{self.port}/sync"

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def healthz(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """``GET /healthz`` as a dict when it answers 200, else None (draining, down,
        paused)."""
        try:
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=timeout) as response:
                return dict(json.loads(response.read())) if response.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def metric(self, name: str, timeout: float = 5.0) -> float:
        """One sample of ``GET /metrics`` (see :func:`metric_value`).

        Raises:
            KeyError: no such sample. OSError: the instance does not answer.
        """
        with urllib.request.urlopen(self.http_url + "/metrics", timeout=timeout) as response:
            return metric_value(response.read().decode(), name)

    def ready(self) -> bool:
        """True once this process listens on its port and ``/healthz`` answers 200."""
        # /healthz first: the /proc tables are read only once something answers
        return (
            self.pid is not None and self.healthz() is not None and listens_on(self.pid, self.port)
        )

    def identity(self) -> str:
        """The ``--port`` option in the command line."""
        return f"--port {self.port}"

    def terminate(self, timeout: float = 15.0) -> tuple[int | None, str]:
        """SIGTERM (a graceful drain), waits; returns (exit status, the whole log)."""
        return self.stop(timeout), self.log_text()
