"""Logging setup for every Conecta process: one line per event, no personal data by construction.

Every logger of every process goes through OneLine — Conecta's own, Flask's (the portal), gunicorn's
error and access logs (portal/web/gunicorn_logging.py) — so no input can start a line of its own.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# gunicorn's access log, when turned on (GUNICORN_CMD_ARGS="--access-logfile -"): no client address
# and no query string (redirects carry the client's MAC), the path only.
ACCESS_FORMAT = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
# C0 and C1 controls, DEL and the Unicode line and paragraph separators: each shown as an escape.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape(text: str) -> str:
    """`text` with every control character written as an escape sequence."""
    return text.translate(_ESCAPES)


class OneLine(logging.Formatter):
    """Escapes newlines and control characters so a log line cannot be forged by input."""

    def format(self, record: logging.LogRecord) -> str:
        """Format, then neutralise anything that could start a fake line or move the terminal."""
        return escape(super().format(record))


def setup(level: str = "INFO") -> None:
    """Log to stderr with timestamps."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def setup_unless_done(level: str = "INFO") -> None:
    """setup(), in a process that has no logging yet (one started by `spawn`, or by gunicorn)."""
    if not logging.getLogger().handlers:
        setup(level)
