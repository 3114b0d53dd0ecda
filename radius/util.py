"""Small pieces of the RADIUS edge: the RFC 5080 reply cache and rate-limited logging."""

from __future__ import annotations

import logging
import time
from collections import deque

IN_PROGRESS = b""


class ReplyCache:
    """Replies by (source, code, ID, authenticator) for `ttl` seconds (RFC 5080 section 2.2.2).

    A key maps to IN_PROGRESS while its request is handled: a retransmission arriving then is
    ignored; afterwards it gets the cached reply byte for byte, without reprocessing. The TTL is
    FreeRADIUS's cleanup_delay; keys are one bytes object each and expire by the second, because
    at thousands of requests a second per-entry tuples would cost tens of megabytes.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.entries: dict[bytes, bytes] = {}
        self.buckets: deque[tuple[float, list[bytes]]] = deque()   # (expiry, keys started that second)

    @staticmethod
    def key(addr: tuple, data: bytes) -> bytes:
        """The identity of a request datagram: source, code, ID and Request Authenticator."""
        return f"{addr[0]}|{addr[1]}|".encode() + data[:2] + data[4:20]

    def get(self, key: bytes) -> bytes | None:
        """The cached reply, IN_PROGRESS, or None if this request is new."""
        return self.entries.get(key)

    def start(self, key: bytes) -> None:
        """Mark a request as being handled."""
        self.entries[key] = IN_PROGRESS
        expiry = float(int(time.monotonic() + self.ttl) + 1)
        if not self.buckets or self.buckets[-1][0] != expiry:
            self.buckets.append((expiry, []))
        self.buckets[-1][1].append(key)

    def store(self, key: bytes, reply: bytes) -> None:
        """Keep the reply that was sent."""
        self.entries[key] = reply

    def forget(self, key: bytes) -> None:
        """Drop a request that got no reply, so that its retransmission is handled afresh."""
        self.entries.pop(key, None)

    def expire(self) -> None:
        """Remove entries older than the TTL."""
        now = time.monotonic()
        while self.buckets and self.buckets[0][0] <= now:
            for key in self.buckets.popleft()[1]:
                self.entries.pop(key, None)


class RateLimitedLog:
    """At most `burst` lines per reason per `period` seconds, then one line with the count dropped."""

    def __init__(self, logger: logging.Logger, burst: int = 5, period: float = 60.0) -> None:
        self.logger = logger
        self.burst = burst
        self.period = period
        self.windows: dict[str, list] = {}

    def warning(self, reason: str, fmt: str, *args: object) -> None:
        """Log unless this reason was logged `burst` times in the current period."""
        now = time.monotonic()
        window = self.windows.get(reason)
        if window is None or now - window[0] > self.period:
            if window and window[2]:
                self.logger.warning("%s: %d more like this in the last %.0fs", reason, window[2], self.period)
            window = self.windows[reason] = [now, 0, 0]
            if len(self.windows) > 1000:  # bound memory against a flood of distinct reasons
                self.windows = {reason: window}
        if window[1] < self.burst:
            window[1] += 1
            self.logger.warning(fmt, *args)
        else:
            window[2] += 1
