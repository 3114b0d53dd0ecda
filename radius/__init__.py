"""Conecta's RADIUS daemon: protocol edge (server.py), decisions (handlers.py), replies (attributes.py),
accounting log and applier (wal.py, writer.py, applier.py, live.py), processes (crew.py, main.py).

It imports portal.core and policies, never the web portal or the CLI.
"""
