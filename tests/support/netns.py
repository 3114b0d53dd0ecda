"""Test hosts of our own: a network namespace joined to this one by a veth pair, with an address in
198.18.0.0/15 (RFC 2544, for testing) that answers ICMP, and TCP or HTTP when a server is started in it.
Bringing the far end down is a real outage; `ip netns del` removes both ends.

Needs root and `ip` (iproute2); `netns_unavailable()` gives the reason to skip when they are missing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

_COUNTER = itertools.count()
_BLOCK = os.getpid() % 250          # one /24 per test process: concurrent runs do not collide
SERVER = Path(__file__).resolve().parent / "nsserver.py"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


@lru_cache(maxsize=1)
def netns_unavailable() -> str | None:
    """Why test hosts cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    name = f"conecta-probe-{os.getpid()}"
    made = _ip("netns", "add", name, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()[:120]}"
    _ip("netns", "del", name, check=False)
    return None


class TestHost:
    """A namespace with one address, reachable from here through a veth pair of its own."""

    __test__ = False   # not a pytest class

    def __init__(self) -> None:
        k = next(_COUNTER)
        if k >= 60:
            raise RuntimeError("too many test hosts in one process")
        tag = f"{os.getpid() % 100000}x{k}"
        self.ns, self.near, self.far = f"conecta-{tag}", f"cvn{tag}", f"cvf{tag}"
        self.local = f"198.18.{_BLOCK}.{4 * k + 1}"
        self.ip = f"198.18.{_BLOCK}.{4 * k + 2}"
        self.servers: list[subprocess.Popen] = []
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", self.near, "type", "veth", "peer", "name", self.far, "netns", self.ns)
            _ip("addr", "add", f"{self.local}/30", "dev", self.near)
            _ip("link", "set", self.near, "up")
            self.run("ip", "addr", "add", f"{self.ip}/30", "dev", self.far)
            self.run("ip", "link", "set", self.far, "up")
            self.run("ip", "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def run(self, *argv: str) -> None:
        """Run a command inside the namespace."""
        subprocess.run(["ip", "netns", "exec", self.ns, *argv], check=True, capture_output=True, timeout=10)

    def down(self) -> None:
        """A real outage: the far end of the link goes down."""
        self.run("ip", "link", "set", self.far, "down")

    def up(self) -> None:
        """The link comes back."""
        self.run("ip", "link", "set", self.far, "up")

    def serve(self, port: int, mode: str = "ok") -> subprocess.Popen:
        """An HTTP server inside the namespace on `port`: mode ok (200), error (500) or hang (accepts,
        never answers). Returned once it listens."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns, sys.executable, str(SERVER), self.ip, str(port),
                                 mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.servers.append(proc)
        assert proc.stdout.readline().strip() == "listening", "the namespace server did not start"
        return proc

    def stop_servers(self) -> None:
        """Stop every server started in the namespace."""
        for proc in self.servers:
            proc.kill()
            proc.wait(5)
        self.servers.clear()

    def close(self) -> None:
        """Remove the namespace and with it both ends of the link."""
        self.stop_servers()
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", self.near, check=False)
        time.sleep(0.05)
