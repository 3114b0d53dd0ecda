"""Accounting applied to the record of truth: Start / Interim / Stop / On / Off, in one transaction.

A batch is first inserted into acct_records with its dedup digest; only records that were new
touch sessions and the usage_daily rollup, so a retransmitted or duplicated packet counts once.
Counters move by deltas against the session's last totals, never below zero.

A NAS may reuse an Acct-Session-Id (CoovaChilli makes it from the second and the client's unit, so a
session that ends in the second its id was made hands the id on). A record whose session began
after the last session with that (NAS, id) stopped starts a new generation: a row of its own,
counted once more. A Start carries no counters, so its digest also holds its Request Authenticator:
a new session's Start differs from the old one's only there, and a retransmission repeats it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.orm import Session as DbSession

from portal.core import bulk
from portal.core.model import AcctRecord, Session, UsageDaily, UsageMonthly, User

log = logging.getLogger("conecta.accounting")
STATUSES = {1: "start", 2: "stop", 3: "interim", 7: "on", 8: "off"}
# The figures of both rollups, in the order BatchResult.usage keeps them.
FIGURES = ("sessions", "seconds", "bytes_down", "bytes_up", "slow_sessions", "slow_bytes")


@dataclass(slots=True)   # thousands wait in memory after a burst: no per-object dict
class AcctEvent:
    """One Accounting-Request, parsed and checked by the RADIUS edge."""

    nas_id: int
    site_id: int
    status: str
    session_id: str | None
    username: str
    user_id: int | None
    mac: str | None
    framed_ip: str | None
    seconds: int
    bytes_in: int
    bytes_out: int
    terminate_cause: str | None
    event_time: datetime          # naive UTC, already corrected by Acct-Delay-Time
    local_day: date
    delay: int = 0
    slow: bool = False            # the Class says the session started in the slow lane
    start_key: str = ""           # a Start's Request Authenticator (hex): its retransmissions repeat it

    def digest(self) -> str:
        """Identity of this record: a retransmission with a new Acct-Delay-Time is the same record
        (except a Start's, whose authenticator changes with it: a second record of the same session)."""
        ident = (f"{self.nas_id}|{self.status}|{self.session_id}|{self.seconds}|{self.bytes_in}|"
                 f"{self.bytes_out}|{self.username}")
        if self.status in ("on", "off"):
            ident += f"|{self.event_time:%Y%m%d%H%M}"
        if self.start_key:
            ident += f"|{self.start_key}"
        return hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()


@dataclass
class BatchResult:
    """What a committed batch changed, for the live counters in Redis."""

    # (user_id, local day, site_id) -> [sessions, seconds, bytes_down, bytes_up, slow_sessions, slow_bytes]
    usage: dict[tuple[int, date, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * len(FIGURES)))
    touched: list[tuple[int, str]] = field(default_factory=list)   # (user_id, "nas:sid") still open
    closed: list[tuple[int, str]] = field(default_factory=list)    # (user_id, "nas:sid") ended
    new_records: int = 0


def _record_rows(records: dict[str, AcctEvent], received: datetime) -> list[dict]:
    return [{"dedup": digest, "received_at": received, "nas_id": e.nas_id,
             "acct_session_id": e.session_id, "status": e.status, "user_id": e.user_id,
             "seconds": e.seconds, "bytes_in": e.bytes_in, "bytes_out": e.bytes_out,
             "delay": e.delay} for digest, e in records.items()]


def _insert_new(db: DbSession, events: list[AcctEvent], received: datetime) -> set[int]:
    """Insert the records; return id() of the events that were not already stored."""
    unique: dict[str, AcctEvent] = {}
    for event in events:
        unique.setdefault(event.digest(), event)
    written = bulk.insert_rows(db, AcctRecord.__table__, _record_rows(unique, received),
                               conflict=["dedup"], returning="dedup")
    inserted = {row[0] for row in written} if written is not None else set()
    return {id(e) for d, e in unique.items() if d in inserted}


SESSIONS = Session.__table__
# What a later packet may change in a session row.
# slow_since is not among them: the CoA sender sets it (radius/slowlane.py) while a batch may hold
# the row, and a batch must not write back the value it read.
CHANGING = ("user_id", "mac", "framed_ip", "updated_at", "stopped_at", "seconds", "bytes_in", "bytes_out",
            "terminate_cause", "is_open", "start_key")
Key = tuple[int, str, int]     # (nas_id, acct_session_id, generation)
# FOR UPDATE: several `conecta radius` nodes may share one database.
_PG_SESSIONS = text(f"SELECT * FROM sessions WHERE (nas_id, acct_session_id) IN "  # noqa: S608 - no input
                    f"(SELECT * FROM {bulk.unnest(SESSIONS, ('nas_id', 'acct_session_id'))}) FOR UPDATE")


def _load_sessions(db: DbSession, events: list[AcctEvent]) -> dict[Key, dict]:
    """The stored sessions (every generation) these events may belong to, as plain rows (no ORM:
    this runs per record)."""
    keys = sorted({(e.nas_id, e.session_id) for e in events if e.session_id})
    if not keys:
        return {}
    if bulk.is_pg(db):
        rows = db.execute(_PG_SESSIONS, {"nas_id": [k[0] for k in keys], "acct_session_id": [k[1] for k in keys]})
        return {(r["nas_id"], r["acct_session_id"], r["generation"]): dict(r) for r in rows.mappings()}
    found = {}
    for start in range(0, len(keys), 200):   # SQLite scans the table for a row-value IN; pairs use the index
        pairs = [and_(SESSIONS.c.nas_id == n, SESSIONS.c.acct_session_id == sid) for n, sid in keys[start:start + 200]]
        found.update({(r["nas_id"], r["acct_session_id"], r["generation"]): dict(r)
                      for r in db.execute(select(SESSIONS).where(or_(*pairs))).mappings()})
    return found


def session_ref(nas_id: int, acct_session_id: str, generation: int = 0) -> str:
    """How an open session is named in a person's Redis set of open sessions."""
    return f"{nas_id}:{acct_session_id}" + (f":{generation}" if generation else "")


def _new_session(e: AcctEvent, generation: int) -> dict:
    started = e.event_time - timedelta(seconds=e.seconds)
    return {"id": None, "nas_id": e.nas_id, "site_id": e.site_id, "acct_session_id": e.session_id,
            "generation": generation, "start_key": None,
            "user_id": e.user_id, "username": e.username[:64], "mac": e.mac, "framed_ip": e.framed_ip,
            "started_at": started, "updated_at": e.event_time, "stopped_at": None, "seconds": 0, "bytes_in": 0,
            "bytes_out": 0, "terminate_cause": None, "is_open": True, "slow_since": started if e.slow else None}


def generation_of(e: AcctEvent, latest: dict | None) -> int:
    """Which session with this (NAS, Acct-Session-Id) a new record belongs to: the latest one, or the
    next generation when the latest has stopped and this record comes from another device or from a
    session that began after the stop (unless it is the Start the latest never had, arriving late)."""
    if latest is None:
        return 0
    if latest["is_open"] or latest["stopped_at"] is None:
        return latest["generation"]
    other_device = e.mac is not None and latest["mac"] is not None and e.mac != latest["mac"]
    if latest["terminate_cause"] == "Stale" and e.status != "start" and not other_device:
        # Closed for silence after its Start alone (an openNDS gateway reports only the end): its Stop
        # is still its own, though it "began" when the session was last heard of.
        return latest["generation"]
    # At or after: with a second's resolution, a session may end and the next begin in the same one.
    began_after = e.event_time - timedelta(seconds=e.seconds) >= latest["stopped_at"]
    if e.status == "start" and latest["start_key"] is None:
        began_after = False        # the latest session never had its Start: this is it, late
    return latest["generation"] + 1 if other_device or began_after else latest["generation"]


def _late(e: AcctEvent, s: dict) -> bool:
    """True for an Interim-Update or a second Stop of a session that stopped: its totals are final (a
    session closed only for going silent, "Stale", still takes what its NAS reports)."""
    if e.status == "start" or s["is_open"] or s["terminate_cause"] == "Stale":
        return False
    if e.seconds > s["seconds"] or e.bytes_in > s["bytes_in"] or e.bytes_out > s["bytes_out"]:
        log.warning("%s for NAS %d session %s after its Stop, with higher counters: not charged",
                    e.status, e.nas_id, e.session_id)
    return True


def _apply_session_event(e: AcctEvent, s: dict, created: bool, result: BatchResult) -> None:
    if not created and _late(e, s):
        return
    if not created and s["user_id"] is None and e.user_id is not None:
        s["user_id"] = e.user_id
    if e.status == "start" and s["start_key"] is None:
        s["start_key"] = e.start_key or None
    ds = max(0, e.seconds - s["seconds"])
    d_in = max(0, e.bytes_in - s["bytes_in"])
    d_out = max(0, e.bytes_out - s["bytes_out"])
    s["seconds"] += ds
    s["bytes_in"] += d_in
    s["bytes_out"] += d_out
    s["updated_at"] = max(s["updated_at"], e.event_time)
    s["framed_ip"] = s["framed_ip"] or e.framed_ip
    s["mac"] = s["mac"] or e.mac
    if e.status == "stop" and s["is_open"]:
        s["is_open"], s["stopped_at"], s["terminate_cause"] = False, e.event_time, e.terminate_cause
    if s["user_id"] is None:
        return  # an unknown person's usage is kept in the session, not in anyone's quota
    if created or ds or d_in or d_out:
        row = result.usage[(s["user_id"], e.local_day, s["site_id"])]
        row[0] += int(created)
        row[1] += ds
        row[2] += d_out
        row[3] += d_in
        if s["slow_since"] is not None:    # in the slow lane: from the login, or since a CoA-ACK
            row[4] += int(created)
            row[5] += d_in + d_out
    ref = session_ref(s["nas_id"], s["acct_session_id"], s["generation"])
    (result.touched if s["is_open"] else result.closed).append((s["user_id"], ref))


def _apply_sessions(db: DbSession, events: list[AcctEvent], result: BatchResult) -> None:
    """Apply new session events in order: one SELECT, then one INSERT and one UPDATE statement for all."""
    if not events:
        return
    sessions = _load_sessions(db, events)
    before = {key: dict(row) for key, row in sessions.items()}
    latest: dict[tuple[int, str], dict] = {}
    for (nas_id, sid, _), row in sorted(sessions.items()):
        latest[(nas_id, sid)] = row
    for e in events:
        generation = generation_of(e, latest.get((e.nas_id, e.session_id)))
        key = (e.nas_id, e.session_id, generation)
        created = key not in sessions
        if created:
            sessions[key] = latest[key[:2]] = _new_session(e, generation)
        _apply_session_event(e, sessions[key], created, result)
    bulk.insert_rows(db, SESSIONS, [{k: v for k, v in s.items() if k != "id"}
                                    for s in sessions.values() if s["id"] is None])
    bulk.update_rows(db, SESSIONS, "id", [{k: s[k] for k in ("id", *CHANGING)} for key, s in sessions.items()
                                         if s["id"] is not None and s != before[key]])


def _close_nas_sessions(db: DbSession, e: AcctEvent, result: BatchResult) -> None:
    cause = "NAS-Reboot" if e.status == "on" else "NAS-Request"
    rows = db.execute(select(SESSIONS.c.id, SESSIONS.c.user_id, SESSIONS.c.nas_id, SESSIONS.c.acct_session_id,
                             SESSIONS.c.generation)
                      .where(SESSIONS.c.nas_id == e.nas_id, SESSIONS.c.is_open.is_(True))).all()
    if rows:
        db.execute(update(SESSIONS).where(SESSIONS.c.id.in_([r.id for r in rows]))
                   .values(is_open=False, stopped_at=e.event_time, terminate_cause=cause))
    for row in rows:
        if row.user_id is not None:
            result.closed.append((row.user_id, session_ref(row.nas_id, row.acct_session_id, row.generation)))


_ROLLUP_KEYS = ("user_id", "day", "site_id")
_ADD = ", ".join(f"{m} = {{t}}.{m} + EXCLUDED.{m}" for m in FIGURES)
_FIGURES = ", ".join(FIGURES)
# PostgreSQL: both rollups in one statement, the gender and age snapshot joined in SQL.
_PG_ROLLUPS = text(f"""
WITH v AS (SELECT * FROM {bulk.unnest(UsageDaily.__table__, _ROLLUP_KEYS + FIGURES)}
           AS v(user_id, day, site_id, {_FIGURES})),
p AS (SELECT v.*, COALESCE(u.gender, 'undisclosed') AS gender, COALESCE(u.age_band, 'undisclosed') AS age_band
      FROM v LEFT JOIN users u ON u.id = v.user_id),
d AS (INSERT INTO usage_daily (user_id, day, site_id, {_FIGURES}, gender, age_band)
      SELECT * FROM p ON CONFLICT (day, user_id, site_id) DO UPDATE SET {_ADD.format(t="usage_daily")})
INSERT INTO usage_monthly (month, user_id, site_id, {_FIGURES}, gender, age_band)
SELECT to_char(day, 'YYYY-MM'), user_id, site_id, {", ".join(f"sum({m})" for m in FIGURES)},
       min(gender), min(age_band)
FROM p GROUP BY 1, 2, 3
ON CONFLICT (month, user_id, site_id) DO UPDATE SET {_ADD.format(t="usage_monthly")}
""")  # noqa: S608 - names from the metadata, values are parameters


def _upsert_usage(db: DbSession, usage: dict) -> None:
    if not usage:
        return
    if bulk.is_pg(db):
        keys, values = list(usage), list(usage.values())
        columns = {name: [k[i] for k in keys] for i, name in enumerate(_ROLLUP_KEYS)}
        columns.update({name: [v[i] for v in values] for i, name in enumerate(FIGURES)})
        db.execute(_PG_ROLLUPS, columns)
        return
    people = {row.id: row for row in db.execute(select(User.id, User.gender, User.age_band)
                                               .where(bulk.any_of(db, User.id, {uid for uid, _, _ in usage})))}
    undisclosed = ("undisclosed", "undisclosed")
    rows = [{"user_id": uid, "day": day, "site_id": site, **dict(zip(FIGURES, v)),
             "gender": (people[uid].gender if uid in people else undisclosed[0]),
             "age_band": (people[uid].age_band if uid in people else undisclosed[1])}
            for (uid, day, site), v in usage.items()]
    bulk.insert_rows(db, UsageDaily.__table__, rows, conflict=["day", "user_id", "site_id"], adding=FIGURES)
    monthly: dict[tuple, dict] = {}
    for row in rows:
        key = (row["day"].strftime("%Y-%m"), row["user_id"], row["site_id"])
        into = monthly.setdefault(key, {**row, "month": key[0], **dict.fromkeys(FIGURES, 0)})
        for metric in FIGURES:
            into[metric] += row[metric]
    # The metrics add up; the gender and age snapshot columns keep what the month started with.
    bulk.insert_rows(db, UsageMonthly.__table__, [{k: v for k, v in r.items() if k != "day"} for r in monthly.values()],
                     conflict=["month", "user_id", "site_id"], adding=FIGURES)


def close_stale(db: DbSession, before: datetime) -> list[tuple[int | None, str]]:
    """Close sessions whose NAS went silent (no update since `before`); return their refs."""
    rows = db.execute(select(Session.id, Session.user_id, Session.nas_id, Session.acct_session_id,
                             Session.generation)
                      .where(Session.is_open.is_(True), Session.updated_at < before).limit(5000)).all()
    if rows:
        db.execute(update(Session).where(Session.id.in_([r.id for r in rows]))
                   .values(is_open=False, stopped_at=Session.updated_at, terminate_cause="Stale"))
    return [(r.user_id, session_ref(r.nas_id, r.acct_session_id, r.generation)) for r in rows]


def apply_batch(db: DbSession, events: list[AcctEvent], received: datetime) -> BatchResult:
    """Store a batch of accounting records and apply the new ones; the caller commits."""
    result = BatchResult()
    fresh = _insert_new(db, events, received)
    result.new_records = len(fresh)
    run: list[AcctEvent] = []     # session events up to the next Accounting-On/Off, applied together
    for event in (e for e in events if id(e) in fresh):
        if event.status in ("on", "off"):
            _apply_sessions(db, run, result)
            run = []
            _close_nas_sessions(db, event, result)
        elif event.session_id:
            run.append(event)
    _apply_sessions(db, run, result)
    _upsert_usage(db, {k: v for k, v in result.usage.items() if any(v)})
    return result


def enter_slow_lane(db: DbSession, session_id: int, when: datetime, local_day: date) -> bool:
    """Mark an open session as in the slow lane from `when` (naive UTC) and count it in the rollups
    of `local_day`; False when it already was (a repeated CoA-ACK counts once) or is gone."""
    row = db.execute(update(SESSIONS).where(SESSIONS.c.id == session_id, SESSIONS.c.slow_since.is_(None),
                                            SESSIONS.c.is_open.is_(True))
                     .values(slow_since=when).returning(SESSIONS.c.user_id, SESSIONS.c.site_id)).first()
    if row is None:
        return False
    if row.user_id is not None:
        _upsert_usage(db, {(row.user_id, local_day, row.site_id): [0, 0, 0, 0, 1, 0]})
    return True


def leave_slow_lane(db: DbSession, session_id: int) -> None:
    """The session is back at full speed: its later traffic no longer counts as slow-lane traffic."""
    db.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(slow_since=None))
