"""Metrics: /metrics is prometheus_client's exposition, for loopback peers not behind a proxy or with the
token; the portal counts registrations and refusals; the Grafana dashboard and the scrape config in the
repository name only metrics that exist. (Every process's metrics added up across real processes is
checked where `conecta run` is: tests/support/services.py, assert_metrics_of_every_process.)"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from portal.core.metrics import m, registry
from portal.web import create_app
from tests.support.nassim import register_sim_nas
from tests.support.portal import arrive_and_register, coova_url

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "t" * 32


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_for_loopback_peers_not_behind_a_proxy_or_with_the_token(settings, clock, redis_client):
    app = create_app(dataclasses.replace(settings, metrics_token=TOKEN), clock=clock)
    client = app.test_client()
    local = client.get("/metrics")
    assert local.status_code == 200 and local.content_type.startswith("text/plain")
    assert _value(local.get_data(as_text=True), "conecta_sessions_open") == 0
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 403
    assert client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", environ_base=remote, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_the_portal_counts_registrations_and_refusals(app, client, db_factory, policies):
    register_sim_nas(db_factory, policies)
    before = client.get("/metrics").get_data(as_text=True)
    arrive_and_register(client, coova_url())
    assert client.get("/?res=notyet&uamip=1.2.3.4&mac=zz").status_code == 400        # an arrival refused
    after = client.get("/metrics").get_data(as_text=True)
    for name, labels in (("conecta_portal_registrations_total", {}), ("conecta_portal_refusals_total",
                                                                      {"reason": "arrival"})):
        assert _value(after, name, **labels) == _value(before, name, **labels) + 1, name


def _names_in(text: str) -> set[str]:
    """Metric names a query or config mentions, as families (histogram series map to their family)."""
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"\bconecta_[a-z_]+\b", text)}


def _known() -> set[str]:
    m()
    names = set()
    for family in registry().collect():
        names.add(family.name)
        names.add(family.name + "_total")
    return names


def test_the_dashboard_and_the_scrape_config_name_real_metrics():
    dashboard = json.loads((ROOT / "monitoring" / "grafana-conecta.json").read_text())
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = _names_in(queries)
    assert len(used) >= 10
    assert used <= _known(), used - _known()
    assert _names_in("rate(conecta_radius_requets_total[5m])") - _known()      # a misspelt name is caught
    assert "127.0.0.1:9464" in (ROOT / "monitoring" / "prometheus.yml").read_text()


RACE = """
import sys
import threading
from portal.core import metrics
sys.setswitchinterval(1e-6)   # switch threads as often as the interpreter can: the race shows every time
errors, made = [], []
start = threading.Barrier(32)
def first_use():
    start.wait()
    try:
        made.append(metrics.m())
    except Exception as exc:
        errors.append(type(exc).__name__)
threads = [threading.Thread(target=first_use) for _ in range(32)]
for t in threads: t.start()
for t in threads: t.join()
print(len(errors), len({id(x) for x in made}))
"""


def test_threads_reaching_the_metrics_first_together_share_one_set():
    """A portal worker's threads take their first requests together: before the lock, two of them
    registered the same metric names and the request got a 500 (seen under the portal benchmark)."""
    import subprocess
    import sys
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", RACE], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["0", "1"]
