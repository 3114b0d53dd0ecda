"""Logging setup for every Conecta process: one line per event, no personal data by construction."""

from __future__ import annotations

import logging
import sys


class OneLine(logging.Formatter):
    """Escapes newlines and control characters so a log line cannot be forged by input."""

    def format(self, record: logging.LogRecord) -> str:
        """Format, then neutralise anything that could start a fake line."""
        text = super().format(record)
        return text.replace("\r", "\\r").replace("\n", "\\n")


def setup(level: str = "INFO") -> None:
    """Log to stderr with timestamps."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
