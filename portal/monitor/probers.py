"""The probes themselves, on asyncio: ICMP echo (icmplib, one socket per address family for every
NAS), a TCP connect, an HTTP request. Each goes to the NAS's own address and nowhere else."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from icmplib import ICMPRequest, ICMPv4Socket, ICMPv6Socket
from icmplib.exceptions import ICMPLibError, SocketPermissionError

from portal.core.probes import ProbeSpec

log = logging.getLogger("conecta.monitor")
ECHO_REPLY = {4: 0, 6: 129}
RCVBUF = 4 * 1024 * 1024


class ProbeError(Exception):
    """The NAS did not answer; the message says how (no secrets, no personal data)."""


class Pinger:
    """ICMP echo to many addresses over one socket per family: the event loop reads replies as they
    come and matches them by source, identifier and sequence. A raw socket as root (or with
    CAP_NET_RAW), else the kernel's unprivileged ICMP sockets (net.ipv4.ping_group_range)."""

    def __init__(self) -> None:
        self.sockets: dict[int, ICMPv4Socket | ICMPv6Socket] = {}
        self.waiting: dict[tuple[str, int], asyncio.Future] = {}
        self.ident = os.getpid() & 0xFFFF
        self.seq = 0

    def _socket(self, version: int) -> ICMPv4Socket | ICMPv6Socket:
        sock = self.sockets.get(version)
        if sock is None:
            kind = ICMPv4Socket if version == 4 else ICMPv6Socket
            try:
                sock = kind(privileged=True)
            except SocketPermissionError:
                sock = kind(privileged=False)      # raises again when neither is allowed
            _large_buffer(sock.sock)
            asyncio.get_running_loop().add_reader(sock.sock.fileno(), self._readable, sock, version)
            self.sockets[version] = sock
        return sock

    def _readable(self, sock: ICMPv4Socket | ICMPv6Socket, version: int) -> None:
        try:
            reply = sock.receive(None, timeout=1)     # a datagram waits: returns at once
        except ICMPLibError:
            return
        if reply.type != ECHO_REPLY[version] or (sock.is_privileged and reply.id != self.ident):
            return
        future = self.waiting.get((str(ipaddress.ip_address(reply.source.split("%")[0])), reply.sequence))
        if future is not None and not future.done():
            future.set_result(None)

    async def ping(self, address: str, timeout: float) -> None:
        """One echo request; return when the reply comes, ProbeError when it does not in time."""
        try:
            sock = self._socket(ipaddress.ip_address(address).version)
        except ICMPLibError as exc:
            raise ProbeError(f"no ICMP socket ({type(exc).__name__}: run as root or set "
                              f"net.ipv4.ping_group_range)") from None
        self.seq = (self.seq + 1) & 0xFFFF
        key = (address, self.seq)
        self.waiting[key] = future = asyncio.get_running_loop().create_future()
        try:
            sock.send(ICMPRequest(address, self.ident, self.seq, payload_size=16))
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ProbeError("no echo reply") from None
        except ICMPLibError as exc:
            raise ProbeError(f"echo not sent: {str(exc)[:80]}") from None
        finally:
            self.waiting.pop(key, None)

    def close(self) -> None:
        """Close the sockets."""
        for sock in self.sockets.values():
            try:
                asyncio.get_running_loop().remove_reader(sock.sock.fileno())
            except RuntimeError:
                pass
            sock.close()
        self.sockets.clear()


def _large_buffer(sock: socket.socket) -> None:
    """Room for the replies of a few thousand probes at once (a raw socket also sees other ICMP)."""
    try:   # as root FORCE passes net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)


async def tcp_connect(address: str, port: int, timeout: float) -> None:
    """A TCP handshake with the NAS on `port`, closed at once."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except TimeoutError:
        raise ProbeError(f"no answer on tcp port {port}") from None
    except ConnectionRefusedError:
        raise ProbeError(f"tcp port {port} refused") from None
    except OSError as exc:
        raise ProbeError(f"tcp port {port}: {os.strerror(exc.errno) if exc.errno else type(exc).__name__}") from None
    writer.close()


class HttpProber:
    """GET a URL, connecting only to the NAS's address: a host name is resolved first and the request
    goes out only when it resolves to the NAS (Host and SNI keep the name). Any HTTP answer below 500
    counts; certificates are not checked (access points use self-signed ones)."""

    def __init__(self) -> None:
        import httpx  # only a monitor with http probes pays for it
        self.httpx = httpx
        self.client = httpx.AsyncClient(verify=False, follow_redirects=False, trust_env=False,  # noqa: S501 - self-signed APs; a probe sends nothing secret
                                        limits=httpx.Limits(max_keepalive_connections=0))

    async def get(self, address: str, url: str, timeout: float) -> None:
        """One request; ProbeError when the name does not lead to the NAS, on timeout or a 5xx."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        await _check_resolves_to(host, parts.port or (443 if parts.scheme == "https" else 80), address, timeout)
        literal = f"[{address}]" if ":" in address else address
        netloc = literal + (f":{parts.port}" if parts.port else "")
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {"Host": parts.netloc.rpartition("@")[2], "User-Agent": "conecta-monitor"}
        extensions = {"sni_hostname": host} if parts.scheme == "https" and host != address else {}
        try:
            response = await self.client.get(pinned, headers=headers, timeout=timeout, extensions=extensions)
        except self.httpx.TimeoutException:
            raise ProbeError("no http answer in time") from None
        except self.httpx.HTTPError as exc:
            raise ProbeError(f"http: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise ProbeError(f"http status {response.status_code}")

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


async def _check_resolves_to(host: str, port: int, address: str, timeout: float) -> None:
    try:
        if str(ipaddress.ip_address(host)) == address:
            return
        raise ProbeError(f"{host} is not the NAS's address")
    except ValueError:
        pass
    try:
        found = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(host, port), timeout)
    except (OSError, TimeoutError):
        raise ProbeError("the probe's host name does not resolve") from None
    if address not in {str(ipaddress.ip_address(info[4][0].split("%")[0])) for info in found}:
        raise ProbeError("the probe's host name does not resolve to the NAS; nothing sent")


class Prober:
    """Runs one probe of a NAS and times it."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self.pinger = Pinger()
        self.http: HttpProber | None = None

    async def probe(self, address: str, spec: ProbeSpec) -> float:
        """Probe `address` as `spec` says; the round trip in milliseconds, or ProbeError."""
        start = self.clock()
        if spec.kind == "icmp":
            await self.pinger.ping(address, self.timeout)
        elif spec.kind == "tcp":
            await tcp_connect(address, spec.port, self.timeout)
        elif spec.kind == "http":
            self.http = self.http or HttpProber()
            await asyncio.wait_for(self.http.get(address, spec.url, self.timeout), self.timeout * 2)
        else:
            raise ProbeError(f"no probe of kind {spec.kind}")
        return (self.clock() - start) * 1000

    async def close(self) -> None:
        """Close sockets and the HTTP pool."""
        self.pinger.close()
        if self.http is not None:
            await self.http.close()
