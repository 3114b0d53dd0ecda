"""The applier: moves logged accounting into SQL in large transactions, then into the live counters.

It tails the write-ahead log directories (radius/wal.py), gathers what arrived for GATHER seconds
into one transaction, retries a batch until the database takes it, and hands each commit to
radius/live.py, which moves the per-person counters in Redis and reports spent pools. In
production it runs in its own lower-priority process (radius/crew.py); tests run it as a thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from policies import Policy
from portal.core import bulk, counters
from portal.core.accounting import AcctEvent, BatchResult, apply_batch, close_stale
from portal.core.metrics import m
from portal.core.model import Device, User
from radius.live import LiveCounters
from radius.wal import Mark, WalReader, directory_index, is_held
from radius.writer import Progress

log = logging.getLogger(__name__)
MAX_BATCH = 2000
# Records are durable in the log and acknowledged before they are applied, so applying a little
# later costs a NAS nothing; gathering for this long between commits turns a steady stream into
# few large transactions (per-statement costs dominate small ones).
GATHER = 0.2
POLL = 0.02             # how often the log directories are looked at while gathering
IDLE_POLL = 0.2         # ... and after a second without records (an idle applier costs next to nothing)
RESCAN = 1.0            # how often new worker directories are looked for
SWEEP_EVERY = 60.0
FINISH_WITHIN = 20.0    # after a stop, how long to wait for the workers to close their logs

Batch = list[tuple[AcctEvent, Mark]]


def resolve_users(db: DbSession, r: redis.Redis | None, events: list[AcctEvent]) -> None:
    """Fill in user_id for events whose NAS did not echo Class: by username, MAC, then Redis."""
    todo = [e for e in events if e.user_id is None and e.status not in ("on", "off")]
    if not todo:
        return
    names = {e.username for e in todo if e.username and not e.username.startswith("c-")}
    by_name = dict(db.execute(select(User.username, User.id).where(bulk.any_of(db, User.username, names)))
                   .all()) if names else {}
    for e in todo:
        e.user_id = by_name.get(e.username)
    macs = {e.mac for e in todo if e.user_id is None and e.mac}
    by_mac = dict(db.execute(select(Device.mac, Device.user_id).where(bulk.any_of(db, Device.mac, macs)))
                  .all()) if macs else {}
    for e in todo:
        e.user_id = e.user_id or by_mac.get(e.mac)
    left = [e for e in todo if e.user_id is None and e.username.startswith("c-")]
    if left and r is not None:
        try:
            found = r.mget([f"otu:{e.username}" for e in left])
        except redis.RedisError:
            return
        for e, uid in zip(left, found):
            e.user_id = int(uid) if uid else None


def last_marks(batch: Batch) -> dict[tuple[int, int], int]:
    """The highest ordinal per (directory, segment) in a batch."""
    out: dict[tuple[int, int], int] = {}
    for _, mark in batch:
        key = (mark.index, mark.segment)
        out[key] = max(out.get(key, 0), mark.ordinal)
    return out


class Applier(threading.Thread):
    """Applies what the workers log; calls `on_spent(uid, counter name, policy)` when a pool runs out."""

    def __init__(self, db_factory: sessionmaker, r: redis.Redis, policies: dict[str, Policy],
                 tz: ZoneInfo, clock: Callable[[], datetime], policy_of: Callable[[int], str],
                 on_spent: Callable[[int, str, Policy], None], progress: Progress,
                 directories: Callable[[], list[Path]]) -> None:
        super().__init__(name="acct-applier", daemon=True)
        self.db_factory = db_factory
        self.redis = r
        self.policies = policies
        self.clock = clock
        self.progress = progress
        self.directories = directories      # the log directories to tail
        self.readers: dict[int, WalReader] = {}
        self.lock = threading.Lock()        # readers are read here and marked by the live thread
        self.live = LiveCounters(r, policies, tz, clock, policy_of, on_spent, db_factory, self._settled)
        self.stopping = threading.Event()
        self.pending: Batch = []            # a batch SQL refused, retried before anything newer
        self.committed = 0
        self.last_commit = self.last_scan = self.last_sweep = 0.0
        self.stopped_at: float | None = None
        self.on_quiet: Callable[[], None] | None = None   # housekeeping once a burst is over
        self.on_sweep: Callable[[], None] | None = None   # once a minute besides closing stale sessions
        self.busy = False                   # records came within the last second

    def run(self) -> None:
        """Apply until stopped, then apply whatever is left while SQL takes it; sweep once a minute.

        In a thread (`start()`, tests) or called directly (the applier process)."""
        self.live.start()
        self.last_sweep = time.monotonic()
        while not self._finished():
            # Redis away: each batch waits out its retries, so applying is slow; say so, and the
            # workers go on acknowledging from the log instead of waiting for us (as while SQL is away).
            self.progress.beat(sql_ok=not self.pending and self.live.redis_ok)
            batch = self.pending or self._gather()
            self.pending = []
            if batch:
                self.busy = True
                self._commit(batch)
                if self.pending and self.stopping.is_set():
                    break      # the database is away: what is left stays in the log for the next start
            elif self.busy:     # a second without records
                self.busy = False
                if self.on_quiet is not None:
                    self.on_quiet()
            if time.monotonic() - self.last_sweep > SWEEP_EVERY:
                self.last_sweep = time.monotonic()
                self.sweep_stale()
                self._sweep_more()
        self._drain()
        self.live.stop()

    def _sweep_more(self) -> None:
        if self.on_sweep is None:
            return
        try:
            self.on_sweep()
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the applier
            log.warning("sweep (slow lane) failed: %s", type(exc).__name__)

    def stop(self) -> None:
        """Apply what the (closed) logs hold, then stop; what SQL refuses stays on disk."""
        self.stopping.set()
        self.join(timeout=FINISH_WITHIN + 10)

    def _finished(self) -> bool:
        """Stopped, and no worker may append any more (a service manager stops every process at
        once: the workers still answer what they have queued)."""
        if not self.stopping.is_set():
            return False
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        return time.monotonic() - self.stopped_at > FINISH_WITHIN or not any(map(is_held, self.directories()))

    def _drain(self) -> None:
        batch = self.pending or self._read(MAX_BATCH)
        while batch:
            self.pending = []
            self._commit(batch)
            if self.pending:
                return     # the database is away: what is left stays in the log for the next start
            batch = self._read(MAX_BATCH)

    def _read(self, limit: int) -> Batch:
        if time.monotonic() - self.last_scan > RESCAN:
            self.last_scan = time.monotonic()
            for directory in self.directories():
                index = directory_index(directory)
                if index not in self.readers:
                    self.readers[index] = WalReader(directory)
                    # A replacement applier (the last one was killed) skips what that one applied.
                    self.readers[index].resume(*self.progress.position(index))
        out: Batch = []
        with self.lock:
            for reader in self.readers.values():
                out += reader.read(limit - len(out))
                if len(out) >= limit:
                    break
        return out

    def _gather(self) -> Batch:
        """Records until GATHER has passed since the last commit (or MAX_BATCH); [] after a quiet second."""
        batch: Batch = []
        started = time.monotonic()
        while len(batch) < MAX_BATCH:
            batch += self._read(MAX_BATCH - len(batch))
            now = time.monotonic()
            # Commit at once when stopping, or when a worker holds back acknowledgements for us.
            hurry = self.stopping.is_set() or self.progress.anyone_waiting()
            if batch and (hurry or now >= self.last_commit + GATHER):
                break
            time.sleep(POLL if batch or self.busy else IDLE_POLL)
            if not batch and (self.stopping.is_set() or now - started > 1.0):
                break
        return batch

    def _commit(self, batch: Batch) -> None:
        events = [e for e, _ in batch]
        held: list[int] = []
        try:
            with self.db_factory() as db, db.begin():
                resolve_users(db, self.redis, events)
                result = apply_batch(db, events, self.clock().replace(tzinfo=None))
                user_policies = self._user_policies(db, result)
                held = self._hold(result)   # before the commit makes the usage visible to readers
        except Exception as exc:  # noqa: BLE001 - the records are safe in the log: retry
            m().backend_errors.labels("database", "applier").inc()
            log.error("accounting batch of %d not applied to SQL yet (%s: %s); retrying",
                      len(batch), type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "",
                      exc_info=log.isEnabledFor(logging.DEBUG))
            self._let_go(held)
            self.pending = batch
            self.progress.beat(sql_ok=False)
            if not self.stopping.is_set():
                time.sleep(1.0)
            return
        self.committed += len(batch)
        self.last_commit = time.monotonic()
        last = events[-1]
        m().applier_lag.set(max(0.0, (self.clock().replace(tzinfo=None) - last.event_time).total_seconds()
                                - last.delay))
        # Redis follows in its own thread, in commit order, while the next batch commits.
        self.live.follow(result, user_policies, last_marks(batch), set(held))

    def _settled(self, marks: dict[tuple[int, int], int]) -> None:
        """A batch is in SQL and in Redis: let its segments go and tell the workers."""
        with self.lock:
            for (index, segment), ordinal in sorted(marks.items()):
                self.readers[index].mark_applied(segment, ordinal)
                self.progress.publish(index, segment, ordinal)

    def _hold(self, result: BatchResult) -> list[int]:
        uids = sorted({uid for uid, _, _ in result.usage})
        try:
            counters.hold(self.redis, uids)
        except redis.RedisError:
            return []    # the live thread treats these people as dirty
        return uids

    def _let_go(self, held: list[int]) -> None:
        try:
            counters.hold(self.redis, held, step=-1)
        except redis.RedisError:
            pass         # the guard expires on its own

    def _user_policies(self, db: DbSession, result: BatchResult) -> dict[int, str | None]:
        uids = {uid for uid, _, _ in result.usage}
        if not uids:
            return {}
        return dict(db.execute(select(User.id, User.policy).where(bulk.any_of(db, User.id, uids))).all())

    def sweep_stale(self) -> int:
        """Close sessions silent for three interim intervals (the Stop was lost); return how many."""
        interim = max((p.interim_interval for p in self.policies.values()), default=300)
        before = self.clock().replace(tzinfo=None) - timedelta(seconds=3 * interim + 60)
        try:
            with self.db_factory() as db, db.begin():
                closed = close_stale(db, before)
            pipe = self.redis.pipeline(transaction=False)
            for uid, ref in closed:
                if uid is not None:
                    pipe.zrem(counters.open_key(uid), ref)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the applier
            log.warning("stale-session sweep failed: %s", type(exc).__name__)
            return 0
        if closed:
            log.info("closed %d sessions whose NAS stopped reporting", len(closed))
        return len(closed)
