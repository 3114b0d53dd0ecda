"""A small RADIUS load generator: pre-encoded packets, a fixed window in flight, or a fixed rate.

Closed loop (`rate=None`): keep `window` requests outstanding over `nsock` non-blocking UDP
sockets; every verified reply releases the next request. Fixed rate: send on a schedule at
`rate` requests/s (at most `max_inflight` outstanding). Replies are matched by (socket, ID) and
their Response Authenticator is checked. 127.0.0.1 only; bounded by count and by `max_seconds`.

  python bench/loadgen.py --port 18123 --secret S --kind auth --count 20000 [--rate 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
NSOCK = 8
CODES = {2: "accept", 3: "reject", 5: "acct_response"}


@dataclass
class Result:
    """What one load run measured."""

    sent: int = 0
    answered: int = 0
    accept: int = 0
    reject: int = 0
    acct_response: int = 0
    lost: int = 0
    stray: int = 0
    elapsed: float = 0.0
    rate: float = 0.0
    target_rate: float | None = None
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        """The result without the raw latencies."""
        return {k: v for k, v in asdict(self).items() if k != "latencies"}


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values))) - 1))]


def _wait(rate: float | None, sending: bool, sent: int, since: float) -> float:
    """How long to block in poll: until a reply, or until the next request is due."""
    if rate is None or not sending:
        return 0.05
    return min(0.002, max(0.0, (sent - since * rate) / rate))


class Runner:
    """Sends one pre-encoded load to one port and collects latencies."""

    def __init__(self, packets: list[bytes], port: int, secret: bytes, nsock: int = NSOCK,
                 timeout: float = 3.0) -> None:
        self.packets = packets
        self.secret = secret
        self.timeout = timeout
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(nsock)]
        for s in self.socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            s.connect((HOST, port))
            s.setblocking(False)
        self.slots: list[list] = [[None] * 256 for _ in range(nsock)]
        self.inflight = 0
        self.next = 0
        self.res = Result()
        self.last_reply = 0.0
        # (request index, sent at, answered at or None, reply code or 0) per request when a list:
        # the fault benchmark checks acknowledged records one by one and times the outages
        self.trace: list[tuple[int, float, float | None, int]] | None = None

    def close(self) -> None:
        """Close the sockets."""
        for s in self.socks:
            s.close()

    def _send_next(self, now: float) -> None:
        j = self.next
        self.next += 1
        k = j % len(self.socks)
        raw = self.packets[j]
        slots = self.slots[k]
        if slots[raw[1]] is not None:  # ID still taken by a request that never got an answer
            self._lost(slots[raw[1]])
            self.inflight -= 1
        try:
            self.socks[k].send(raw)
        except OSError:
            slots[raw[1]] = None
            self._lost((raw, now, j))
            return
        slots[raw[1]] = (raw, now, j)
        self.inflight += 1
        self.res.sent += 1

    def _receive(self, k: int, lat: list[float]) -> int:
        """Drain socket k; return how many requests it answered."""
        sock, slots, secret, res, got = self.socks[k], self.slots[k], self.secret, self.res, 0
        while True:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return got
            except OSError:  # ICMP port unreachable: nobody listens (yet)
                continue
            now = time.perf_counter()
            slot = slots[data[1]] if len(data) >= 20 else None
            if slot is None or hashlib.md5(data[:4] + slot[0][4:20] + data[20:] + secret).digest() != data[4:20]:
                res.stray += 1
                continue
            slots[data[1]] = None
            self.last_reply = now
            lat.append(now - slot[1])
            if self.trace is not None:
                self.trace.append((slot[2], slot[1], now, data[0]))
            kind = CODES.get(data[0])
            if kind:
                setattr(res, kind, getattr(res, kind) + 1)
            got += 1

    def _expire(self, now: float) -> None:
        limit = now - self.timeout
        for slots in self.slots:
            for i, slot in enumerate(slots):
                if slot is not None and slot[1] < limit:
                    slots[i] = None
                    self.inflight -= 1
                    self._lost(slot)

    def _lost(self, slot: tuple) -> None:
        self.res.lost += 1
        if self.trace is not None:
            self.trace.append((slot[2], slot[1], None, 0))

    def run(self, window: int = 128, rate: float | None = None, max_seconds: float = 30.0,
            max_inflight: int = 1024) -> Result:
        """Send every packet (or until max_seconds), wait for the answers, return the result."""
        poller = select.epoll()
        index = {s.fileno(): k for k, s in enumerate(self.socks)}
        for fd in index:
            poller.register(fd, select.EPOLLIN)
        lat = self.res.latencies
        total = len(self.packets)
        t0 = last_check = time.perf_counter()
        stop_at, limit = t0 + max_seconds, (window if rate is None else max_inflight)
        try:
            while True:
                now = time.perf_counter()
                sending = self.next < total and now < stop_at
                due = total if rate is None else min(total, int((now - t0) * rate) + 1)
                while sending and self.next < due and self.inflight < limit:
                    self._send_next(now)
                if not self.inflight and (not sending or self.next >= total):
                    break
                for fd, _ in poller.poll(_wait(rate, sending, self.next, now - t0)):
                    self.inflight -= self._receive(index[fd], lat)
                if now - last_check > 0.1:
                    self._expire(now)
                    last_check = now
        finally:
            poller.close()
        return self._finish(t0, rate)

    def _finish(self, t0: float, rate: float | None) -> Result:
        res = self.res
        # to the last answer: time spent waiting for lost requests to time out is not throughput
        res.elapsed = (self.last_reply or time.perf_counter()) - t0
        res.answered = len(res.latencies)
        res.rate = res.answered / res.elapsed if res.elapsed > 0 else 0.0
        res.target_rate = rate
        ordered = sorted(res.latencies)
        res.p50_ms = percentile(ordered, 0.50) * 1e3
        res.p99_ms = percentile(ordered, 0.99) * 1e3
        res.max_ms = (ordered[-1] * 1e3) if ordered else 0.0
        return res


def run_load(packets: list[bytes], port: int, secret: bytes, window: int = 128, rate: float | None = None,
             max_seconds: float = 30.0, nsock: int = NSOCK) -> Result:
    """Run one load against 127.0.0.1:port and return what it measured."""
    runner = Runner(packets, port, secret, nsock)
    try:
        return runner.run(window=window, rate=rate, max_seconds=max_seconds)
    finally:
        runner.close()


def main(argv: list[str] | None = None) -> int:
    """Command line: encode a load, run it, print the result as JSON."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import packets as enc

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="UDP port on 127.0.0.1")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--kind", choices=("auth", "acct"), default="auth")
    ap.add_argument("--users", help="file of 'user password' lines (default: user00001..user10000)")
    ap.add_argument("--count", type=int, default=10000, help="requests (acct: rounded to whole sessions)")
    ap.add_argument("--window", type=int, default=128, help="requests in flight (closed loop)")
    ap.add_argument("--rate", type=float, help="fixed rate in requests/s instead of a window")
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--tag", default=f"lg{int(time.time())}")
    args = ap.parse_args(argv)
    users = enc.read_users(args.users) if args.users else enc.bench_users(10000)
    spec = enc.Spec(args.kind, args.secret.encode(), args.tag, NSOCK)
    pkts = enc.encode(spec, users, args.count)
    res = run_load(pkts, args.port, spec.secret, args.window, args.rate, args.max_seconds)
    print(json.dumps(res.summary(), indent=1))
    return 0 if res.answered else 1


if __name__ == "__main__":
    sys.exit(main())
