"""The city's identity and a person's counters in the state a test needs, through Conecta's own
functions on the real database and Redis."""

from __future__ import annotations

import io
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from PIL import Image
from sqlalchemy import select

from portal.core import counters, identity
from portal.core.model import User
from portal.web import city
from tests.support.builders import Clock

TZ_NAME = "America/Mexico_City"


def set_identity(app, db_factory, clock: Clock, **values: str) -> str:
    """Store identity values as `conecta settings set` does, and have the app show them at once (it
    caches them 10 s); the notice version in force afterwards."""
    with db_factory() as db:
        identity.update(db, values, clock.now.astimezone(ZoneInfo(TZ_NAME)))
        db.commit()
        version = identity.load(db).notice_version
    with app.app_context():
        city.forget()
    return version


def png(width: int = 40, height: int = 20, fmt: str = "PNG") -> bytes:
    """A small real image."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (11, 83, 148)).save(out, format=fmt)
    return out.getvalue()


def only_user(db_factory) -> User:
    """The one person registered in the test."""
    with db_factory() as db:
        return db.scalars(select(User)).one()


def use(redis_client, uid: int, local_now: datetime, day_seconds: int = 0, day_bytes: int = 0,
        month_seconds: int = 0, month_bytes: int = 0, open_sessions: int = 0) -> None:
    """Set a person's counters for the local day and month of `local_now` (what a rebuild from SQL writes)
    and their open sessions (what accounting Starts add), as RADIUS would read them."""
    counters.overwrite(redis_client, {uid: (day_seconds, day_bytes, month_seconds, month_bytes)}, local_now)
    if open_sessions:
        redis_client.zadd(counters.open_key(uid), {f"1:s{i}": time.time() for i in range(open_sessions)})
