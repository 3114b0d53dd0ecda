"""`conecta simulate` fills the reports through the real RADIUS path."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from portal.core import reports
from portal.core.model import AcctRecord, Nas
from radius import simulate


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
    assert sum(r["sessions"] for r in rows if r["row"] == "cell") == played - rejected == rows[-1]["sessions"]


def test_make_run_fills_the_demo_once(settings, redis_url, db_factory):
    import os
    import subprocess
    import sys
    env = {**os.environ, "CONECTA_DATABASE_URL": settings.database_url, "CONECTA_DATA_DIR": str(settings.data_dir),
           "CONECTA_REDIS_URL": redis_url}

    def simulate_if_empty() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "portal", "simulate", "--if-empty", "--people", "8",
                               "--days", "2"], env=env, capture_output=True, text=True, timeout=120)

    first = simulate_if_empty()
    assert first.returncode == 0 and "visits played through RADIUS" in first.stdout, first.stderr
    with db_factory() as db:
        stored = db.scalar(select(func.count()).select_from(AcctRecord))
    second = simulate_if_empty()
    assert second.returncode == 0 and "no demo data added" in second.stdout
    with db_factory() as db:
        assert stored > 0 and db.scalar(select(func.count()).select_from(AcctRecord)) == stored
