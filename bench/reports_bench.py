"""Issue 4 "Figures": the month's gender x age x site report over 5,000,000 accounting records.

Per backend (SQLite file in a temp dir, PostgreSQL database conecta_reports_bench on 127.0.0.1):
schema by portal.core.schema.upgrade; 200 sites (1-3 NAS each) and 100,000 people with the simulator's
gender and age mix; a month of sessions (Start, Interim-Update every 5 min, Stop; 1 % of Stops lost)
at a handful of sites per person, their records in time order, with a progress bar.

Ingest (--ingest bulk, the default): acct_records by COPY (PostgreSQL) / executemany in 100k chunks
(SQLite); sessions, usage_daily and usage_monthly from the same records by Replay, which redoes
apply_batch's arithmetic. prove() then runs every session of 1,500 sampled people through the real
portal.core.accounting.apply_batch (batches of 500, the RADIUS writer's) on a separate database and
asserts its acct_records, sessions, usage_daily and usage_monthly rows equal Replay's exactly. --ingest apply sends
all records through apply_batch instead (the real path; about 1-5k records/s here, too slow for 5M
within 15 minutes). Then, median of 5 runs after one warm-up:

  (a) reports.usage(db, first, last, ["site", "gender", "age_band"], min_cell=5)  (the rollup)
  (b) the same figures by a plain GROUP BY over raw acct_records joined to nas, sites and users

and (a), (b) and the generator's own totals must agree on every cell before suppression.
Prints a table, writes bench/out/reports.json. Also timed, 3 runs each: the query reports.usage ran
over usage_daily before the usage_monthly rollup (for comparison), and "prototypes" -- experiments
on the benchmark's own database (a query shape, a per-cell table), not what Conecta ships.

  .venv/bin/python bench/reports_bench.py [--records N] [--backend sqlite|postgresql|both]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import heapq
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import (  # noqa: E402
    Date,
    DateTime,
    Engine,
    TextClause,
    bindparam,
    create_engine,
    event,
    insert,
    inspect,
    text,
)
from sqlalchemy.orm import Session as DbSession  # noqa: E402
from tqdm import tqdm  # noqa: E402

from portal.core import reports  # noqa: E402
from portal.core.accounting import AcctEvent, apply_batch  # noqa: E402
from portal.core.db import make_engine, session_factory  # noqa: E402
from portal.core.model import SITE_KINDS, Nas, Site, User  # noqa: E402
from portal.core.schema import upgrade  # noqa: E402
from radius.simulate import AGE_MIX, GENDER_MIX, HOUR_WEIGHTS  # noqa: E402

OUT = ROOT / "bench" / "out"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = "conecta_reports_bench"
BY = ["site", "gender", "age_band"]
METRICS = list(reports.METRICS)
TARGET_S = 1.0
INTERIM_S = 300            # Acct-Interim-Interval
EPOCH = datetime(1970, 1, 1)

# The plain GROUP BY over raw accounting: a session's counters are cumulative, so its figures are
# the maxima of its records (the Stop, or the last Interim when the Stop was lost), summed per cell.
RAW_SQL = """
SELECT s.name AS site, u.gender AS gender, u.age_band AS age_band,
       COUNT(DISTINCT r.user_id) AS users, COUNT(*) AS sessions, SUM(r.seconds) AS seconds,
       SUM(r.bytes_out) AS bytes_down, SUM(r.bytes_in) AS bytes_up
FROM (SELECT nas_id, acct_session_id, user_id, MAX(seconds) AS seconds,
             MAX(bytes_in) AS bytes_in, MAX(bytes_out) AS bytes_out
      FROM acct_records
      WHERE received_at >= :start AND received_at < :end
        AND acct_session_id IS NOT NULL AND user_id IS NOT NULL
      GROUP BY nas_id, acct_session_id, user_id) AS r
JOIN nas n ON n.id = r.nas_id
JOIN sites s ON s.id = n.site_id
JOIN users u ON u.id = r.user_id
GROUP BY s.name, u.gender, u.age_band
ORDER BY s.name, u.gender, u.age_band
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=5_000_000, help="acct_records to generate (default 5000000)")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--month", default="2026-10", help="the month the sessions fall in (default 2026-10)")
    ap.add_argument("--tz", default="America/Mexico_City", help="the city's time zone (local days)")
    ap.add_argument("--ingest", choices=["bulk", "apply"], default="bulk",
                    help="bulk: COPY/executemany + usage_daily by the replayed apply_batch arithmetic, proven "
                         "against apply_batch on a sample (default); apply: every record through apply_batch")
    ap.add_argument("--batch", type=int, default=5000, help="events per apply_batch transaction with --ingest apply")
    ap.add_argument("--proof-people", type=int, default=1500,
                    help="people whose sessions go through apply_batch for the bulk proof (default 1500)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query after one warm-up (default 5)")
    ap.add_argument("--proto-runs", type=int, default=3, help="timed runs per prototype after one warm-up (default 3)")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--no-prototypes", action="store_true", help="skip the labelled index/query prototypes")
    ap.add_argument("--keep-db", action="store_true", help="leave the PostgreSQL database / SQLite file")
    ap.add_argument("--out", default=str(OUT / "reports.json"))
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# The world: sites, NAS and people


@dataclass
class World:
    sites: list[tuple[int, str]]                 # (id, name)
    nas_site: dict[int, int]                     # nas id -> site id
    site_nas: dict[int, list[int]]               # site id -> nas ids
    people: list[tuple[int, str, str, str]]      # (id, username, gender, age_band)
    macs: list[str] = field(default_factory=list)  # per person: the phone's Calling-Station-Id


def _pick(rng: random.Random, mix: list[tuple[str, int]], k: int) -> list[str]:
    return rng.choices([v for v, _ in mix], weights=[w for _, w in mix], k=k)


def build_world(n_sites: int, n_people: int, rng: random.Random) -> tuple[World, dict[str, list[dict]]]:
    """200 sites with 1-3 NAS each and 100,000 people with the simulator's gender and age mix."""
    kinds = rng.choices(SITE_KINDS, weights=[45, 20, 20, 15], k=n_sites)
    site_rows = [{"id": i, "name": f"{kind.capitalize()} {i:03d}", "kind": kind,
                  "policy": {"park": "parque", "plaza": "parque", "ejido": "ejido"}.get(kind, "centro-digital"),
                  "planned_gb_month": rng.choice([50.0, 100.0, 200.0, 500.0]),
                  "lat": 19.0 + rng.random(), "lon": -99.5 + rng.random(), "communities": None,
                  "created_at": datetime(2026, 1, 1)} for i, kind in enumerate(kinds, start=1)]
    nas_rows, nas_site, site_nas = [], {}, defaultdict(list)
    for site in site_rows:
        for _ in range(rng.choices([1, 2, 3], weights=[50, 35, 15])[0]):
            nid = len(nas_rows) + 1
            nas_rows.append({"id": nid, "name": f"ap-{nid:04d}", "site_id": site["id"],
                             "ip": f"10.{nid // 250}.{nid % 250}.1", "secret": f"s{nid:08d}",
                             "vendor": rng.choice(["coova", "opennds", "mikrotik", "unifi"]), "coa_port": 3799,
                             "uam_secret": None, "require_message_authenticator": True, "last_seen": None,
                             "created_at": datetime(2026, 1, 1), "login_hosts": None})
            nas_site[nid] = site["id"]
            site_nas[site["id"]].append(nid)
    genders = _pick(rng, GENDER_MIX, n_people)
    ages = _pick(rng, AGE_MIX, n_people)
    people = [(i + 1, f"bench-{i + 1:06d}", genders[i], ages[i]) for i in range(n_people)]
    user_rows = [{"id": uid, "username": name, "password": None, "policy": None, "gender": g, "age_band": a,
                  "community": None, "source": "portal", "disabled": False, "created_at": datetime(2026, 1, 1),
                  "pin_hash": None, "consent_version": "1", "consent_at": datetime(2026, 1, 1),
                  "guardian_consent": a == "0-17"} for uid, name, g, a in people]
    macs = [f"02-00-{uid >> 24 & 255:02X}-{uid >> 16 & 255:02X}-{uid >> 8 & 255:02X}-{uid & 255:02X}"
            for uid, _, _, _ in people]
    world = World([(r["id"], r["name"]) for r in site_rows], nas_site, dict(site_nas), people, macs)
    return world, {"sites": site_rows, "nas": nas_rows, "users": user_rows}


def write_world(engine: Engine, rows: dict[str, list[dict]]) -> None:
    """Sites, NAS and people by executemany in one transaction."""
    with engine.begin() as conn:
        conn.execute(insert(Site), rows["sites"])
        conn.execute(insert(Nas), rows["nas"])
        for i in range(0, len(rows["users"]), 20_000):
            conn.execute(insert(User), rows["users"][i:i + 20_000])
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("sites", "nas", "users"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT MAX(id) FROM {table}))"))


# ---------------------------------------------------------------------------------------------
# Sessions and their records


@dataclass
class Month:
    first: date
    last: date
    start: int                 # epoch seconds (UTC) of local midnight on the first
    end: int                   # epoch seconds (UTC) of local midnight after the last
    midnights: list[int]       # epoch seconds of each local midnight, for local_day

    def local_day(self, ts: int) -> date:
        return self.first + timedelta(days=bisect.bisect_right(self.midnights, ts) - 1)


def month_of(text_month: str, tz: ZoneInfo) -> Month:
    first, last = reports.month_bounds(text_month)
    days = [first + timedelta(days=d) for d in range((last - first).days + 2)]
    midnights = [int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()) for d in days]
    return Month(first, last, midnights[0], midnights[-1], midnights)


# (start epoch, person index, nas id, duration s, bytes_out total, bytes_in total, interims, has_stop)
Plan = tuple[int, int, int, int, int, int, int, bool]


@dataclass
class Truth:
    """The report's figures as the generator knows them, per (site id, gender, age_band)."""

    users: dict = field(default_factory=lambda: defaultdict(set))
    sums: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))


def plan_sessions(world: World, month: Month, n_records: int, rng: random.Random) -> tuple[list[Plan], Truth]:
    """Sessions until exactly n_records records: each person at a handful of sites, diurnal starts."""
    n_people = len(world.people)
    site_ids = [s for s, _ in world.sites]
    popularity = [1 / (rank + 1) ** 0.7 for rank in range(len(site_ids))]
    rng.shuffle(popularity)
    handful = []
    for _ in range(n_people):
        k = rng.choices([1, 2, 3, 4, 5], weights=[35, 30, 20, 10, 5])[0]
        chosen: list[int] = []
        while len(chosen) < k:
            s = rng.choices(site_ids, weights=popularity)[0]
            if s not in chosen:
                chosen.append(s)
        handful.append(chosen)
    prefer = [[1.0], [0.7, 0.3], [0.6, 0.25, 0.15], [0.55, 0.2, 0.15, 0.1], [0.5, 0.2, 0.1, 0.1, 0.1]]
    activity = [rng.lognormvariate(0, 0.8) for _ in range(n_people)]
    cum_activity = list(_accumulate(activity))
    days = (month.last - month.first).days + 1
    hours = list(range(24))
    plans: list[Plan] = []
    truth = Truth()
    total = 0
    bar = tqdm(total=n_records, desc="plan sessions", unit="rec", unit_scale=True, leave=False)
    while total < n_records:
        chunk = 10_000
        persons = rng.choices(range(n_people), cum_weights=cum_activity, k=chunk)
        start_hours = rng.choices(hours, weights=HOUR_WEIGHTS, k=chunk)
        for person, hour in zip(persons, start_hours):
            sites = handful[person]
            site = rng.choices(sites, weights=prefer[len(sites) - 1])[0]
            nas = rng.choice(world.site_nas[site])
            duration = int(min(4 * 3600, max(30, rng.lognormvariate(math.log(720), 0.9))))
            day = rng.randrange(days)
            start = month.midnights[day] + hour * 3600 + rng.randrange(3600)
            start = min(start, month.end - duration - 1)   # whole session inside the month
            interims = (duration - 1) // INTERIM_S
            has_stop = rng.random() >= 0.01                # 1 % of Stops are lost
            count = 1 + interims + has_stop
            if total + count > n_records:                  # the last session is cut short: no Stop
                count = n_records - total
                interims, has_stop = count - 1, False
            rate = rng.lognormvariate(math.log(30_000), 1.0)   # bytes/s down
            down = int(rate * duration)
            up = int(down * rng.uniform(0.05, 0.2))
            plans.append((start, person, nas, duration, down, up, interims, has_stop))
            seconds, got_down, got_up = _final(duration, down, up, interims, has_stop)
            uid, _, gender, age = world.people[person]
            key = (world.nas_site[nas], gender, age)
            truth.users[key].add(uid)
            cell = truth.sums[key]
            cell[0] += 1
            cell[1] += seconds
            cell[2] += got_down
            cell[3] += got_up
            total += count
            bar.update(count)
            if total >= n_records:
                break
    bar.close()
    plans.sort()
    return plans, truth


def _accumulate(values: list[float]) -> Iterator[float]:
    acc = 0.0
    for v in values:
        acc += v
        yield acc


def _counters(duration: int, down: int, up: int, seconds: int) -> tuple[int, int]:
    return down * seconds // duration, up * seconds // duration


def _final(duration: int, down: int, up: int, interims: int, has_stop: bool) -> tuple[int, int, int]:
    seconds = duration if has_stop else interims * INTERIM_S
    return (seconds, *_counters(duration, down, up, seconds))


def records(plans: list[Plan], indices: Iterable[int] | None = None) -> Iterator[tuple[int, int, int]]:
    """(epoch, session index, step) of every record (of `indices`, ascending), in time order.

    Step 0 is the Start, k the k-th Interim-Update, -1 the Stop.
    """
    heap: list[tuple[int, int, int]] = []
    for index in range(len(plans)) if indices is None else indices:
        start = plans[index][0]
        while heap and heap[0][0] <= start:
            yield _advance(heap, plans)
        yield start, index, 0
        _push_next(heap, plans, index, 0)
    while heap:
        yield _advance(heap, plans)


def _push_next(heap: list, plans: list[Plan], index: int, step: int) -> None:
    start, _, _, duration, _, _, interims, has_stop = plans[index]
    if step == -1:
        return
    if step < interims:
        heapq.heappush(heap, (start + (step + 1) * INTERIM_S, index, step + 1))
    elif has_stop:
        heapq.heappush(heap, (start + duration, index, -1))


def _advance(heap: list, plans: list[Plan]) -> tuple[int, int, int]:
    item = heapq.heappop(heap)
    _push_next(heap, plans, item[1], item[2])
    return item


def make_event(world: World, month: Month, plans: list[Plan], ts: int, index: int, step: int) -> AcctEvent:
    """The AcctEvent the RADIUS edge would hand the writer for this record."""
    start, person, nas, duration, down, up, _, _ = plans[index]
    uid, username, _, _ = world.people[person]
    seconds = duration if step == -1 else step * INTERIM_S
    got_down, got_up = _counters(duration, down, up, seconds)
    status = "start" if step == 0 else "stop" if step == -1 else "interim"
    return AcctEvent(nas_id=nas, site_id=world.nas_site[nas], status=status, session_id=f"{index:08x}",
                     username=username, user_id=uid, mac=world.macs[person],
                     framed_ip=_framed_ip(index),
                     seconds=seconds, bytes_in=got_up, bytes_out=got_down,
                     terminate_cause="User-Request" if step == -1 else None,
                     event_time=EPOCH + timedelta(seconds=ts), local_day=month.local_day(ts), delay=0)


def ingest(engine: Engine, world: World, month: Month, plans: list[Plan], n_records: int, batch: int,
           indices: list[int] | None = None, desc: str = "apply_batch") -> dict:
    """Records through apply_batch in time order, `batch` per transaction, as the RADIUS writer does."""
    factory = session_factory(engine)
    events: list[AcctEvent] = []
    stored = 0
    began = time.perf_counter()

    def flush() -> int:
        with factory() as db, db.begin():
            result = apply_batch(db, events, events[-1].event_time)   # received: the batch's last packet
        return result.new_records

    with tqdm(total=n_records, desc=f"{desc} {engine.dialect.name}", unit="rec", unit_scale=True) as bar:
        for ts, index, step in records(plans, indices):
            events.append(make_event(world, month, plans, ts, index, step))
            if len(events) >= batch:
                stored += flush()
                bar.update(len(events))
                events = []
        if events:
            stored += flush()
            bar.update(len(events))
    elapsed = time.perf_counter() - began
    if stored != n_records:
        raise SystemExit(f"apply_batch stored {stored} of {n_records} records (dedup collision?)")
    return {"path": "apply_batch", "batch": batch, "seconds": round(elapsed, 1),
            "records_per_s": round(n_records / elapsed)}


class Replay:
    """apply_batch's arithmetic in bulk, on plain tuples: per session the last counters, deltas never
    below zero, the session counted on the local day of its first record, summed per (user, local day,
    site). prove() checks every row it yields or leaves against what apply_batch stores."""

    def __init__(self, world: World, month: Month, plans: list[Plan]) -> None:
        self.world, self.month, self.plans = world, month, plans
        # index -> [seconds, bytes_in, bytes_out, started_at, updated_at, stopped_at]
        self.state: dict[int, list] = {}
        self.usage: dict[tuple[int, date, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def feed(self, ts: int, index: int, step: int) -> tuple:
        """One record: update the rollup and return its acct_records row (received_at = event time)."""
        _, person, nas, duration, down, up, _, _ = self.plans[index]
        uid, username, _, _ = self.world.people[person]
        seconds = duration if step == -1 else step * INTERIM_S
        got_down, got_up = _counters(duration, down, up, seconds)
        status = "start" if step == 0 else "stop" if step == -1 else "interim"
        sid = f"{index:08x}"
        when = EPOCH + timedelta(seconds=ts)
        dedup = hashlib.blake2b(f"{nas}|{status}|{sid}|{seconds}|{got_up}|{got_down}|{username}".encode(),
                                digest_size=16).hexdigest()   # AcctEvent.digest(), checked by prove()
        s = self.state.get(index)
        created = s is None
        if created:
            s = self.state[index] = [0, 0, 0, when - timedelta(seconds=seconds), when, None]
        ds, d_in, d_out = max(0, seconds - s[0]), max(0, got_up - s[1]), max(0, got_down - s[2])
        s[0] += ds
        s[1] += d_in
        s[2] += d_out
        if when > s[4]:
            s[4] = when
        if status == "stop" and s[5] is None:
            s[5] = when
        if created or ds or d_in or d_out:
            row = self.usage[(uid, self.month.local_day(ts), self.world.nas_site[nas])]
            row[0] += created
            row[1] += ds
            row[2] += d_out
            row[3] += d_in
        return dedup, when, nas, sid, status, uid, seconds, got_up, got_down, 0

    def usage_rows(self) -> list[tuple]:
        """(day, user_id, site_id, sessions, seconds, bytes_down, bytes_up, gender, age_band), PK order."""
        demo = {uid: (g, a) for uid, _, g, a in self.world.people}
        return sorted((day, uid, site, *v, *demo[uid]) for (uid, day, site), v in self.usage.items() if any(v))

    def monthly_rows(self) -> list[tuple]:
        """usage_monthly as _upsert_usage keeps it: the daily rows summed per (local month, user, site)."""
        months: dict[tuple[str, int, int], list] = {}
        for day, uid, site, *values, gender, age in self.usage_rows():
            row = months.setdefault((day.strftime("%Y-%m"), uid, site), [0, 0, 0, 0, gender, age])
            for i, v in enumerate(values):
                row[i] += v
        return sorted((*key, *v) for key, v in months.items())

    def session_rows(self) -> list[tuple]:
        """The sessions table as apply_batch leaves it (close_stale is the writer's, not ingest's)."""
        rows = []
        for index, (seconds, b_in, b_out, started, updated, stopped) in sorted(self.state.items()):
            _, person, nas, _, _, _, _, _ = self.plans[index]
            uid, username, _, _ = self.world.people[person]
            rows.append((nas, self.world.nas_site[nas], f"{index:08x}", uid, username, self.world.macs[person],
                         _framed_ip(index), started, updated, stopped, seconds, b_in, b_out,
                         None if stopped is None else "User-Request", stopped is None))
        return rows


def _framed_ip(index: int) -> str:
    return f"10.64.{index >> 8 & 255}.{index & 255}"


ACCT_COLUMNS = "dedup, received_at, nas_id, acct_session_id, status, user_id, seconds, bytes_in, bytes_out, delay"
SESSION_COLUMNS = ("nas_id, site_id, acct_session_id, user_id, username, mac, framed_ip, started_at, updated_at, "
                   "stopped_at, seconds, bytes_in, bytes_out, terminate_cause, is_open")
USAGE_COLUMNS = "day, user_id, site_id, sessions, seconds, bytes_down, bytes_up, gender, age_band"
MONTHLY_COLUMNS = "month, user_id, site_id, sessions, seconds, bytes_down, bytes_up, gender, age_band"


def _sqlite_text(value: datetime | date | None) -> str | None:
    """What SQLAlchemy's SQLite DateTime / Date types store, so range filters compare like the app's."""
    if value is None or type(value) is date:
        return value and value.isoformat()
    return value.isoformat(" ", "microseconds")


# The columns of each bulk-loaded table that SQLite stores as text dates / timestamps.
SQLITE_DATES = {"acct_records": (1,), "sessions": (7, 8, 9), "usage_daily": (0,), "usage_monthly": ()}


class Loader:
    """Bulk writes on one raw connection: COPY on PostgreSQL, executemany in big chunks on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.pg = engine.dialect.name == "postgresql"
        self.raw = engine.raw_connection()
        if not self.pg:   # this connection only (dropped after loading): a big page cache for the index
            self.raw.driver_connection.execute("PRAGMA cache_size = -1000000")

    def write(self, table: str, columns: str, rows: list[tuple]) -> None:
        if self.pg:
            with self.raw.driver_connection.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        else:
            marks = ", ".join("?" * (columns.count(",") + 1))
            dated = SQLITE_DATES[table]
            fixed = []
            for row in rows:
                row = list(row)
                for i in dated:
                    row[i] = _sqlite_text(row[i])
                fixed.append(row)
            self.raw.driver_connection.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", fixed)
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()


def has_monthly(engine: Engine) -> bool:
    """Whether the schema has the usage_monthly rollup (migration 0005) that apply_batch keeps too."""
    return inspect(engine).has_table("usage_monthly")


def bulk_load(engine: Engine, world: World, month: Month, plans: list[Plan], n_records: int) -> dict:
    """acct_records, sessions, usage_daily (and usage_monthly) in bulk; the rollups by Replay (see prove())."""
    began = time.perf_counter()
    replay = Replay(world, month, plans)
    loader = Loader(engine)
    chunk: list[tuple] = []
    with tqdm(total=n_records, desc=f"bulk acct_records {engine.dialect.name}", unit="rec", unit_scale=True) as bar:
        for ts, index, step in records(plans):
            chunk.append(replay.feed(ts, index, step))
            if len(chunk) >= 100_000:
                loader.write("acct_records", ACCT_COLUMNS, chunk)
                bar.update(len(chunk))
                chunk = []
        if chunk:
            loader.write("acct_records", ACCT_COLUMNS, chunk)
            bar.update(len(chunk))
    acct_s = time.perf_counter() - began
    tables = [("sessions", SESSION_COLUMNS, replay.session_rows()), ("usage_daily", USAGE_COLUMNS, replay.usage_rows())]
    if has_monthly(engine):
        tables.append(("usage_monthly", MONTHLY_COLUMNS, replay.monthly_rows()))
    del replay
    for table, columns, rows in tables:
        for i in tqdm(range(0, len(rows), 200_000), desc=f"bulk {table}", leave=False):
            loader.write(table, columns, rows[i:i + 200_000])
    loader.close()
    engine.dispose()   # no pooled connection keeps the loader's settings into the measurements
    elapsed = time.perf_counter() - began
    return {"path": "bulk (COPY)" if engine.dialect.name == "postgresql" else "bulk (executemany)",
            "seconds": round(elapsed, 1), "acct_records_s": round(acct_s, 1),
            "records_per_s": round(n_records / elapsed)}


def prove(name: str, world: World, rows: dict[str, list[dict]], month: Month, plans: list[Plan],
          people: int, rng: random.Random, keep: bool) -> dict:
    """Every session of a sample of people through apply_batch (batches of 500, the writer's) on a
    separate database, and the rows it leaves must equal what the bulk path computes for them."""
    sample = set(rng.sample(range(len(world.people)), min(people, len(world.people))))
    indices = [i for i, p in enumerate(plans) if p[1] in sample]
    replay = Replay(world, month, plans)
    expected_acct = sorted((r[0], *r[2:]) for r in (replay.feed(*rec) for rec in records(plans, indices)))
    backend = open_backend(name, keep, suffix="_proof")
    try:
        upgrade(backend.engine)
        write_world(backend.engine, rows)
        run = ingest(backend.engine, world, month, plans, len(expected_acct), 500, indices, "proof: apply_batch")
        with backend.engine.connect() as conn:
            got_usage = sorted(tuple(r) for r in conn.execute(text(
                f"SELECT {USAGE_COLUMNS} FROM usage_daily")).all())
            got_sessions = sorted(tuple(r) for r in conn.execute(text(
                f"SELECT {SESSION_COLUMNS} FROM sessions")).all())
            got_acct = sorted(tuple(r) for r in conn.execute(text(
                "SELECT dedup, nas_id, acct_session_id, status, user_id, seconds, bytes_in, bytes_out, delay "
                "FROM acct_records")).all())
            monthly = has_monthly(backend.engine)
            got_monthly = sorted(tuple(r) for r in conn.execute(text(
                f"SELECT {MONTHLY_COLUMNS} FROM usage_monthly")).all()) if monthly else []
    finally:
        backend.cleanup()
    got_usage = [(_as_date(r[0]), *r[1:]) for r in got_usage]
    got_sessions = sorted((*r[:7], *(_as_datetime(v) for v in r[7:10]), *r[10:14], bool(r[14]))
                          for r in got_sessions)
    want_usage, want_sessions = replay.usage_rows(), sorted(replay.session_rows())
    result = {"people": len(sample), "sessions": len(indices), "records": len(expected_acct),
              "apply_batch": run, "usage_daily_rows": len(got_usage),
              "usage_daily_equal": got_usage == want_usage, "sessions_equal": got_sessions == want_sessions,
              "acct_records_equal": got_acct == expected_acct}
    if monthly:
        result["usage_monthly_rows"] = len(got_monthly)
        result["usage_monthly_equal"] = got_monthly == replay.monthly_rows()
    if not all(v for k, v in result.items() if k.endswith("_equal")):
        diff = sorted(set(got_usage) ^ set(want_usage))[:5]
        raise AssertionError(f"bulk path differs from apply_batch: {result}; usage rows differing: {diff}")
    return result


def _as_date(value: object) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _as_datetime(value: object) -> object:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# The two queries


@dataclass
class Backend:
    name: str
    engine: Engine
    cleanup: Callable[[], None]
    where: str


def open_backend(name: str, keep: bool, suffix: str = "") -> Backend:
    if name == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix=f"conecta-reports-bench{suffix}-"))
        path = tmp / "conecta.db"
        engine = make_engine(f"sqlite:///{path}")

        def cleanup() -> None:
            engine.dispose()
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
        return Backend(name, engine, cleanup, str(path))
    db_name = PG_DB + suffix
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {db_name}"))
    engine = make_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}")

    def cleanup() -> None:
        engine.dispose()
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        admin.dispose()
    return Backend(name, engine, cleanup, db_name)


def rollup_report(engine: Engine, month: Month, min_cell: int) -> list[dict]:
    with session_factory(engine)() as db:
        return reports.usage(db, month.first, month.last, BY, min_cell=min_cell)


def raw_statement(month: Month) -> tuple[TextClause, dict]:
    """RAW_SQL with DateTime-typed bounds: the UTC instants of the local month's first and next midnight."""
    start, end = EPOCH + timedelta(seconds=month.start), EPOCH + timedelta(seconds=month.end)
    stmt = text(RAW_SQL).bindparams(bindparam("start", type_=DateTime), bindparam("end", type_=DateTime))
    return stmt, {"start": start, "end": end}


def raw_report(engine: Engine, month: Month) -> list[dict]:
    stmt, params = raw_statement(month)
    with engine.connect() as conn:
        rows = conn.execute(stmt, params).mappings().all()
    return [{**{d: r[d] for d in BY}, **{m: int(r[m] or 0) for m in METRICS}} for r in rows]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, list[float], object]:
    """One warm-up, then `runs` timed calls; (median, all, last result)."""
    result = fn()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), times, result


def cells(rows: list[dict]) -> dict[tuple, dict]:
    return {tuple(r[d] for d in BY): {m: r[m] for m in METRICS} for r in rows if r.get("row", "cell") == "cell"}


def truth_cells(truth: Truth, world: World) -> dict[tuple, dict]:
    names = dict(world.sites)
    return {(names[site], g, a): {"users": len(truth.users[(site, g, a)]), "sessions": v[0], "seconds": v[1],
                                  "bytes_down": v[2], "bytes_up": v[3]}
            for (site, g, a), v in truth.sums.items()}


def compare(left: dict, right: dict, what: str) -> list[str]:
    problems = [f"{what}: cell {k} only on the left" for k in left.keys() - right.keys()]
    problems += [f"{what}: cell {k} only on the right" for k in right.keys() - left.keys()]
    problems += [f"{what}: cell {k}: {left[k]} != {right[k]}" for k in left.keys() & right.keys()
                 if left[k] != right[k]]
    return problems


def captured_sql(engine: Engine, fn: Callable[[], object]) -> tuple[str, object]:
    """The statement and parameters reports.usage sends, for EXPLAIN."""
    seen: list[tuple[str, object]] = []

    def grab(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001
        seen.append((statement, parameters))
    event.listen(engine, "before_cursor_execute", grab)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return seen[-1]


def explain(engine: Engine, fn: Callable[[], object], setup: str | None = None) -> list[str]:
    """The plan of the last statement `fn` sends: EXPLAIN (ANALYZE, BUFFERS) / EXPLAIN QUERY PLAN."""
    statement, parameters = captured_sql(engine, fn)
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if setup:
            cur.execute(setup)
        cur.execute(prefix + statement, parameters)
        return [" | ".join(str(c) for c in row) for row in cur.fetchall()]
    finally:
        raw.rollback()
        raw.close()


def sizes(engine: Engine) -> dict:
    rollups = ["usage_daily", "usage_monthly"] if has_monthly(engine) else ["usage_daily"]
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                  for t in ("acct_records", "sessions", *rollups, "users", "sites", "nas")}
        if engine.dialect.name == "postgresql":
            mb = {t: round(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one() / 2**20, 1)
                  for t in ("acct_records", *rollups)}
        else:
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            size = conn.execute(text("PRAGMA page_size")).scalar_one()
            mb = {"database_file": round(pages * size / 2**20, 1)}
    return {"rows": counts, "mb": mb}


# ---------------------------------------------------------------------------------------------
# The run


def log(name: str, what: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {name}: {what}", file=sys.stderr, flush=True)


def run_backend(name: str, args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    month = month_of(args.month, ZoneInfo(args.tz))
    backend = open_backend(name, args.keep_db)
    out: dict = {"backend": name, "database": backend.where, "records": args.records, "people": args.people,
                 "sites": args.sites, "month": args.month, "tz": args.tz}
    try:
        began = time.perf_counter()
        upgrade(backend.engine)
        world, world_rows = build_world(args.sites, args.people, rng)
        write_world(backend.engine, world_rows)
        out["nas"] = len(world.nas_site)
        plans, truth = plan_sessions(world, month, args.records, rng)
        out["sessions"] = len(plans)
        out["setup_s"] = round(time.perf_counter() - began, 1)
        log(name, f"{len(plans):,} sessions planned, loading")
        if args.ingest == "apply":
            out["ingest"] = ingest(backend.engine, world, month, plans, args.records, args.batch)
        else:
            out["ingest"] = bulk_load(backend.engine, world, month, plans, args.records)
            log(name, f"bulk load done {out['ingest']}; proof against apply_batch")
            out["proof"] = prove(name, world, world_rows, month, plans, args.proof_people, rng, args.keep_db)
        del plans
        if name == "postgresql":    # what autovacuum does by itself shortly after a load this size
            began = time.perf_counter()
            with backend.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
            out["vacuum_analyze_s"] = round(time.perf_counter() - began, 1)
        # SQLite: Conecta never runs ANALYZE / PRAGMA optimize, so the report is timed without statistics.
        out["size"] = sizes(backend.engine)
        out["monthly"] = has_monthly(backend.engine)
        log(name, f"measuring; {out['size']}")
        raw_rows = measure(backend.engine, month, args, out)
        check(backend.engine, month, truth, world, raw_rows, out)
        log(name, f"report {out['report_s']} s, raw {out['raw_s']} s, cells agree")
        if not args.no_prototypes:
            prototypes(backend.engine, month, args, out)
    finally:
        backend.cleanup()
    return out


def measure(engine: Engine, month: Month, args: argparse.Namespace, out: dict) -> list[dict]:
    median, times, rows = timed(lambda: rollup_report(engine, month, 5), args.runs)
    out["report_s"], out["report_runs_s"] = round(median, 4), [round(t, 4) for t in times]
    out["report_cells"] = sum(1 for r in rows if r["row"] == "cell")
    out["report_suppressed_cells"] = sum(1 for r in rows if r["row"] == "cell" and r["suppressed"])
    median, times, raw_rows = timed(lambda: raw_report(engine, month), args.runs)
    out["raw_s"], out["raw_runs_s"] = round(median, 4), [round(t, 4) for t in times]
    out["ratio"] = round(out["raw_s"] / out["report_s"], 1)
    out["pass"] = out["report_s"] < TARGET_S
    out["report_sql"] = captured_sql(engine, lambda: rollup_report(engine, month, 5))[0]
    out["rollup_table"] = "usage_monthly" if "usage_monthly" in out["report_sql"] else "usage_daily"
    out["rollup_rows"] = out["size"]["rows"][out["rollup_table"]]   # all of them are the month's
    out["report_plan"] = explain(engine, lambda: rollup_report(engine, month, 5))
    out["raw_sql"] = RAW_SQL.strip()
    out["raw_plan"] = explain(engine, lambda: raw_report(engine, month))
    return raw_rows


def check(engine: Engine, month: Month, truth: Truth, world: World, raw_rows: list[dict], out: dict) -> None:
    """Rollup, raw GROUP BY and the generator's own totals agree on every cell, before suppression."""
    rollup = cells(rollup_report(engine, month, 0))
    raw = cells(raw_rows)
    expected = truth_cells(truth, world)
    problems = compare(rollup, raw, "rollup vs raw") + compare(rollup, expected, "rollup vs generator")
    out["cells_compared"] = len(rollup)
    out["totals"] = {m: sum(c[m] for c in rollup.values()) for m in METRICS if m != "users"}
    total = rollup_report(engine, month, 0)[-1]
    if {m: total[m] for m in out["totals"]} != out["totals"]:
        problems.append(f"the total row {total} is not the sum of the cells {out['totals']}")
    out["agree"] = not problems
    if problems:
        out["disagreements"] = problems[:20]
        raise AssertionError(f"{len(problems)} disagreements, e.g. {problems[:3]}")


# ---------------------------------------------------------------------------------------------
# Comparisons and prototypes (labelled): the daily query is what reports.usage ran before the
# usage_monthly rollup; the others are experiments on the benchmark's own database, not Conecta's code.

# reports.usage before usage_monthly (commit cb1c61f): the same figures from usage_daily.
DAILY_SQL = """
SELECT sites.name AS site, usage_daily.gender AS gender, usage_daily.age_band AS age_band,
       COUNT(DISTINCT usage_daily.user_id) AS users, SUM(usage_daily.sessions) AS sessions,
       SUM(usage_daily.seconds) AS seconds, SUM(usage_daily.bytes_down) AS bytes_down,
       SUM(usage_daily.bytes_up) AS bytes_up
FROM usage_daily JOIN sites ON sites.id = usage_daily.site_id
WHERE usage_daily.day >= :first AND usage_daily.day <= :last
GROUP BY sites.name, usage_daily.gender, usage_daily.age_band
ORDER BY sites.name, usage_daily.gender, usage_daily.age_band
"""
# usage_monthly has one row per (month, person, site) carrying one gender / age band snapshot, so
# within one month COUNT(*) of a (site, gender, age band) cell is its distinct people: no
# COUNT(DISTINCT), and the grouping is on site_id (an integer) with the 200 names joined after.
MONTHLY_SQL = """
SELECT s.name AS site, c.gender AS gender, c.age_band AS age_band, c.users AS users, c.sessions AS sessions,
       c.seconds AS seconds, c.bytes_down AS bytes_down, c.bytes_up AS bytes_up
FROM (SELECT site_id, gender, age_band, COUNT(*) AS users, SUM(sessions) AS sessions, SUM(seconds) AS seconds,
             SUM(bytes_down) AS bytes_down, SUM(bytes_up) AS bytes_up
      FROM usage_monthly WHERE month = :month
      GROUP BY site_id, gender, age_band) AS c
JOIN sites s ON s.id = c.site_id
ORDER BY s.name, c.gender, c.age_band
"""
CUBE_TABLE = """
CREATE TABLE proto_usage_cube (
    month VARCHAR(7) NOT NULL, site_id INTEGER NOT NULL, gender VARCHAR(12) NOT NULL,
    age_band VARCHAR(12) NOT NULL, users INTEGER NOT NULL, sessions INTEGER NOT NULL, seconds BIGINT NOT NULL,
    bytes_down BIGINT NOT NULL, bytes_up BIGINT NOT NULL, PRIMARY KEY (month, site_id, gender, age_band))
"""
CUBE_FILL = """
INSERT INTO proto_usage_cube
SELECT month, site_id, gender, age_band, COUNT(*), SUM(sessions), SUM(seconds), SUM(bytes_down), SUM(bytes_up)
FROM usage_monthly GROUP BY month, site_id, gender, age_band
"""
CUBE_SQL = """
SELECT s.name AS site, c.gender AS gender, c.age_band AS age_band, c.users AS users, c.sessions AS sessions,
       c.seconds AS seconds, c.bytes_down AS bytes_down, c.bytes_up AS bytes_up
FROM proto_usage_cube c JOIN sites s ON s.id = c.site_id
WHERE c.month = :month
ORDER BY s.name, c.gender, c.age_band
"""
JIT_OFF = "SET jit = off"


def sql_report(engine: Engine, sql: str, month: Month, setup: str | None = None) -> list[dict]:
    params = {k: v for k, v in {"first": month.first, "last": month.last,
                                "month": month.first.strftime("%Y-%m")}.items() if f":{k}" in sql}
    stmt = text(sql).bindparams(*(bindparam(k, type_=Date) for k in params if k != "month"))
    with engine.connect() as conn:
        if setup:
            conn.execute(text(setup))
        rows = conn.execute(stmt, params).mappings().all()
    return [{**{d: r[d] for d in BY}, **{m: int(r[m] or 0) for m in METRICS}} for r in rows]


def usage_with(engine: Engine, month: Month, setup: str) -> list[dict]:
    """reports.usage unchanged, on a connection where `setup` ran first (e.g. SET jit = off)."""
    with engine.connect() as conn:
        conn.execute(text(setup))
        with DbSession(bind=conn) as db:
            rows = reports.usage(db, month.first, month.last, BY, min_cell=5)
        conn.rollback()
    return rows


def prototypes(engine: Engine, month: Month, args: argparse.Namespace, out: dict) -> None:
    reference = cells(rollup_report(engine, month, 0))        # for the SQL variants (no suppression)
    reference_suppressed = rollup_report(engine, month, 5)     # for reports.usage itself
    pg = engine.dialect.name == "postgresql"
    protos: dict = {}

    def trial(key: str, what: str, fn: Callable[[], list[dict]], setup: str | None = None, **extra: object) -> None:
        median, times, rows = timed(fn, args.proto_runs)
        agrees = rows == reference_suppressed if rows and "suppressed" in rows[0] else cells(rows) == reference
        protos[key] = {"what": what, "median_s": round(median, 4), "runs_s": [round(t, 4) for t in times],
                       "agrees": agrees, **extra}
        protos[key]["plan"] = explain(engine, fn, setup)
        print(f"  {engine.dialect.name} {key}: {median:.3f} s", file=sys.stderr, flush=True)

    trial("daily_rollup_query", "comparison: the query reports.usage ran before usage_monthly -- COUNT(DISTINCT) "
          "over the month's usage_daily rows, grouped by site name", lambda: sql_report(engine, DAILY_SQL, month))
    if not out.get("monthly"):
        out["prototypes"] = protos
        return
    if pg:
        trial("jit_off", "prototype: reports.usage unchanged, SET jit = off on its connection (server default on)",
              lambda: usage_with(engine, month, JIT_OFF), JIT_OFF)
    trial("monthly_count_star", "prototype query on usage_monthly: COUNT(*) per cell instead of COUNT(DISTINCT), "
          "grouped by site_id before joining site names", lambda: sql_report(engine, MONTHLY_SQL, month))
    began = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(CUBE_TABLE))
        conn.execute(text(CUBE_FILL))
        cube_rows = conn.execute(text("SELECT COUNT(*) FROM proto_usage_cube")).scalar_one()
    _stats(engine, "proto_usage_cube")
    build = round(time.perf_counter() - began, 1)
    trial("monthly_cube", "prototype table: one row per (month, site, gender, age band), users counted on ingest "
          "when a person's usage_monthly row is first inserted", lambda: sql_report(engine, CUBE_SQL, month),
          rows=cube_rows, build_s=build)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE proto_usage_cube"))
    out["prototypes"] = protos


def _stats(engine: Engine, table: str | None = None) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(f"VACUUM ANALYZE {table or ''}"))
        else:
            conn.execute(text("ANALYZE"))
            conn.commit()


def table(results: list[dict]) -> str:
    header = ["backend", "records", "rollup rows read", "report s", "raw GROUP BY s", "ratio", "< 1 s", "cells agree"]
    lines = [[r["backend"], f"{r['records']:,}", f"{r['rollup_rows']:,} ({r['rollup_table']})", f"{r['report_s']:.3f}",
              f"{r['raw_s']:.3f}", f"{r['ratio']:.1f}x", "PASS" if r["pass"] else "FAIL",
              "yes" if r.get("agree") else "NO"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(header)]
    text_lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    text_lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in lines]
    return "\n".join(text_lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for name in names:
        began = time.perf_counter()
        result = run_backend(name, args)
        result["wall_s"] = round(time.perf_counter() - began, 1)
        results.append(result)
        print(f"{name}: ingest {result['ingest']['seconds']} s ({result['ingest']['records_per_s']:,} rec/s), "
              f"report {result['report_s']:.3f} s, raw {result['raw_s']:.3f} s, wall {result['wall_s']} s",
              flush=True)
    print()
    print(table(results))
    for r in results:
        for key, proto in r.get("prototypes", {}).items():
            print(f"  {r['backend']} {key}: {proto['median_s']:.3f} s (agrees: {proto['agrees']})")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": " ".join(["bench/reports_bench.py", *(argv if argv is not None else sys.argv[1:])]),
               "target_s": TARGET_S, "results": results}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")
    return 0 if all(r["pass"] and r.get("agree") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
