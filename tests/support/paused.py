"""A RADIUS server that reads nothing until told: datagrams wait in its socket buffers, so that one
read_batch() takes them together, as after a burst or when a NAS's retry sits beside the original."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from radius.packets import ACCT_CODES, AUTH_CODES
from radius.server import RadiusServer


@contextlib.contextmanager
def paused_server(settings, policies, db_factory, r, clock) -> Iterator[RadiusServer]:  # noqa: ANN001
    """A real RadiusServer on ephemeral ports whose loop never runs; shut down cleanly afterwards."""
    server = RadiusServer(settings, policies, db_factory, r, clock=clock)
    try:
        yield server
    finally:
        server.writer.start()
        if server.applier is not None:
            server.applier.start()
        server.shutdown()


def read_batch(server: RadiusServer, kind: str) -> None:
    """One wake-up of the server's loop on the `kind` ("auth" or "acct") socket: every waiting datagram."""
    if kind == "auth":
        server._serve_socket(server.auth_sock, AUTH_CODES)
    else:
        server._serve_socket(server.acct_sock, ACCT_CODES)
