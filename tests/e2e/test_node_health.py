"""The issue's "done when", in headless Chromium: idle access points read *en servicio · sin clientes*;
a test host's link brought down reads *caído* at the top of the board, sends one e-mail and one webhook
call and takes that day's availability below 100%; back up, it reads *en servicio* and a recovery
message goes out. Real monitor, real probes (a network namespace), aiosmtpd and an HTTP receiver."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from portal.core import staffauth
from portal.core.model import AlertSubscription, Site
from tests.support.httpreceiver import Receiver
from tests.support.monitor import MonitorThread, add_probed_nas, fast, wait_for
from tests.support.netns import TestHost, netns_unavailable
from tests.support.smtp import SmtpServer

PASSWORD = "correct horse battery staple"


def _rows(page) -> list[tuple[str, str]]:
    """(state, name) of each row of the board, as the browser shows them."""
    script = "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
    return [(cells[0].strip(), cells[2].strip()) for cells in page.eval_on_selector_all("table.board tbody tr", script)]


def _board_until(page, url: str, check, timeout: float = 15.0) -> list[tuple[str, str]]:
    """Reload the board (as its meta refresh would) until `check(rows)` holds."""
    def ready():
        page.goto(url)
        rows = _rows(page)
        return rows if check(rows) else None
    return wait_for(ready, timeout=timeout, every=0.3)


def test_an_outage_seen_alerted_counted_and_recovered(portal, context_factory, db_factory, policies, settings, clock,
                                                      tmp_path):
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    clock.now = datetime.now(timezone.utc)
    smtp, hook, host = SmtpServer(), Receiver(), TestHost()
    monitor = None
    try:
        add_probed_nas(db_factory, policies, "ap-ejido", host.ip)
        with db_factory() as db:
            staff = staffauth.add_staff(db, "jefa@municipio.mx", "admin", PASSWORD)
            site = db.scalar(select(Site.id).where(Site.name == "Ejido La Esperanza"))
            db.add(AlertSubscription(staff_id=staff.id, site_id=site))
            db.commit()
        monitor = MonitorThread(fast(settings, alert_group_seconds=1, smtp_host="127.0.0.1", smtp_port=smtp.port,
                                     alert_webhook_url=hook.url), db_factory).start()
        page = context_factory().new_page()            # a phone-sized window
        page.goto(portal.url + "staff/login")
        page.fill("#email", "jefa@municipio.mx")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        board = portal.url + "staff/"
        idle = _board_until(page, board, lambda rows: len(rows) == 3 and all(s == "en servicio · sin clientes"
                                                                             for s, _ in rows))
        assert {name for _, name in idle} == {"ap-ejido", "ap-coova", "ap-mikrotik"}

        host.down()
        down = _board_until(page, board, lambda rows: rows[0][0].startswith("caído desde"))
        assert down[0][1] == "ap-ejido" and all(s == "en servicio · sin clientes" for s, _ in down[1:])
        page.screenshot(path=str(tmp_path / "board-down.png"), full_page=True)
        wait_for(lambda: len(smtp.messages) == 1 and len(hook.posts()) == 1, timeout=15)
        assert smtp.messages[0]["Subject"] == "Conecta: caído ap-ejido (Ejido La Esperanza)"
        assert [e["kind"] for e in hook.posts()[0]["events"]] == ["down"]

        clock.now = datetime.now(timezone.utc)             # the console's clock: now
        today = clock.now.astimezone(settings.tz).date().isoformat()
        page.goto(f"{portal.url}staff/availability?from={today}&to={today}&by=nas")
        cells = page.inner_text("table").split("\n")
        ejido = next(line for line in cells if line.startswith("ap-ejido"))
        assert float(re.search(r"([\d.]+) %", ejido).group(1)) < 100

        host.up()
        back = _board_until(page, board, lambda rows: ("en servicio · sin clientes", "ap-ejido") in rows)
        assert not any(s.startswith(("caído", "sin respuesta")) for s, _ in back)
        wait_for(lambda: len(smtp.messages) == 2 and len(hook.posts()) == 2, timeout=15)
        assert smtp.messages[1]["Subject"] == "Conecta: recuperado ap-ejido (Ejido La Esperanza)"
        assert [e["kind"] for e in hook.posts()[1]["events"]] == ["up"]
        page.goto(portal.url + "staff/alerts")
        assert page.inner_text("main").count("enviada ") == 4
    finally:
        if monitor is not None:
            monitor.stop()
        host.close()
        hook.close()
        smtp.close()
