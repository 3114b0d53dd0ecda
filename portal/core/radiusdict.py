"""The RADIUS dictionary (standard attributes and the vendors Conecta speaks), parsed once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pyrad.dictionary import Dictionary

DICTIONARY = Path(__file__).resolve().parent / "dictionary" / "dictionary"


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The parsed dictionary, once per process (and shared by forked workers)."""
    return Dictionary(str(DICTIONARY))
