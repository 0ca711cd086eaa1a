"""One child process the tests own: started in a process group of its own, its output in a
log file, and killed, paused, resumed, restarted or stopped on request.

Every process started here (unless ``detached``) is remembered until it is stopped, and
:func:`stop_all` stops whatever is left, at the latest when the interpreter exits (atexit):
a failing test or a forgotten ``stop()`` never leaves a process behind. A process can also
be re-attached by pid (:meth:`ManagedProcess.attach`), which is how ``kasagi redis status``
finds the servers an earlier ``kasagi redis up`` started.

Signals go to the whole process group (the pid is the group id: ``start_new_session``), so
children the process forks, such as redis-server's background save, get them too.
"""

from __future__ import annotations

import atexit
import functools
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

__all__ = [
    "ManagedProcess",
    "free_port",
    "listens_on",
    "pid_alive",
    "port_free",
    "sanitizer_problems",
    "stop_all",
    "wait_until",
]

T = TypeVar("T")

#: Seconds between SIGTERM and SIGKILL when stopping: long enough for kasagi's drain and
#: redis-server's shutdown save on a busy 2-core machine.
STOP_TIMEOUT = 10.0

_live: set[ManagedProcess] = set()
_live_lock = threading.Lock()


_handed_out: set[int] = set()
_random = random.SystemRandom()


@functools.cache
def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port that is free on ``host`` right now, for a server about to start.

    Not the kernel's choice (``bind(0)``): that comes from the ephemeral range, from which
    the kernel also picks the local port of every outgoing connection, so one of the
    test's own clients or Redis's replication links could take it before the server binds
    it ("Address already in use"). Ports below that range are never picked that way; one
    is drawn at random, checked, and not handed out twice by this process.
    """
    low, _ = _ephemeral_range()
    if low > 11_000:
        for _ in range(200):
            port = _random.randrange(10_000, low)
            if port not in _handed_out and port_free(port, host):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:  # no room below the range: the kernel's choice after all
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listens_on(pid: int, port: int) -> bool:
    """True if process ``pid`` itself holds a socket listening on TCP ``port`` (so that a
    server answering there is this one, not another process that took the port)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


def _all_threads_stopped(pid: int) -> bool:
    """True when no thread of ``pid`` runs: all stopped (T), or the process is gone."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        states = [(t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return all(state in ("T", "t", "Z", "X") for state in states)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Returns True if ``port`` can be bound on ``host`` right now."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until(
    predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Calls ``predicate`` until it returns a true value, and returns that value.

    Raises:
        TimeoutError: still false after ``timeout`` seconds (the message names ``what``).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Returns True if ``pid`` is a live process (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def stop_all() -> None:
    """Kills every process started here and not yet stopped (not the detached ones)."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        proc.kill()


atexit.register(stop_all)


class ManagedProcess:
    """A child process with a log file, controlled through its process group.

    Args:
        argv: the command.
        log_path: where stdout and stderr go (appended to: restarts add to the same file,
            after a header line).
        name: a short name for messages (default: the program's name).
        env: the environment (default: this process's).
        cwd: the working directory.
        detached: outlive this interpreter: not stopped by :func:`stop_all` (for
            ``kasagi redis up``).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Subclasses tell when
    the process is ready to serve by overriding :meth:`ready`.
    """

    #: Seconds :meth:`start` waits for :meth:`ready`.
    start_timeout = 20.0

    def __init__(
        self,
        argv: Sequence[str],
        log_path: str | os.PathLike[str],
        *,
        name: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        detached: bool = False,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.name = name or Path(self.argv[0]).name
        self.env = env
        self.cwd = cwd
        self.detached = detached
        self.pid: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._paused = False

    # ------------------------------------------------------------------------------------
    # Readiness (for subclasses)

    def ready(self) -> bool:
        """Returns True once the process serves; the default: as soon as it runs."""
        return True

    def identity(self) -> str | None:
        """A string the process's command line must contain for :meth:`attach` to trust a
        pid (pids are reused); None accepts any live pid."""
        return None

    # ------------------------------------------------------------------------------------
    # Lifecycle

    def start(self) -> ManagedProcess:
        """Starts the process and waits until :meth:`ready`; returns ``self``.

        Raises:
            RuntimeError: it exited first, or was not ready within ``start_timeout``
                seconds (it is killed then); the message has the end of its log.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # a process group of its own: signals reach its children
            )
        self.pid = self._popen.pid
        self._paused = False
        if not self.detached:
            with _live_lock:
                _live.add(self)
        try:
            wait_until(self._ready_or_exited, self.start_timeout, f"{self.name} ready")
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"{self.name} did not become ready\n{self.log_tail()}") from None
        if not self.running:
            code = self.wait(1.0)
            raise RuntimeError(f"{self.name} exited with {code} on start\n{self.log_tail()}")
        return self

    def _ready_or_exited(self) -> bool:
        return not self.running or self.ready()

    def attach(self, pid: int) -> bool:
        """Adopts a process started earlier (by another interpreter) if ``pid`` is alive
        and matches :meth:`identity`; returns whether it did."""
        if not pid_alive(pid):
            return False
        marker = self.identity()
        if marker is not None:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                return False
            if marker.encode() not in cmdline:
                return False
        self.pid = pid
        return True

    @property
    def running(self) -> bool:
        """True while the process is alive (also while paused)."""
        if self._popen is not None:
            return self._popen.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused and self.running

    def _signal(self, signum: int) -> None:
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:  # the group is gone: exited, or its pid was not a group
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Waits for the process to exit; returns its exit status (negative: the signal),
        or None for an attached process, whose status is not ours to know.

        Raises:
            subprocess.TimeoutExpired: (for a process started here) still running.
            TimeoutError: (for an attached process) still running.
        """
        if self._popen is not None:
            code = self._popen.wait(timeout)
            self._forget()
            return code
        if self.pid is not None:
            wait_until(self._reaped, timeout or STOP_TIMEOUT, f"{self.name} exit")
        self._forget()
        return None

    def _reaped(self) -> bool:
        """For an attached process: True once it is dead; reaps it if it is our child
        (started by this interpreter through another object), so it leaves no zombie."""
        assert self.pid is not None
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass  # not our child: its parent (or init) reaps it
        return not self.running

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def kill(self) -> int | None:
        """SIGKILL (the whole group), then waits; returns the exit status. Idempotent."""
        if self.running:
            self._signal(signal.SIGKILL)
        return self.wait(STOP_TIMEOUT) if self.pid is not None else None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status.
        Resumes a paused process first so that it can handle SIGTERM. Idempotent."""
        if not self.running:
            return self.wait(timeout) if self.pid is not None else None
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except (subprocess.TimeoutExpired, TimeoutError):
            return self.kill()

    def pause(self) -> None:
        """SIGSTOP: the process (and its group) stops running; connections stay open, so
        peers see a hung process, not a dead one. Returns once every thread of the process
        has stopped (the signal reaches each thread on its own, a moment later)."""
        self._signal(signal.SIGSTOP)
        self._paused = True
        if self.pid is not None:
            wait_until(lambda: _all_threads_stopped(self.pid), 5.0,  # type: ignore[arg-type]
                       f"{self.name} stopped")

    def resume(self) -> None:
        """SIGCONT: undoes :meth:`pause`."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def restart(self) -> ManagedProcess:
        """Stops the process (SIGTERM, then SIGKILL) if it runs, and starts it again with the
        same command; returns ``self`` once ready."""
        self.stop()
        return self.start()

    def send_signal(self, signum: int) -> None:
        """Sends ``signum`` to the process's group."""
        self._signal(signum)

    # ------------------------------------------------------------------------------------
    # Log

    def log_text(self) -> str:
        """Everything the process wrote (all its runs), or "" if nothing yet."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the log, labelled with its path."""
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- {self.log_path} (last {lines} lines):\n{tail}"

    # ------------------------------------------------------------------------------------
    # Context manager

    def __enter__(self) -> ManagedProcess:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name} pid={self.pid} {state}>"


#: What a sanitizer's report has in its lines: "ERROR: AddressSanitizer: ...", "WARNING:
#: ThreadSanitizer: data race ...", "SUMMARY: UndefinedBehaviorSanitizer: ...", and UBSan's
#: "file.cpp:12:3: runtime error: ...".
REPORT_MARKERS = ("Sanitizer", "runtime error:")


def sanitizer_problems(process: ManagedProcess, status: int | None = None) -> list[str]:
    """Returns what says that a sanitizer caught something in ``process``, one message per
    finding; empty when there is nothing.

    Findings: report lines in its log (all its runs; the first 5 are quoted), and
    ``status``, the exit status of a stop by SIGTERM, when it is not 0 (a sanitizer exits
    with its own code, 66 for TSan in scripts/test.sh, or aborts; -9: SIGTERM did not stop
    it). Pass ``status=None`` when the process was not stopped that way.
    """
    problems = []
    if status not in (None, 0):
        problems.append(f"{process.name} exited with {status} after SIGTERM, not 0")
    reports = [line for line in process.log_text().splitlines()
               if any(marker in line for marker in REPORT_MARKERS)]
    if reports:
        quoted = "\n  ".join(reports[:5])
        problems.append(f"{process.name}: {len(reports)} sanitizer report line(s) in "
                        f"{process.log_path}:\n  {quoted}")
    return problems
