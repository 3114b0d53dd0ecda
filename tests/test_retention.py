"""Retention: old personal data goes, the aggregates the reports need stay."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from datetime import date, datetime

from sqlalchemy import func, select

from portal.core import reports
from portal.core.macs import pseudonym
from portal.core.model import AcctRecord, CoaRequest, Device, Session, UsageDaily, UsageMonthly, User
from portal.core.retention import purge


def test_purge_keeps_aggregates(db_factory, settings):
    old, new = datetime(2024, 1, 10), datetime(2026, 11, 20)
    with db_factory.begin() as db:
        gone = User(username="p-old", source="portal", gender="female", age_band="30-44", created_at=old)
        kept = User(username="p-new", source="portal", gender="male", age_band="18-29", created_at=old)
        db.add_all([gone, kept])
        db.flush()
        db.add_all([Device(user_id=gone.id, mac="aa:00:00:00:00:01", last_seen=old),
                    Device(user_id=kept.id, mac="aa:00:00:00:00:02", last_seen=new),
                    UsageDaily(day=date(2024, 1, 10), user_id=gone.id, site_id=1, sessions=1, seconds=60,
                               bytes_down=5, bytes_up=1, gender="female", age_band="30-44"),
                    UsageDaily(day=date(2026, 11, 20), user_id=kept.id, site_id=1, sessions=1, seconds=30,
                               bytes_down=2, bytes_up=1, gender="male", age_band="18-29"),
                    UsageMonthly(month="2024-01", user_id=gone.id, site_id=1, sessions=1, seconds=60,
                                 bytes_down=5, bytes_up=1, gender="female", age_band="30-44"),
                    AcctRecord(dedup="a" * 32, received_at=old, nas_id=1, status="stop"),
                    AcctRecord(dedup="b" * 32, received_at=new, nas_id=1, status="stop"),
                    Session(nas_id=1, site_id=1, acct_session_id="x", username="p-old", mac="aa:00:00:00:00:01",
                            started_at=old, updated_at=old, is_open=False),
                    CoaRequest(session_id=1, nas_id=1, action="slow", reason="daily_data", requested_at=old),
                    CoaRequest(session_id=2, nas_id=1, action="slow", reason="daily_data", requested_at=new)])
    with db_factory() as db:
        counts = purge(db, datetime(2025, 11, 26))
        db.commit()
    assert counts == {"accounting records": 1, "disconnect records": 0, "speed change records": 1, "sessions": 1,
                      "devices": 1, "portal registrations": 1}
    with db_factory() as db:
        assert db.scalars(select(User.username)).all() == ["p-new"]
        assert db.scalars(select(Device.mac)).all() == ["aa:00:00:00:00:02"]
        assert db.scalar(select(func.count()).select_from(UsageDaily)) == 2
        rows = reports.usage(db, date(2024, 1, 1), date(2024, 1, 31), ["gender", "age_band"])
    figures = {"users": 1, "sessions": 1, "seconds": 60, "bytes_down": 5, "bytes_up": 1, "suppressed": False}
    assert rows == [{"gender": "female", "age_band": "30-44", **figures, "row": "cell"},
                    {"gender": None, "age_band": None, **figures, "row": "total"}]
    env = {**os.environ, "CONECTA_DATABASE_URL": settings.database_url, "CONECTA_DATA_DIR": str(settings.data_dir)}
    cli = subprocess.run([sys.executable, "-m", "portal", "purge", "--older-than", "7d"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "refused" in cli.stderr
    cli = subprocess.run([sys.executable, "-m", "portal", "purge", "--older-than", "365d"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "0 accounting records deleted" in cli.stdout


def test_pseudonym_is_the_start_of_an_hmac_sha256_of_the_identifier():
    mac = "aa:00:00:00:00:01"
    expected = hmac.new(b"k1", mac.encode(), hashlib.sha256).hexdigest()[:16]
    assert expected == "c525d98632a44062"       # printf aa:00:00:00:00:01 | openssl dgst -sha256 -hmac k1
    assert pseudonym(mac, "k1") == expected
    assert pseudonym(mac, "k2") == "9000e2b016d86dfb" != expected                  # another key
    assert pseudonym("aa:00:00:00:00:02", "k1") == "786ffa6c9347327b" != expected  # another device
