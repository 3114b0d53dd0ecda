"""The slow lane: what the daemon does when a person's pool is spent mid-session.

A policy whose [after_quota] throttles the spent pool gets a CoA-Request (RFC 5176) for each open
session with the slow-lane rates in the NAS's own attributes; a CoA-ACK marks the session as in the
slow lane (counted once in the rollups). A CoA-NAK or silence falls back to a Disconnect-Request, after
which the next login lands in the slow lane. A NAS that takes no CoA (pfSense re-authenticates every
minute and gets the slow lane in that Access-Accept) is recorded as such, once per session. Every
request is recorded in `coa_requests` before it is sent and logged once with its outcome. When the
pool resets, the sweep asks the NAS to restore the normal rates of sessions still in the slow lane.
Any other spent pool is cut off as before (portal/core/coa.Disconnector).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
from pyrad.dictionary import Dictionary
from sqlalchemy import or_, select
from sqlalchemy.orm import sessionmaker

from policies import Policy, Usage, evaluate
from portal.core import accounting, counters
from portal.core.coa import BACKOFF, Disconnector, Outcome, send_coa
from portal.core.metrics import m
from portal.core.model import CoaRequest, Disconnect, Nas, Session, User, utcnow
from radius.attributes import rate_attributes

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(minutes=5)    # a session is asked again after this long (like Disconnect-Requests)
# Access points without CoA that re-authenticate every minute and re-apply the Accept's rates: what
# was not sent takes effect anyway within a minute.
REAUTHENTICATE = ("pfsense",)


class SlowLane:
    """Throttles, restores or disconnects sessions from a small thread pool: callers never wait."""

    def __init__(self, db_factory: sessionmaker, dictionary: Dictionary, tz: ZoneInfo,
                 clock: Callable[[], datetime], backoff: tuple[float, ...] = BACKOFF, workers: int = 4) -> None:
        self.db_factory = db_factory
        self.dictionary = dictionary
        self.tz = tz
        self.clock = clock                  # aware UTC
        self.disconnector = Disconnector(db_factory, dictionary, backoff, workers)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slow-lane")
        self.choosing = threading.Lock()    # choosing and recording sessions: one batch at a time

    @property
    def backoff(self) -> tuple[float, ...]:
        """The retry schedule of every request (tests shorten it)."""
        return self.disconnector.backoff

    @backoff.setter
    def backoff(self, value: tuple[float, ...]) -> None:
        self.disconnector.backoff = value

    def person_spent(self, user_id: int, counter: str, policy: Policy) -> None:
        """A pool of `policy` is spent: slow the person's sessions down or cut them off."""
        if policy.after_quota.throttles(counter):
            self.pool.submit(self._slow_person, user_id, counter, policy)
        else:
            self.disconnector.person_spent(user_id, counter)

    def restore(self, session_ids: list[int], policy: Policy) -> None:
        """The pool has reset: ask for the normal rates again on these sessions."""
        self.pool.submit(self._restore_sessions, session_ids, policy)

    def sweep(self, r: redis.Redis, policy_for: Callable[[str | None, int], Policy | None]) -> int:
        """Ask for the normal rates again where a slow-lane session's pool has reset (the person's
        policy accepts them at full speed now); return how many sessions. `policy_for(user policy,
        site id)` names the policy that applies."""
        with self.db_factory() as db:
            rows = db.execute(select(Session.id, Session.user_id, Session.site_id, User.policy)
                              .join(User, User.id == Session.user_id)
                              .where(Session.is_open.is_(True), Session.slow_since.is_not(None)).limit(5000)).all()
        applies = {row.id: policy_for(row.policy, row.site_id) for row in rows}
        rows = [row for row in rows if applies[row.id] is not None]
        if not rows:
            return 0
        now = self.clock().astimezone(self.tz)
        stale = {row.user_id: 2 * applies[row.id].interim_interval + 60 for row in rows}
        usage = counters.read_usage(r, self.db_factory, list(stale), now, stale)
        due: dict[str, list[int]] = {}
        for row in rows:
            u = usage[row.user_id]   # the devices limit is not the question here: only the pools
            decision = evaluate(applies[row.id], Usage(u.day_seconds, u.day_bytes, u.month_seconds, u.month_bytes),
                                now)
            if decision.accept and decision.slow_until is None:
                due.setdefault(applies[row.id].name, []).append(row.id)
        policies = {p.name: p for p in applies.values() if p is not None}
        for name, ids in due.items():
            self.restore(ids, policies[name])
        return sum(map(len, due.values()))

    def stop(self) -> None:
        """Wait for requests under way."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.disconnector.stop()

    def _slow_person(self, user_id: int, counter: str, policy: Policy) -> None:
        try:
            records = self._record(user_id, "slow", counter)
        except Exception as exc:  # noqa: BLE001 - the next interim asks again
            log.warning("slow lane: sessions not chosen (%s); the next interim tries again", type(exc).__name__)
            return
        for record_id in records:
            self._send(record_id, policy)

    def _restore_sessions(self, session_ids: list[int], policy: Policy) -> None:
        try:
            records = self._record(None, "restore", "reset", session_ids)
        except Exception as exc:  # noqa: BLE001 - the next sweep asks again
            log.warning("slow lane: sessions to restore not chosen (%s)", type(exc).__name__)
            return
        for record_id in records:
            self._send(record_id, policy)

    def _record(self, user_id: int | None, action: str, reason: str, among: list[int] | None = None) -> list[int]:
        """Pending requests for the open sessions that need one: not asked within RETRY_AFTER, not
        being cut off, not recorded as behind a NAS without CoA, and not already where `action` leads."""
        recent = utcnow() - RETRY_AFTER
        asked = select(CoaRequest.session_id).where(CoaRequest.action == action, or_(
            CoaRequest.requested_at > recent, CoaRequest.result == "no-coa"))
        cut = select(Disconnect.session_id).where(Disconnect.requested_at > recent)
        where = [Session.is_open.is_(True), ~Session.id.in_(asked), ~Session.id.in_(cut),
                 Session.slow_since.is_(None) if action == "slow" else Session.slow_since.is_not(None)]
        where.append(Session.user_id == user_id if among is None else Session.id.in_(among))
        with self.choosing, self.db_factory.begin() as db:
            sessions = db.execute(select(Session.id, Session.nas_id).where(*where)).all()
            records = [CoaRequest(session_id=s.id, nas_id=s.nas_id, action=action, reason=reason) for s in sessions]
            db.add_all(records)
            db.flush()
            return [r.id for r in records]

    def _send(self, record_id: int, policy: Policy) -> None:
        try:
            with self.db_factory() as db:
                record = db.get(CoaRequest, record_id)
                s, nas = db.get(Session, record.session_id), db.get(Nas, record.nas_id)
            if nas is None:       # removed meanwhile: nobody to ask
                outcome = Outcome("nak", 0)
            else:
                lane = policy.after_quota if record.action == "slow" else policy
                rates = rate_attributes(nas.vendor, lane.rate_down, lane.rate_up)
                outcome = send_coa(nas, s, self.dictionary, rates, self.backoff)
            self._finish(record, outcome, nas is not None and nas.vendor in REAUTHENTICATE)
        except Exception:  # noqa: BLE001 - a worker thread must log, never die silently
            log.exception("CoA-Request %s failed", record_id)

    def _finish(self, record: CoaRequest, outcome: Outcome, reauthenticates: bool) -> None:
        """Record the outcome; on an ACK (or from an access point that re-authenticates every minute)
        move the session into or out of the slow lane; when the slow lane could not be set, fall back to
        a Disconnect-Request so nobody stays at full speed."""
        m().coa_requests.labels(record.action, outcome.result).inc()
        now = self.clock()
        took = outcome.result == "ack" or (outcome.result == "no-coa" and reauthenticates)
        fallback = record.action == "slow" and outcome.result in ("nak", "timeout")
        disconnect_id = self.disconnector.record(record.session_id, record.reason) if fallback else None
        with self.db_factory.begin() as db:
            row = db.get(CoaRequest, record.id)
            row.result, row.attempts, row.finished_at = outcome.result, outcome.attempts, utcnow()
            row.error_cause, row.disconnect_id = outcome.error_cause, disconnect_id
            if took and record.action == "slow":
                accounting.enter_slow_lane(db, record.session_id, now.replace(tzinfo=None),
                                           now.astimezone(self.tz).date())
            elif took:
                accounting.leave_slow_lane(db, record.session_id)
        then = "; falling back to Disconnect-Request" if fallback else ""
        if outcome.result == "no-coa":
            then = "; the next re-authentication applies it" if reauthenticates else "; it applies at the next login"
        level = logging.INFO if outcome.result == "ack" else logging.WARNING
        log.log(level, "CoA-Request (%s, %s) session %s on NAS %s: %s%s", record.action, record.reason,
                record.session_id, record.nas_id, outcome.describe(), then)
        if disconnect_id is not None:
            self.disconnector.send(disconnect_id)


def policy_chooser(policies: dict[str, Policy], site_policy: Callable[[int], str]) -> Callable[[str | None, int],
                                                                                              Policy | None]:
    """policy_for(user policy, site id) for `SlowLane.sweep`: the person's own policy, else the site's."""
    def policy_for(user_policy: str | None, site_id: int) -> Policy | None:
        return policies.get(user_policy or "") or policies.get(site_policy(site_id))
    return policy_for
