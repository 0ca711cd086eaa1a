"""Reading one sample out of ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

__all__ = ["metric_value"]


def metric_value(text: str, name: str) -> float:
    """The value of the sample ``name`` in ``text``, labels included as written, e.g.
    ``"kasagi_connections"`` or ``'kasagi_refusals_total{reason="tls"}'``.

    Raises:
        KeyError: ``text`` has no such sample.
    """
    prefix = name + " "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):].split()[0])
    raise KeyError(name)
