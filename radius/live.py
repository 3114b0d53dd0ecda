"""Live per-person counters in Redis, moved after each SQL commit, in commit order, in a thread.

SQL is the truth: a counter that missed a delta is dropped, so that the next read seeds it from SQL
again (portal/counters.py explains the write guard that keeps that seed exact).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from sqlalchemy.orm import sessionmaker

from policies import Policy, Usage, period_keys
from policies.evaluate import spent
from portal.core import counters
from portal.core.accounting import BatchResult

log = logging.getLogger(__name__)
OPEN_TTL = 2 * 86400


class LiveCounters(threading.Thread):
    """Follows the applier's commits; calls `on_spent(uid, counter name, policy)` when a pool runs out."""

    def __init__(self, r: redis.Redis, policies: dict[str, Policy], tz: ZoneInfo, clock: Callable[[], datetime],
                 policy_of: Callable[[int], str], on_spent: Callable[[int, str, Policy], None],
                 db_factory: sessionmaker, settled: Callable[[Any], None]) -> None:
        super().__init__(name="acct-live", daemon=True)
        self.redis = r
        self.policies = policies
        self.tz = tz
        self.clock = clock
        self.policy_of = policy_of          # site id -> policy name
        self.on_spent = on_spent
        self.db_factory = db_factory
        self.settled = settled              # called with each batch's token once it is counted
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.dirty: set[int] = set()        # people whose Redis counters missed a delta
        # Batches Redis may never have taken, with the people whose write guard they hold: their add
        # may have run with only its reply lost, so the guard is let go through the same batch name.
        self.unreleased: list[tuple[str, set[int]]] = []
        self.redis_ok = True                # False while batches give up on Redis (see Applier.run)

    def follow(self, result: BatchResult, user_policies: dict, token: Any, held: set[int]) -> None:
        """Queue a committed batch: its usage, the people's policies, a token for `settled`, the guards held."""
        self.queue.put((result, user_policies, token, held))

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        self.queue.put(None)
        self.join(timeout=10)

    def run(self) -> None:
        """Apply each committed batch to the counters, retrying a little while Redis is away."""
        while True:
            item = self.queue.get()
            if item is None:
                return
            result, user_policies, token, held = item
            # Usage committed without a guard: drop those counters, they are re-seeded after the commit.
            self.dirty.update(uid for uid, _, _ in result.usage if uid not in held)
            now = self.clock().astimezone(self.tz)
            totals = None
            batch = uuid.uuid4().hex     # a batch sent again (its reply lost) adds nothing more
            for attempt in range(3):
                try:
                    self._forget_dirty(now)
                    if totals is None:    # added once only: a retry must not add the delta twice
                        totals = self._add_deltas(result, held, now, batch)
                    self._follow_up(result, user_policies, totals, now)
                    self.redis_ok = True
                    break
                except Exception as exc:  # noqa: BLE001 - SQL is the truth; counters heal on the next read
                    log.warning("live counters not updated (%s, attempt %d)", type(exc).__name__, attempt + 1)
                    time.sleep(0.2 * (attempt + 1))
            else:
                self.redis_ok = False
                if totals is None:
                    # A counter that missed a delta would under-count: drop it, so the next read
                    # re-seeds it from SQL, as soon as Redis answers again; and let go of the guard.
                    self.dirty.update(uid for uid, _, _ in result.usage)
                    self.unreleased.append((batch, held))
            self.settled(token)

    def _forget_dirty(self, now: datetime) -> None:
        if self.dirty:
            self.redis.delete(*[key for uid in self.dirty for key in counters.keys(uid, now)[:2]])
            self.dirty.clear()
        day, month = period_keys(now)
        while self.unreleased:
            batch, held = self.unreleased[0]
            if held:    # adds nothing; lets go of the guard unless that batch already did
                counters.add_usage(self.redis, {(uid, day, month): (0, 0, 0, 0) for uid in held}, held, batch)
            self.unreleased.pop(0)

    def _add_deltas(self, result: BatchResult, held: set[int], now: datetime, batch: str) -> dict:
        """Add the batch to the counters; return per person [day s, day b, month s, month b, site]."""
        period = period_keys(now)
        today, first = now.date(), now.date().replace(day=1)
        # Every person in the batch gets an entry, even a zero one: the call also lets go of the guard.
        deltas: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        site_of: dict[int, int] = {}
        for (uid, day, site), (_, seconds, down, up, *_slow) in result.usage.items():
            delta = deltas[(uid, *period)]
            site_of[uid] = site
            if uid not in held:
                # Committed without a write guard (Redis was away): the counters were dropped, and
                # whoever seeds them again reads SQL, which holds this batch. Adding it would count it twice.
                continue
            if first <= day <= today:   # late records for earlier days count in the month
                delta[2] += seconds
                delta[3] += down + up
            if day == today:
                delta[0] += seconds
                delta[1] += down + up
        if not deltas:
            return {}
        added = counters.add_usage(self.redis, {k: tuple(v) for k, v in deltas.items()}, held, batch)
        missing = {uid: t[4] for (uid, _, _), t in added.items() if -1 in t[:4]}
        totals = {uid: [*t[:4], site_of[uid]] for (uid, _, _), t in added.items()}
        if missing:
            with self.db_factory() as db:
                fresh = counters.sql_usage(db, list(missing), now)
            counters.seed_missing(self.redis, fresh, missing, now)
            for uid, values in fresh.items():
                totals[uid] = [*values, site_of[uid]]
        return totals

    def _follow_up(self, result: BatchResult, user_policies: dict, totals: dict, now: datetime) -> None:
        self._update_open_sets(result, now)
        for uid, (*used, site) in totals.items():
            policy = self.policies.get(user_policies.get(uid) or self.policy_of(site))
            counter = spent(policy, Usage(*used)) if policy else None
            if counter is not None:
                self.on_spent(uid, counter.name, policy)

    def _update_open_sets(self, result: BatchResult, now: datetime) -> None:
        pipe = self.redis.pipeline(transaction=False)
        epoch = time.time()
        first = now.date().replace(day=1)
        month_users = {uid for uid, day, _ in result.usage if day >= first}
        if month_users:   # late records for earlier days of the month count too
            pipe.sadd(counters.active_key(period_keys(now)[1]), *month_users)
        for uid, ref in result.touched:
            pipe.zadd(counters.open_key(uid), {ref: epoch})
            pipe.expire(counters.open_key(uid), OPEN_TTL)
        for uid, ref in result.closed:
            pipe.zrem(counters.open_key(uid), ref)
        pipe.execute()
