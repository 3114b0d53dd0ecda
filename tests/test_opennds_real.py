"""Debian's real openNDS 9.10 against Conecta, in network namespaces of the test's own
(tests/support/opennds.py): for FAS levels 0, 1 and 2 a phone behind the gateway is sent to the
portal with openNDS's own parameters, registers with plain form posts, is let in by the gateway
(after its BinAuth script, contrib/opennds/conecta-binauth.sh, asked Conecta) with the policy's
session length, rates and quotas, reaches the "internet", and, once let go, its session is in the
reports with the bytes openNDS counted. Level 3 the same, except that the client is let in by a round
of openNDS's authmon (its PHP client and ndsctl) polling Conecta; openNDS itself runs at level 2
there, because its level 3 wants an https FAS (the redirect is the same).

Run it alone: `sudo .venv/bin/pytest -q tests/test_opennds_real.py` (root, and `make tools` or
`apt-get install opennds dnsmasq-base iptables nftables php-cli` first; it skips with the reason
otherwise). Nothing it starts leaves its namespaces.
"""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from portal.core import reports, sites
from portal.core.model import Session
from tests.support.builders import wait_until
from tests.support.opennds import LAN, PAGE_SIZE, WAN, Lab, opennds_conf, opennds_unavailable

pytestmark = [pytest.mark.engine_neutral, pytest.mark.timeout(300)]
FASKEY = "k3yOfTheLabGw2026"
BINAUTH = Path(__file__).resolve().parents[1] / "contrib" / "opennds" / "conecta-binauth.sh"
INTERNET = f"http://{WAN}.10/"


@pytest.fixture()
def lab(tmp_path):
    reason = opennds_unavailable()
    if reason:
        pytest.skip(reason)
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def _serve(app, address: str):  # noqa: ANN001, ANN202
    server = make_server(address, 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def _arrival_params(level: int, location: str) -> None:
    """openNDS's own redirect, as 9.10 sends it at each level."""
    query = parse_qs(urlsplit(location).query)
    if level == 0:
        assert query["authaction"][0].startswith(f"http://{LAN}.1:2050/opennds_auth/")
        assert re.fullmatch(r"[0-9a-f]{8}", query["tok"][0]) and "Node:" in query["gatewayname"][0]
    else:
        assert set(query) == ({"fas"} if level == 1 else {"fas", "iv"})


def _argv(log: str, method: str) -> list[str]:
    """The arguments openNDS gave its BinAuth script for `method` (its debug log shows the command)."""
    lines = [line for line in log.splitlines() if "Executing command:" in line and f"binauth.sh {method} " in line]
    assert lines, f"openNDS did not call BinAuth with {method}"
    return lines[-1].split("Executing command:")[1].split()[1:]


def _set_level(app, db_factory, level: int) -> None:  # noqa: ANN001
    with db_factory() as db:
        sites.update_nas(db, "ap-lab", sites.NasChange(fas_level=level))
        db.commit()
    app.extensions.get("conecta_cache", {}).clear()


def _authenticated(lab: Lab) -> dict | None:
    client = next((c for c in lab.clients().values() if c["ip"] == lab.client_ip), None)
    return client if client and client["state"] == "Authenticated" else None


def _one_level(lab: Lab, app, db_factory, level: int, portal: str, port: int) -> int:  # noqa: ANN001
    _set_level(app, db_factory, level)
    lab.start_opennds(opennds_conf(min(level, 2), lab.uplink.local, port, FASKEY, "ap-lab",
                                   "/etc/opennds/conecta-binauth.sh"),
                      {"/etc/opennds/conecta-binauth.sh": BINAUTH.read_text()})
    phone = lab.phone("register", INTERNET, portal)
    assert "error" not in phone, phone
    _arrival_params(min(level, 2), phone["arrival"]["hops"][0]["location"])
    hops = [hop["url"] for hop in phone["handoff"]["hops"]]
    if level == 3:
        # openNDS 9.10 wants an https FAS at level 3 and the lab's portal speaks http: openNDS runs at
        # level 2 (level 3's redirect is the same), Conecta holds the gateway at level 3, and a round of
        # openNDS's authmon (its PHP client and ndsctl) fetches the client from /opennds/authmon.
        assert "Listo" in phone["handoff"]["body"] and not any("opennds_auth" in url for url in hops), hops
        # authmon posts to the FAS URL itself (openNDS starts it with https://fasremotefqdn:fasport/faspath)
        url, gatewayhash = portal, hashlib.sha256(_sent_name(lab).encode()).hexdigest()
        listed, answers, ack = lab.authmon_round(url, gatewayhash)
        assert listed.startswith("* ") and ack == "ack", (listed, answers, ack)
        client = wait_until(lambda: _authenticated(lab), timeout=10, what=f"authmon's client in: {answers}")
        assert lab.authmon_round(url, gatewayhash)[0] == "*"      # acknowledged: listed no more
        assert lab.phone("visit", INTERNET)["length"] == PAGE_SIZE
    else:
        assert any(url.startswith(f"http://{LAN}.1:2050/opennds_auth/?tok=") for url in hops), hops
        assert phone["after"]["hops"][-1]["status"] == 200 and phone["after"]["length"] == PAGE_SIZE, phone
        client = _authenticated(lab)
    assert client is not None
    # centro-digital at 18:00: two hours to closing time, 20/5 Mbit/s, the day's 5 GB.
    assert int(client["session_end"]) - int(client["session_start"]) == 7200, client
    assert (client["upload_rate_limit_threshold"], client["download_rate_limit_threshold"]) == ("5000", "20000")
    assert (client["upload_quota"], client["download_quota"]) == ("4882812", "4882812"), client   # KiB
    # openNDS reads its counters (in KiB) every checkinterval (5 s): let it see the page before letting go.
    wait_until(lambda: int((_authenticated(lab) or {}).get("download_this_session") or 0) * 1024 >= PAGE_SIZE,
               timeout=15, what=f"openNDS counting the page (level {level}: {lab.clients()})")
    lab.on_gateway("ndsctl", "deauth", lab.client_ip)
    token = client["token"]
    stopped = wait_until(lambda: _stopped(db_factory, token), timeout=20, what="the BinAuth report in SQL")
    argv = _argv(lab.log(), "ndsctl_deauth")
    # method, mac, bytes incoming (the client's download), outgoing (its upload), start, end, token
    assert (stopped.bytes_out, stopped.bytes_in) == (int(argv[2]), int(argv[3])), argv
    assert argv[6] == token
    assert stopped.bytes_out >= PAGE_SIZE and stopped.user_id is not None
    return stopped.bytes_in + stopped.bytes_out


def _stopped(db_factory, token: str) -> Session | None:  # noqa: ANN001
    with db_factory() as db:
        return db.scalar(select(Session).where(Session.acct_session_id == token, Session.is_open.is_(False)))


def _sent_name(lab: Lab) -> str:
    """The GatewayName as openNDS spells it in its redirects: URL-encoded, with the Node suffix it
    makes from its interface's MAC."""
    mac = re.search(r"link/ether ([0-9a-f:]{17})", lab.on_gateway("ip", "-o", "link", "show", "ndslan")).group(1)
    return f"ap-lab%20Node%3a{mac.replace(':', '')}%20"


def test_levels_0_to_3_against_debians_opennds(lab, app, db_factory, policies) -> None:
    server = _serve(app, lab.uplink.local)
    try:
        port = server.server_port
        portal = f"http://{lab.uplink.local}:{port}/"
        with db_factory() as db:
            sites.add_site(db, policies, "Centro Lab", "digital-center", "centro-digital")
            sites.add_nas(db, sites.NasSpec("ap-lab", "Centro Lab", lab.uplink.ip, None, "opennds", coa_port=0,
                                            login_hosts=f"{LAN}.1", fas_level=1, faskey=FASKEY), production=False)
            db.commit()
        total = sum(_one_level(lab, app, db_factory, level, portal, port) for level in (0, 1, 2, 3))
        # openNDS wrote its DHCP option 114 into the gateway's (overlaid) dnsmasq.conf only.
        assert "114" not in lab.on_gateway("cat", "/etc/dnsmasq.conf", check=False)
        today = date.today()
        with db_factory() as db:
            rows = reports.usage(db, today - timedelta(days=1), today + timedelta(days=1), ["site"])
        cell = next(row for row in rows if row.get("site") == "Centro Lab")
        assert cell["sessions"] == 4 and cell["bytes_down"] + cell["bytes_up"] == total, rows
    finally:
        server.shutdown()
