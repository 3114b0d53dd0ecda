"""Issue 11, item 6: every rate-limit breach is logged (once per limit, key and window; never the PIN,
the username or the address) and the console shows the citizens' refused sign-ins as counts."""

from __future__ import annotations

import logging
import re

from tests.support.portal import mikrotik_url
from tests.support.web import csrf_token, page, signed_in


def test_pin_guessing_is_logged_once_per_breach_and_counted_in_the_console(app, db_factory, caplog):
    caplog.set_level(logging.INFO)
    guesser = app.test_client()
    html = page(guesser.get(mikrotik_url(login="http://127.0.0.1:9/login", mac="AA:BB:CC:00:08:01")))
    codes = [guesser.post("/login", data={"csrf_token": csrf_token(html), "username": "lupita",
                                          "pin": f"97{i:02d}"}).status_code for i in range(8)]
    assert codes == [400] * 5 + [429] * 3        # 5 tries a minute from one device
    breaches = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert breaches == ["rate limit 5 per 1 minute per device reached on POST /login; refused until the window ends"]
    text = "\n".join(r.getMessage() for r in caplog.records).lower()
    assert "lupita" not in text and "9706" not in text and "127.0.0.1" not in text and "aa:bb:cc" not in text

    console = page(signed_in(app, db_factory).get("/staff/audit"))
    table = console.split("Accesos de ciudadanos rechazados", 1)[1].split("</table>", 1)[0]
    today = re.search(r"<tr><td>\d{4}-\d\d-\d\d</td>((<td>\d+</td>)+)</tr>", table)
    assert today, table
    assert re.findall(r"<td>(\d+)</td>", today.group(1)) == ["5", "3", "0", "0"]
