"""`conecta simulate` fills the reports through the real RADIUS path."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from portal import reports, simulate
from portal.model import AcctRecord, Nas


def test_simulation_lands_in_reports(settings, policies, db_factory, redis_client):
    seen = []
    played, rejected = simulate.run(settings, policies, db_factory, redis_client, people=12, days=3, seed=1,
                                    progress=seen.append, total=seen.append)
    assert played > 0 and played == len(seen) - 1
    today = datetime.now(settings.tz).date()
    with db_factory() as db:
        assert db.scalar(select(func.count()).select_from(Nas).where(Nas.name.like("sim-ap-%"))) == 6
        stops = db.scalar(select(func.count()).select_from(AcctRecord).where(AcctRecord.status == "stop"))
        rows = reports.usage(db, today - timedelta(days=10), today, ["site"], min_cell=0)
    assert stops == played - rejected
    assert sum(r["sessions"] for r in rows) == played - rejected
