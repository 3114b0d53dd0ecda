"""Conecta's RADIUS server: protocol edge (server.py), decisions (handlers.py), replies (attributes.py)."""

from functools import lru_cache
from pathlib import Path

from pyrad.dictionary import Dictionary

DICTIONARY = Path(__file__).resolve().parent / "dictionary" / "dictionary"


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The parsed RADIUS dictionary, once per process (and shared by forked workers)."""
    return Dictionary(str(DICTIONARY))
