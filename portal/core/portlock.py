"""One Conecta per port on this host: a lock per port, an abstract Unix socket named after it.

SO_REUSEPORT lets the workers of one `conecta radius` share their UDP ports, and would as well let a
second instance take about half of their traffic without a word. The lock is taken before any port
is opened; the kernel frees it when its holder exits, however it exits (no stale lock file), and,
like a port, it belongs to the network namespace. A parent that took the locks for a child (`conecta
run` for its RADIUS process) hands them down as open descriptors: holding one is owning the port.
"""

from __future__ import annotations

import errno
import os
import socket

from portal.core.errors import InputError

ENV = "CONECTA_PORT_LOCKS"     # descriptors a parent hands down: "udp-1812=5,udp-1813=6"


class PortInUseError(InputError):
    """Another Conecta, or another program, has the port."""


def _name(kind: str, port: int) -> str:
    return f"\0conecta-port-{kind}-{port}"


def _inherited(kind: str, port: int) -> socket.socket | None:
    """The lock of this port handed down by the parent, if it really is that lock."""
    for item in os.environ.get(ENV, "").split(","):
        label, _, fd = item.partition("=")
        if label == f"{kind}-{port}" and fd.isdigit():
            try:
                sock = socket.socket(fileno=int(fd))
            except OSError:
                return None
            if sock.family == socket.AF_UNIX and sock.getsockname() in (_name(kind, port), _name(kind, port).encode()):
                return sock
            sock.detach()
    return None


def hold(kind: str, port: int, what: str) -> socket.socket | None:
    """Take the host-wide lock of `port` ("udp" or "tcp") for as long as the socket returned stays open;
    None for port 0 (the kernel picks a free port). PortInUseError names `what` when another Conecta has it."""
    if port == 0:
        return None
    sock = _inherited(kind, port)
    if sock is not None:
        return sock
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(_name(kind, port))
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortInUseError(f"port {port}/{kind} ({what}) is in use by another Conecta on this host: "
                       f"stop it first, or give this one other ports") from None
    return sock


def check_free(kind: str, host: str, port: int, what: str) -> None:
    """Raise PortInUseError when any program is bound to `port` on `host` (checked by binding it briefly)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM) as sock:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as gunicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(f"port {port}/{kind} ({what}) on {host} is in use by another program") from None


def hand_down(locks: dict[str, socket.socket | None]) -> tuple[dict[str, str], tuple[int, ...]]:
    """The environment variable and the descriptors that give a child process these locks."""
    held = {label: sock.fileno() for label, sock in locks.items() if sock is not None}
    return {ENV: ",".join(f"{label}={fd}" for label, fd in held.items())}, tuple(held.values())
