"""`make run`'s demo: `conecta init --demo` puts its site on the `demo` policy (open at any hour), and
the banner prints what a tester needs: both secrets of the demo NAS, a RADIUS try and a citizen's link
that the portal accepts as the demo NAS's own redirect (its md checked), at night too."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from click.testing import CliRunner

from policies import Usage, evaluate
from portal.cli import main
from portal.cli.launcher import banner
from portal.core.settings import load_settings
from tests.support.web import page


def test_the_demo_connects_at_night_and_the_banner_says_how(app, client, settings, engine, clock, capsys, policies):
    env = {"CONECTA_DATABASE_URL": settings.database_url, "CONECTA_DATA_DIR": str(settings.data_dir)}
    out = CliRunner().invoke(main, ["init", "--demo"], env=env, catch_exceptions=False).output
    uam = re.search(r"demo NAS UAM secret \(CoovaChilli HS_UAMSECRET\): ([0-9a-f]{32})", out).group(1)
    secret = re.search(r"policy demo: open at any hour\), NAS 'demo-ap' for 127\.0\.0\.1, secret: (\S+)$", out.strip())
    assert secret, out
    banner(load_settings(env | {"CONECTA_PORTAL_PORT": "8080"}), engine, "redis://127.0.0.1:16379")
    shown = capsys.readouterr().out
    assert f"demo NAS 127.0.0.1 secret: {secret.group(1)}" in shown and f"demo NAS UAM secret:       {uam}" in shown
    assert "conecta user add ana --password una-clave-larga --policy demo" in shown
    assert f"| radclient 127.0.0.1:1812 auth {secret.group(1)}" in shown
    link = re.search(r"a phone's first page at the demo NAS: (http://127\.0\.0\.1:8080/\?\S+)", shown).group(1)

    night = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)            # 03:30 in Mexico City
    assert evaluate(policies["demo"], Usage(), night.astimezone(settings.tz)).accept
    assert not evaluate(policies["parque"], Usage(), night.astimezone(settings.tz)).accept
    clock.now = night
    html = page(client.get(link.removeprefix("http://127.0.0.1:8080"), base_url="http://127.0.0.1:8080"))
    assert 'action="/register"' in html and "Horario de este lugar" not in html   # md accepted, no hours
