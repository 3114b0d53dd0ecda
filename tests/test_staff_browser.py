"""The staff console in headless Chromium: sign in, a report with its SVG chart, and a CSV export."""

from __future__ import annotations

import shutil
import threading

import pytest
from werkzeug.serving import make_server

from portal.core import sites, staffauth

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture()
def console_url(app, db_factory, policies):
    with db_factory() as db:
        sites.add_site(db, policies, "Parque Central", "park", "parque", planned_gb_month=10)
        staffauth.add_staff(db, "analista@city.mx", "analyst", "correct horse battery staple")
        db.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_console_report_chart_and_export(console_url, tmp_path):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(accept_downloads=True, locale="es-MX").new_page()
        page.goto(f"{console_url}/staff/")
        page.fill("#email", "analista@city.mx")
        page.fill("#password", "correct horse battery staple")
        page.click("button[type=submit]")
        assert page.url.endswith("/staff/")
        page.click("nav a[href='/staff/reports']")
        page.wait_for_load_state("networkidle")
        widths = page.eval_on_selector_all("main img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
        assert len(widths) == 3 and all(w > 100 for w in widths)          # the three SVG charts rendered
        with page.expect_download() as info:
            page.click("text=CSV")
        path = tmp_path / "export.csv"
        info.value.save_as(path)
        header = "\ufeffSitio,Género,Personas,Sesiones,Horas,Segundos,GB de bajada,Bytes de bajada,GB de subida,"
        assert path.read_text(encoding="utf-8").splitlines()[0].startswith(header)
        browser.close()
