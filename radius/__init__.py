"""Conecta's RADIUS server: protocol edge (server.py), decisions (handlers.py), replies (attributes.py)."""

from pathlib import Path

DICTIONARY = Path(__file__).resolve().parent / "dictionary" / "dictionary"
