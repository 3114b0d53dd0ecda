"""Issue 11's checks of whole `conecta` processes: requests that carry control characters on every
surface, second instances, and commands run briefly (killed, with their group, if they outlive it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from pyrad import packet
from pyrad.client import Client

from tests.support.services import Service, _dictionary

FORGED = "1999-01-01 00:00:00,000 CRITICAL conecta.radius: forged"
# Control characters a log line must never carry raw: C0, DEL, C1 (NEL ends a line for many readers).
CONTROLS = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029) if c != 0x0A]


def http(service: Service, raw: bytes) -> bytes:
    """One raw HTTP/1.1 exchange with the portal (bytes as given: no client library cleans them)."""
    with socket.create_connection(("127.0.0.1", service.portal_port), timeout=10) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def plant_http(service: Service) -> list[bytes]:
    """Control characters in a path (percent-encoded), in headers (HTAB and latin-1 C1 bytes, which
    HTTP lets through) and in form fields; returns the first line of each answer."""
    path = b"/register%0D%0A" + FORGED.replace(" ", "%20").encode() + b"%1B%5B31m%C2%85"
    form = b"username=ana%0D%0A" + FORGED.replace(" ", "+").encode() + b"&pin=%0A1234%00%1B"
    requests = [
        b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\t\x85\x9b31m"
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: x\x85" + FORGED.encode()
        + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + str(len(form)).encode()
        + b"\r\nConnection: close\r\n\r\n" + form,
        b"GET /?login_url=http://x%0D%0A" + FORGED.replace(" ", "%20").encode() + b"&nas=ap%0A%1B"
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    ]
    return [http(service, raw).split(b"\r\n", 1)[0] for raw in requests]


def plant_radius(service: Service, secret: str) -> str:
    """Control characters in RADIUS attributes: a session whose Acct-Session-Id carries a forged line,
    stopped, then an Interim-Update for it (logged: not charged after the Stop); the session id."""
    client = Client(server="127.0.0.1", authport=service.auth_port, acctport=service.acct_port,
                    secret=secret.encode(), dict=_dictionary(), retries=3, timeout=2)
    sid = "s\r\n" + FORGED[:40] + "\x1b\x85"
    req = client.CreateAuthPacket(code=packet.AccessRequest, User_Name="ana\r\n" + FORGED)
    req["User-Password"] = req.PwCrypt("x\n")
    req["Calling-Station-Id"] = "AA-BB\r\n" + FORGED
    req.add_message_authenticator()
    assert client.SendPacket(req).code == packet.AccessReject
    for status, seconds in (("Start", 0), ("Stop", 60), ("Interim-Update", 120)):
        acct = client.CreateAcctPacket(User_Name="ana\x1b[2J")
        acct["Acct-Status-Type"], acct["Acct-Session-Id"], acct["Acct-Session-Time"] = status, sid, seconds
        acct["Acct-Input-Octets"] = seconds * 1000
        assert client.SendPacket(acct).code == packet.AccountingResponse
    return sid


def run_briefly(argv: list[str], env: dict[str, str], timeout: float,
                cwd: Path | None = None) -> tuple[int | None, str]:
    """(exit status, output) of a command given `timeout` seconds; None when it was still running
    (then it is killed, with its process group)."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The processes of `pids` still alive (not zombies) after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)
