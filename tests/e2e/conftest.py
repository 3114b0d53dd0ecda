"""End-to-end fixtures: the real portal over HTTP (werkzeug in a thread), the real RADIUS server
(tests/conftest.py), the CoovaChilli and MikroTik simulators, and Debian's headless Chromium driven
by Playwright (never `playwright install`: it downloads a browser and fails here)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.support.builders import settle
from tests.support.chilli import CoovaSim
from tests.support.mikrotik import MikrotikSim
from tests.support.nassim import COOVA_NAS, COOVA_NASID, MIKROTIK_NAS, register_sim_nas, use_coa_port

CHROMIUM = os.environ.get("CONECTA_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"


class QuietHandler(WSGIRequestHandler):
    """No access log: request lines carry MACs and addresses."""

    def log_request(self, *_args, **_kwargs) -> None:
        return


class LivePortal:
    """The app served over real HTTP on 127.0.0.1 (ephemeral port), threaded."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def playwright_driver():
    """Per module: a running sync Playwright holds an event loop, and other modules start their own."""
    pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium (no `playwright install`)")
    from playwright.sync_api import sync_playwright
    driver = sync_playwright().start()
    yield driver
    driver.stop()


@pytest.fixture(scope="module")
def browser(playwright_driver):
    """One headless Chromium per test module."""
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture()
def sim_nas(db_factory, policies) -> dict[str, int]:
    return register_sim_nas(db_factory, policies)


@pytest.fixture()
def nas_id(sim_nas) -> int:
    """The radius_server fixture registers the simulators' access points instead of its default one."""
    return sim_nas["coova"]


@pytest.fixture()
def portal(app, sim_nas):
    """The app of tests/conftest.py over HTTP, with the simulators' access points registered (the
    RADIUS server, when a test has one, shares its database and Redis)."""
    live = LivePortal(app)
    yield live
    live.close()


@pytest.fixture()
def coova(radius_server, dictionary, portal, db_factory):
    sim = CoovaSim(radius_server.ports, dictionary, portal.url, COOVA_NASID, radius_source="127.0.0.2",
                   applied=lambda: settle(radius_server))
    yield use_coa_port(db_factory, sim, COOVA_NAS)
    sim.close()


@pytest.fixture()
def mikrotik(radius_server, dictionary, portal, db_factory):
    sim = MikrotikSim(radius_server.ports, dictionary, portal.url, "MikroTik", applied=lambda: settle(radius_server))
    yield use_coa_port(db_factory, sim, MIKROTIK_NAS)
    sim.close()


@pytest.fixture()
def context_factory(browser):
    """New browser contexts (a fresh phone each), closed after the test. Spanish unless told otherwise."""
    made = []

    def make(locale: str = "es-MX", javascript: bool = True, width: int = 412, height: int = 860, **kw):
        context = browser.new_context(locale=locale, java_script_enabled=javascript,
                                      viewport={"width": width, "height": height}, **kw)
        context.set_default_timeout(10_000)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


@pytest.fixture()
def axe_source() -> Path:
    if not AXE.exists():
        pytest.skip("axe-core missing: `make test` installs it (npm install --prefix tests/e2e axe-core@4)")
    return AXE
