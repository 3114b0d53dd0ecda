"""Small pieces of the RADIUS edge: the RFC 5080 reply cache and rate-limited logging."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

IN_PROGRESS = b""


class ReplyCache:
    """Replies by (source, code, ID, authenticator) (RFC 5080 section 2.2.2).

    A key maps to IN_PROGRESS while its request is handled: a retransmission arriving then is
    ignored; afterwards it gets the cached reply byte for byte, without reprocessing. Every reply is
    kept `ttl` seconds (FreeRADIUS's cleanup_delay); a reply that could not be made again (to a
    one-time credential, consumed by the first answer) is kept for the NAS's whole retry window,
    `window` seconds, at most `most` of them. Keys are one bytes object each and expire by the
    second, because at thousands of requests a second per-entry tuples would cost tens of megabytes.
    """

    def __init__(self, ttl: float = 5.0, window: float = 30.0, most: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.window, self.most, self.clock = ttl, window, most, clock
        self.entries: dict[bytes, bytes] = {}
        self.buckets: deque[tuple[float, list[bytes]]] = deque()   # (expiry, keys started that second)
        self.kept: dict[bytes, bytes] = {}                           # the replies kept for `window`
        self.kept_buckets: deque[tuple[float, list[bytes]]] = deque()

    @staticmethod
    def key(addr: tuple, data: bytes) -> bytes:
        """The identity of a request datagram: source, code, ID and Request Authenticator."""
        return f"{addr[0]}|{addr[1]}|".encode() + data[:2] + data[4:20]

    def get(self, key: bytes) -> bytes | None:
        """The cached reply, IN_PROGRESS, or None if this request is new."""
        found = self.entries.get(key)
        return self.kept.get(key) if found is None and self.kept else found

    def start(self, key: bytes) -> None:
        """Mark a request as being handled."""
        self.entries[key] = IN_PROGRESS
        _add(self.buckets, self.clock() + self.ttl, key)

    def store(self, key: bytes, reply: bytes, keep: bool = False) -> None:
        """Keep the reply that was sent; with `keep`, for the whole retry window."""
        self.entries[key] = reply
        if keep and self.window > self.ttl:
            self.kept[key] = reply
            _add(self.kept_buckets, self.clock() + self.window, key)
            while len(self.kept) > self.most:    # bounded whatever comes: the oldest second goes
                for old in self.kept_buckets.popleft()[1]:
                    self.kept.pop(old, None)

    def forget(self, key: bytes) -> None:
        """Drop a request that got no reply, so that its retransmission is handled afresh."""
        self.entries.pop(key, None)

    def expire(self) -> None:
        """Remove entries older than their time to live."""
        now = self.clock()
        for buckets, entries in ((self.buckets, self.entries), (self.kept_buckets, self.kept)):
            while buckets and buckets[0][0] <= now:
                for key in buckets.popleft()[1]:
                    entries.pop(key, None)


def _add(buckets: deque[tuple[float, list[bytes]]], until: float, key: bytes) -> None:
    expiry = float(int(until) + 1)
    if not buckets or buckets[-1][0] != expiry:
        buckets.append((expiry, []))
    buckets[-1][1].append(key)


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
