"""The trace file format: MessagePack maps written one after another (no framing needed: a
MessagePack stream is self-delimiting), appended as they happen, so a crash loses at most
the records not yet flushed and a live recording can be read while it grows.

Every file starts with a ``header`` record: ``{"kind": "header", "format": "kasagi-trace",
"formatVersion": 1, "source": "server" | "client", "t": ...}`` plus ``instance`` (server) or
``client``, ``encoding`` and ``url`` (client). The other kinds (docs/tracing.md):

- ``state`` (server): a room's document when its recording starts: room, version, tick,
  epoch, t, state.
- ``delta`` (server): one DELTA_UPDATE as it left its room: room, version, baseVersion, tick,
  epoch, t, bytes ``{"json": n, "msgpack": n}``, paths (the JSON Pointers it changes), patch.
- ``recv`` (client): one message received: client, t, bytes (its frame), msg (decoded).
- ``send`` (client): one message sent: client, t, bytes, msg.

``t`` is wall-clock time in seconds since the Unix epoch, so server and client records of
one machine (or of NTP-synchronized machines) can be compared.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from typing import IO, Any

import msgpack  # type: ignore[import-untyped,unused-ignore]

__all__ = ["FORMAT", "FORMAT_VERSION", "TraceWriter", "iter_records"]

FORMAT = "kasagi-trace"
FORMAT_VERSION = 1


class TraceWriter:
    """Appends trace records to a file (or a binary stream), buffered.

    Args:
        target: a path (opened for appending) or a writable binary stream (left open).
        header: the fields of the header record, besides kind, format, formatVersion and t.
    """

    def __init__(self, target: str | os.PathLike[str] | IO[bytes], **header: Any) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._stream: IO[bytes] = open(target, "ab", buffering=64 * 1024)  # noqa: SIM115
            self._owned = True
        else:
            self._stream = target
            self._owned = False
        self._packer = msgpack.Packer(use_bin_type=True)
        self.records = 0
        self.write(kind="header", format=FORMAT, formatVersion=FORMAT_VERSION, **header)

    def write(self, **record: Any) -> None:
        """Appends one record; ``t`` (now) is added when the record has none."""
        record.setdefault("t", time.time())
        self._stream.write(self._packer.pack(record))
        self.records += 1

    def flush(self) -> None:
        """Hands what is buffered to the operating system."""
        self._stream.flush()

    def close(self) -> None:
        """Flushes, and closes the file if this writer opened it. Idempotent."""
        if self._stream.closed:
            return
        self._stream.flush()
        if self._owned:
            self._stream.close()


def iter_records(source: str | os.PathLike[str] | IO[bytes] | bytes) -> Iterator[dict[str, Any]]:
    """Yields the records of a trace file, a binary stream or bytes, in order.

    A record cut short at the end (the writer is still writing, or crashed mid-record) ends
    the iteration quietly: everything before it is intact.

    Raises:
        ValueError: the data is not a trace (a record that is not a map).
    """
    if isinstance(source, bytes):
        stream: IO[bytes] = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        stream = open(source, "rb")  # noqa: SIM115
    else:
        stream = source
    try:
        unpacker = msgpack.Unpacker(stream, raw=False, strict_map_key=False)
        while True:
            try:
                record = unpacker.unpack()
            except msgpack.OutOfData:
                return
            except (ValueError, msgpack.UnpackException) as err:
                raise ValueError(f"not a kasagi trace: {err}") from None
            if not isinstance(record, dict):
                raise ValueError(f"not a kasagi trace: a record is a {type(record).__name__}")
            yield record
    finally:
        if stream is not source:
            stream.close()
