"""Accounting applied to the record of truth: Start / Interim / Stop / On / Off, in one transaction.

A batch is first inserted into acct_records with its dedup digest; only records that were new
touch sessions and the usage_daily rollup, so a retransmitted or duplicated packet counts once.
Counters move by deltas against the session's last totals, never below zero.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import and_, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as DbSession

from portal.model import AcctRecord, Session, UsageDaily, UsageMonthly, User

STATUSES = {1: "start", 2: "stop", 3: "interim", 7: "on", 8: "off"}


@dataclass
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

    def digest(self) -> str:
        """Identity of this record: a retransmission with a new Acct-Delay-Time is the same record."""
        ident = (f"{self.nas_id}|{self.status}|{self.session_id}|{self.seconds}|{self.bytes_in}|"
                 f"{self.bytes_out}|{self.username}")
        if self.status in ("on", "off"):
            ident += f"|{self.event_time:%Y%m%d%H%M}"
        return hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()


@dataclass
class BatchResult:
    """What a committed batch changed, for the live counters in Redis."""

    # (user_id, local day, site_id) -> [sessions, seconds, bytes_down, bytes_up]
    usage: dict[tuple[int, date, int], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    touched: list[tuple[int, str]] = field(default_factory=list)   # (user_id, "nas:sid") still open
    closed: list[tuple[int, str]] = field(default_factory=list)    # (user_id, "nas:sid") ended
    new_records: int = 0


def _insert(db: DbSession):
    return (postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert)


def _record_rows(events: list[AcctEvent], received: datetime) -> list[dict]:
    return [{"dedup": e.digest(), "received_at": received, "nas_id": e.nas_id,
             "acct_session_id": e.session_id, "status": e.status, "user_id": e.user_id,
             "seconds": e.seconds, "bytes_in": e.bytes_in, "bytes_out": e.bytes_out,
             "delay": e.delay} for e in events]


def _insert_new(db: DbSession, events: list[AcctEvent], received: datetime) -> list[AcctEvent]:
    """Insert the records; return the events that were not already stored, in order."""
    unique: dict[str, AcctEvent] = {}
    for event in events:
        unique.setdefault(event.digest(), event)
    stmt = _insert(db)(AcctRecord).on_conflict_do_nothing(index_elements=["dedup"])
    inserted = {row[0] for row in db.execute(stmt.returning(AcctRecord.dedup),
                                             _record_rows(list(unique.values()), received))}
    return [e for d, e in unique.items() if d in inserted]


def _load_sessions(db: DbSession, events: list[AcctEvent]) -> dict[tuple[int, str], Session]:
    keys = sorted({(e.nas_id, e.session_id) for e in events if e.session_id})
    if not keys:
        return {}
    if db.get_bind().dialect.name == "postgresql":
        # FOR UPDATE: several `conecta radius` nodes may share one database.
        query = select(Session).where(tuple_(Session.nas_id, Session.acct_session_id).in_(keys)).with_for_update()
        return {(s.nas_id, s.acct_session_id): s for s in db.scalars(query)}
    found = {}
    for start in range(0, len(keys), 200):   # SQLite scans the table for a row-value IN; pairs use the index
        pairs = [and_(Session.nas_id == n, Session.acct_session_id == sid) for n, sid in keys[start:start + 200]]
        found.update({(s.nas_id, s.acct_session_id): s for s in db.scalars(select(Session).where(or_(*pairs)))})
    return found


def _ref(s: Session) -> str:
    return f"{s.nas_id}:{s.acct_session_id}"


def _new_session(e: AcctEvent) -> Session:
    started = e.event_time - timedelta(seconds=e.seconds)
    return Session(nas_id=e.nas_id, site_id=e.site_id, acct_session_id=e.session_id,
                   user_id=e.user_id, username=e.username[:64], mac=e.mac, framed_ip=e.framed_ip,
                   started_at=started, updated_at=e.event_time, seconds=0, bytes_in=0,
                   bytes_out=0, is_open=True)


def _apply_session_event(db: DbSession, e: AcctEvent, sessions: dict, result: BatchResult) -> None:
    key = (e.nas_id, e.session_id)
    s = sessions.get(key)
    created = s is None
    if created:
        s = _new_session(e)
        db.add(s)
        sessions[key] = s
    elif s.user_id is None and e.user_id is not None:
        s.user_id = e.user_id
    ds = max(0, e.seconds - s.seconds)
    d_in = max(0, e.bytes_in - s.bytes_in)
    d_out = max(0, e.bytes_out - s.bytes_out)
    s.seconds += ds
    s.bytes_in += d_in
    s.bytes_out += d_out
    s.updated_at = max(s.updated_at, e.event_time)
    s.framed_ip = s.framed_ip or e.framed_ip
    s.mac = s.mac or e.mac
    if e.status == "stop" and s.is_open:
        s.is_open, s.stopped_at, s.terminate_cause = False, e.event_time, e.terminate_cause
    if s.user_id is None:
        return  # an unknown person's usage is kept in the session, not in anyone's quota
    if created or ds or d_in or d_out:
        row = result.usage[(s.user_id, e.local_day, s.site_id)]
        row[0] += int(created)
        row[1] += ds
        row[2] += d_out
        row[3] += d_in
    (result.touched if s.is_open else result.closed).append((s.user_id, _ref(s)))


def _close_nas_sessions(db: DbSession, e: AcctEvent, result: BatchResult) -> None:
    cause = "NAS-Reboot" if e.status == "on" else "NAS-Request"
    rows = db.execute(select(Session.id, Session.user_id, Session.nas_id, Session.acct_session_id)
                      .where(Session.nas_id == e.nas_id, Session.is_open.is_(True))).all()
    if rows:
        db.execute(update(Session).where(Session.id.in_([r.id for r in rows]))
                   .values(is_open=False, stopped_at=e.event_time, terminate_cause=cause))
    for row in rows:
        if row.user_id is not None:
            result.closed.append((row.user_id, f"{row.nas_id}:{row.acct_session_id}"))


def _upsert_usage(db: DbSession, usage: dict) -> None:
    if not usage:
        return
    people = {row.id: row for row in db.execute(select(User.id, User.gender, User.age_band)
                                               .where(User.id.in_({uid for uid, _, _ in usage})))}
    undisclosed = ("undisclosed", "undisclosed")
    rows = [{"user_id": uid, "day": day, "site_id": site, "sessions": v[0], "seconds": v[1],
             "bytes_down": v[2], "bytes_up": v[3],
             "gender": (people[uid].gender if uid in people else undisclosed[0]),
             "age_band": (people[uid].age_band if uid in people else undisclosed[1])}
            for (uid, day, site), v in usage.items()]
    db.execute(_adding_upsert(db, UsageDaily, ["day", "user_id", "site_id"]), rows)
    monthly: dict[tuple, dict] = {}
    for row in rows:
        key = (row["day"].strftime("%Y-%m"), row["user_id"], row["site_id"])
        into = monthly.setdefault(key, {**row, "month": key[0], "sessions": 0, "seconds": 0, "bytes_down": 0,
                                        "bytes_up": 0})
        for metric in ("sessions", "seconds", "bytes_down", "bytes_up"):
            into[metric] += row[metric]
    db.execute(_adding_upsert(db, UsageMonthly, ["month", "user_id", "site_id"]),
               [{k: v for k, v in r.items() if k != "day"} for r in monthly.values()])


def _adding_upsert(db: DbSession, model: type, keys: list[str]):  # noqa: ANN202 - an Insert
    """INSERT … ON CONFLICT (keys) DO UPDATE adding the metrics (the snapshot columns stay)."""
    stmt = _insert(db)(model)
    ex = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=keys,
        set_={m: getattr(model, m) + getattr(ex, m) for m in ("sessions", "seconds", "bytes_down", "bytes_up")})


def close_stale(db: DbSession, before: datetime) -> list[tuple[int | None, str]]:
    """Close sessions whose NAS went silent (no update since `before`); return their refs."""
    rows = db.execute(select(Session.id, Session.user_id, Session.nas_id, Session.acct_session_id)
                      .where(Session.is_open.is_(True), Session.updated_at < before).limit(5000)).all()
    if rows:
        db.execute(update(Session).where(Session.id.in_([r.id for r in rows]))
                   .values(is_open=False, stopped_at=Session.updated_at, terminate_cause="Stale"))
    return [(r.user_id, f"{r.nas_id}:{r.acct_session_id}") for r in rows]


def apply_batch(db: DbSession, events: list[AcctEvent], received: datetime) -> BatchResult:
    """Store a batch of accounting records and apply the new ones; the caller commits."""
    result = BatchResult()
    new = _insert_new(db, events, received)
    result.new_records = len(new)
    sessions = _load_sessions(db, new)
    for event in new:
        if event.status in ("on", "off"):
            db.flush()
            _close_nas_sessions(db, event, result)
        elif event.session_id:
            _apply_session_event(db, event, sessions, result)
    db.flush()
    _upsert_usage(db, {k: v for k, v in result.usage.items() if any(v)})
    return result
