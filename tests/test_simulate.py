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


def test_the_simulated_access_points_obey_coa_and_disconnect_requests(dictionary):
    """As CoovaChilli does: a playing session's rate changes on a CoA-Request, it ends on a Disconnect-Request
    (ACKs), an unknown session is NAKed with Error-Cause 503, and a request signed with another secret is
    dropped."""
    from pyrad import packet

    from portal.core.coa import exchange
    from radius.simdesk import CoaDesk
    secret = "sim-secret-0123456789abcdef"
    desk = CoaDesk({"127.0.1.250": secret}, dictionary)
    desk.start()
    port = desk.ports["127.0.1.250"]

    def ask(code: int, sid: str, key: str = secret, **rates) -> object:
        attrs = [("User-Name", "sim-00001"), ("Acct-Session-Id", sid), *rates.items()]
        return exchange("127.0.1.250", port, key.encode(), dictionary, code, attrs, backoff=(0.3,))
    try:
        state = desk.start_session("a1b2c3", 5_000_000)
        slow = ask(packet.CoARequest, "a1b2c3", **{"ChilliSpot-Bandwidth-Max-Down": 256,
                                                   "ChilliSpot-Bandwidth-Max-Up": 128})
        assert (slow.result, state.down, state.ended) == ("ack", 256_000, False)
        unknown = ask(packet.CoARequest, "ffffff", **{"ChilliSpot-Bandwidth-Max-Down": 256})
        assert (unknown.result, unknown.error_cause) == ("nak", 503)
        assert ask(packet.DisconnectRequest, "a1b2c3", key="another-secret-0123456789").result == "timeout"
        assert not state.ended
        assert ask(packet.DisconnectRequest, "a1b2c3").result == "ack" and state.ended
        desk.end_session("a1b2c3")
        assert ask(packet.DisconnectRequest, "a1b2c3").result == "nak"
    finally:
        desk.stop()
