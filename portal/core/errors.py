"""The one exception the management layer raises for bad input."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input for a management operation (CLI or console); the message is one line for a human."""


def printable(text: str) -> bool:
    """True when `text` holds no control character (they could split a log or a CSV line)."""
    return not any(ord(c) < 32 or ord(c) == 127 for c in text)
