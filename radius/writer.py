"""The durable accounting path: write-ahead log, acknowledgements, SQL applier, live counters.

The RADIUS loop hands over each batch of parsed Accounting-Requests; they are appended to the
write-ahead log and fsynced, and only then acknowledged (RFC 2866: no response before the record
is stored). This thread applies what has queued up to SQL in large transactions, retrying until
the database takes them; radius/live.py moves the live counters in Redis after each commit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter as Counter_
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from policies import Policy
from policies.evaluate import Counter
from portal import bulk, counters
from portal.accounting import AcctEvent, BatchResult, apply_batch, close_stale
from portal.model import Device, User
from radius.live import LiveCounters
from radius.wal import WriteAheadLog

log = logging.getLogger(__name__)
MAX_BATCH = 2000
# Records are durable in the log and acknowledged before they are applied, so applying a little
# later costs a NAS nothing; gathering for this long between commits turns a steady stream into
# few large transactions (per-statement costs dominate small ones) and leaves the CPU to replies.
GATHER = 0.2
MAX_BACKLOG = 4000     # records acknowledged but not yet applied, per process
SWEEP_EVERY = 60.0

Ack = Callable[[bool], None]


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


class AccountingWriter(threading.Thread):
    """Group-commits accounting and updates live counters; calls `on_spent(uid, counter)`."""

    def __init__(self, db_factory: sessionmaker, r: redis.Redis, policies: dict[str, Policy],
                 tz: ZoneInfo, clock: Callable[[], datetime], policy_of: Callable[[int], str],
                 on_spent: Callable[[int, Counter], None], wal: WriteAheadLog) -> None:
        super().__init__(name="acct-writer", daemon=True)
        self.wal = wal
        self.pending: list = []             # a batch SQL refused, retried before anything newer
        self.db_factory = db_factory
        self.redis = r
        self.policies = policies
        self.clock = clock
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.incoming: queue.SimpleQueue = queue.SimpleQueue()
        self.log_thread = threading.Thread(target=self._run_log, name="acct-log", daemon=True)
        self.live = LiveCounters(r, policies, tz, clock, policy_of, on_spent, db_factory, self._settle)
        self.stopping = threading.Event()
        self.committed = 0
        self.last_commit = 0.0              # monotonic time of the last commit (see GATHER)
        self.handed = self.settled = 0      # records handed over / applied and counted

    def log_batch(self, items: list[tuple[AcctEvent, Ack]]) -> None:
        """Hand a batch to the log thread, which makes it durable and then acknowledges it."""
        self.handed += len(items)
        self.incoming.put(items)

    def _run_log(self) -> None:
        """Group commit on the log: everything that arrived during the last fdatasync shares the next."""
        while True:
            first = self.incoming.get()
            if first is None:
                return
            items = list(first)
            while True:
                try:
                    more = self.incoming.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.incoming.put(None)
                    break
                items += more
            self._log(items)

    def _log(self, items: list[tuple[AcctEvent, Ack]]) -> None:
        events = [e for e, _ in items]
        # Back-pressure: while SQL takes records but slower than they come, acknowledge no faster
        # than they are applied, so a burst cannot pile up memory and CPU debt for later. (While
        # SQL is away the log keeps acknowledging: the records wait on disk.)
        while self.queue.qsize() > MAX_BACKLOG and not self.pending and not self.stopping.is_set():
            time.sleep(0.002)
        try:
            segment = self.wal.append(events)
        except OSError as exc:   # disk full or failing: no acknowledgement, the NAS retransmits
            log.error("write-ahead log append failed (%s); %d records not acknowledged", exc, len(items))
            for _, ack in items:
                ack(False)
            self.settled += len(items)
            return
        for _, ack in items:
            ack(True)
        for event in events:
            self.queue.put((event, segment))

    def recover(self) -> int:
        """Queue what an earlier run logged but may not have applied; return how many records."""
        records = self.wal.recover()
        self.handed += len(records)
        for item in records:
            self.queue.put(item)
        if records:
            log.info("re-applying %d accounting records from the write-ahead log", len(records))
        return len(records)

    def start(self) -> None:
        """Start the applier, the log thread and the live-counter thread."""
        self.log_thread.start()
        self.live.start()
        super().start()

    def stop(self) -> None:
        """Apply what is queued (what cannot be applied stays in the log for the next start)."""
        self.incoming.put(None)
        self.log_thread.join(timeout=10)
        self.stopping.set()
        self.queue.put(None)
        self.join(timeout=15)
        self.live.stop()
        self.wal.close(all_applied=not self.is_alive() and not self.pending)

    def _settle(self, n: int) -> None:
        self.settled += n

    def idle(self) -> bool:
        """True when every record handed over is in SQL and counted in Redis (tests wait on this)."""
        return self.settled >= self.handed

    def run(self) -> None:
        """Apply batches until stopped; sweep stale sessions once a minute."""
        last_sweep = time.monotonic()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch:
                self._commit(batch)
                if self.pending and self.stopping.is_set():
                    return     # the database is away: what is left stays in the log
            if time.monotonic() - last_sweep > SWEEP_EVERY:
                last_sweep = time.monotonic()
                self.sweep_stale()

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
                    pipe.zrem(f"u:{uid}:open", ref)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - housekeeping must never stop the writer
            log.warning("stale-session sweep failed: %s", type(exc).__name__)
            return 0
        if closed:
            log.info("closed %d sessions whose NAS stopped reporting", len(closed))
        return len(closed)

    def _next_batch(self) -> list | None:
        if self.pending:
            batch, self.pending = self.pending, []
            return batch
        try:
            first = self.queue.get(timeout=0.5)
        except queue.Empty:
            return None if self.stopping.is_set() else []
        if first is None:
            return None
        batch = [first]
        until = self.last_commit + GATHER
        while len(batch) < MAX_BATCH:
            try:
                wait = until - time.monotonic()
                item = self.queue.get(timeout=wait) if wait > 0 and not self.stopping.is_set() else \
                    self.queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.queue.put(None)
                break
            batch.append(item)
        return batch

    def _commit(self, batch: list[tuple[AcctEvent, int]]) -> None:
        events = [e for e, _ in batch]
        held: list[int] = []
        try:
            with self.db_factory() as db, db.begin():
                resolve_users(db, self.redis, events)
                result = apply_batch(db, events, self.clock().replace(tzinfo=None))
                user_policies = self._user_policies(db, result)
                held = self._hold(result)   # before the commit makes the usage visible to readers
        except Exception as exc:  # noqa: BLE001 - the records are safe in the log: retry
            log.error("accounting batch of %d not applied to SQL yet (%s: %s); retrying",
                      len(batch), type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "",
                      exc_info=log.isEnabledFor(logging.DEBUG))
            self._let_go(held)
            self.pending = batch
            if not self.stopping.is_set():
                time.sleep(1.0)
            return
        self.committed += len(batch)
        self.last_commit = time.monotonic()
        for segment, n in Counter_(s for _, s in batch).items():
            self.wal.applied(segment, n)
        # Redis follows in its own thread, in commit order, while the next batch commits.
        self.live.follow(result, user_policies, len(batch), set(held))

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
