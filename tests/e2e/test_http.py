"""The portal over real HTTP (no browser): request size limits as a server sees them."""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit


def raw_request(url: str, request: bytes) -> int:
    """Send bytes as they are; return the status code of the reply (0 if the connection just closed)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


def test_a_64_kb_query_and_a_2_mb_body_get_a_4xx(portal):
    host = urlsplit(portal.url).netloc.encode()
    status = raw_request(portal.url, b"GET /?a=" + b"x" * 65536 + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert 400 <= status < 500
    status = raw_request(portal.url, b"GET /?a=" + b"x" * 8000 + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert status == 414
    body = b"gender=" + b"x" * 2_000_000
    status = raw_request(portal.url, b"POST /register HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: "
                         b"application/x-www-form-urlencoded\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
    assert status == 413
    # The server is still there for the next citizen.
    conn = http.client.HTTPConnection(urlsplit(portal.url).hostname, urlsplit(portal.url).port, timeout=5)
    conn.request("GET", "/terms")
    assert conn.getresponse().status == 200
