"""FreeRADIUS's own radclient as an independent client (Debian freeradius-utils)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from sqlalchemy import select

from portal.core.model import UsageDaily
from tests.support.builders import SECRET, add_user, settle

pytestmark = pytest.mark.skipif(shutil.which("radclient") is None,
                                reason="radclient not installed (apt-get install freeradius-utils)")


def radclient(server, kind: str, attrs: str) -> str:
    port = server.ports[0] if kind in ("auth", "status") else server.ports[1]
    result = subprocess.run(["radclient", "-x", "-r", "2", "-t", "2", f"127.0.0.1:{port}", kind, SECRET],
                            input=attrs, capture_output=True, text=True, timeout=20)
    return result.stdout + result.stderr


def test_radclient_pap_chap_reject_and_status(radius_server, db_factory, policies):
    add_user(db_factory, policies, "ana", "anapass123")
    out = radclient(radius_server, "auth", "User-Name=ana,User-Password=anapass123,Message-Authenticator=0x00")
    assert "Received Access-Accept" in out and "Session-Timeout = 3600" in out
    assert "Message-Authenticator = 0x" in out.split("Received Access-Accept")[1].splitlines()[1]  # first
    out = radclient(radius_server, "auth", "User-Name=ana,CHAP-Password=anapass123,Message-Authenticator=0x00")
    assert "Received Access-Accept" in out
    out = radclient(radius_server, "auth", "User-Name=ana,User-Password=nope-nope,Message-Authenticator=0x00")
    assert "Received Access-Reject" in out and "incorrectos" in out
    out = radclient(radius_server, "status", "Message-Authenticator=0x00")
    assert "Received Access-Accept" in out


def test_radclient_accounting_is_stored(radius_server, db_factory, policies):
    uid = add_user(db_factory, policies, "ana", "anapass123")
    for attrs in ("Acct-Status-Type=Start,Acct-Session-Id=rc1",
                  "Acct-Status-Type=Interim-Update,Acct-Session-Id=rc1,Acct-Session-Time=60,"
                  "Acct-Output-Octets=1000,Acct-Output-Gigawords=1",
                  "Acct-Status-Type=Stop,Acct-Session-Id=rc1,Acct-Session-Time=90,Acct-Output-Octets=2000,"
                  "Acct-Output-Gigawords=1,Acct-Input-Octets=300,Acct-Terminate-Cause=User-Request"):
        out = radclient(radius_server, "acct", f"User-Name=ana,Calling-Station-Id=AA-BB-CC-00-00-01,{attrs}")
        assert "Received Accounting-Response" in out
    settle(radius_server)
    with db_factory() as db:
        row = db.scalars(select(UsageDaily).where(UsageDaily.user_id == uid)).one()
    assert (row.sessions, row.seconds, row.bytes_down, row.bytes_up) == (1, 90, 2**32 + 2000, 300)
