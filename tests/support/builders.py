"""Test data and waits shared by the test modules: a site with a NAS, accounts, a settable clock."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import text

from portal.core import accounts, sites

SECRET = "s3cret-for-tests-0123456789"


def add_site_and_nas(db_factory, policies, vendor: str = "coova", ip: str = "127.0.0.1",
                     site: str = "Parque Central", policy: str = "parque", require_ma: bool = True,
                     coa_port: int = 3799, octets_direction: str = "input-is-upload") -> int:
    """Create a site and a NAS; return the NAS id. Its octets are RFC 2866's (Acct-Input-Octets: the
    client's upload), as tests/support/radiusclient.py sends them, whatever the vendor."""
    with db_factory() as db:
        if not db.scalar(text("SELECT id FROM sites WHERE name = :n").bindparams(n=site)):
            sites.add_site(db, policies, site, "park", policy, planned_gb_month=100)
        nas, _ = sites.add_nas(db, sites.NasSpec(f"ap-{vendor}-{ip}", site, ip, SECRET, vendor,
                                                 coa_port=coa_port, require_message_authenticator=require_ma,
                                                 octets_direction=octets_direction),
                               production=False)
        db.commit()
        return nas.id


def add_user(db_factory, policies, username: str, password: str, policy: str | None = None, **extra) -> int:
    """Create an account; return its id."""
    with db_factory() as db:
        user = accounts.add_user(db, policies, {"username": username, "password": password, "policy": policy, **extra})
        db.commit()
        return user.id


class Clock:
    """A settable UTC clock for the server (opening hours, midnight resets)."""

    def __init__(self, when: datetime | None = None) -> None:
        # 18:00 in Mexico City: inside every shipped policy's opening hours.
        self.now = when or datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def settle(server, timeout: float = 10.0) -> None:
    """Wait until every accounting record the server acknowledged is in SQL and in Redis."""
    deadline = time.monotonic() + timeout
    while not server.writer.idle():
        assert time.monotonic() < deadline, "accounting did not settle"
        time.sleep(0.01)


def wait_until(check, timeout: float = 10.0, what: str = "condition"):  # noqa: ANN001, ANN201
    """Poll `check()` until it returns something truthy; return that, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} not reached in {timeout} s"
        time.sleep(0.05)
    return value
