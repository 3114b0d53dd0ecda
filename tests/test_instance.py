"""Issue 11, items 5 and 8-10, on a real `conecta run`: no input forges a log line in any process's
output, gunicorn keeps no control socket in $HOME, a second instance on the same ports refuses at once,
and kill -9 of `conecta run` takes every child with it. Then Ctrl-C in the demo simulation."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.support.instance import CONTROLS, FORGED, plant_http, plant_radius, run_briefly, wait_gone
from tests.support.services import Running, Service, init_demo, status_server

pytestmark = [pytest.mark.engine_neutral, pytest.mark.timeout(180)]   # data dirs of their own (SQLite)

CONECTA = Path(sys.executable).with_name("conecta")


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """`conecta run` with its access log on and $HOME in a temporary folder; killed in the end."""
    tmp = tmp_path_factory.mktemp("instance")
    service = Service(data_dir=tmp / "data", extra={"HOME": str(tmp / "home"),
                                                    "GUNICORN_CMD_ARGS": "--access-logfile -"})
    (tmp / "home").mkdir()
    secret = init_demo(CONECTA, tmp, service)
    with Running(CONECTA, tmp, service, tmp / "conecta-run.log") as running:
        running.wait_up(secret)
        yield running, secret


def test_control_characters_on_every_surface_forge_no_log_line(instance):
    running, secret = instance
    answers = plant_http(running.service)
    assert answers[0].startswith(b"HTTP/1.1 400"), answers      # the foreign Origin: refused, and logged
    sid = plant_radius(running.service, secret)
    escaped = "\\r\\n" + FORGED[:40]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and running.output(100_000).count(escaped) < 3:
        time.sleep(0.2)
    text = running.log_path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    assert not [line for line in lines if FORGED in line and not line.split(FORGED)[0].endswith(("\\n", "+"))]
    assert [c for c in CONTROLS if c in text] == [], "a raw control character reached the log"
    refused = [line for line in lines if "foreign Origin" in line]
    assert len(refused) == 1 and "\\x85" in refused[0] and "\\r\\n" + FORGED in refused[0], refused
    assert any("after its Stop" in line and escaped in line for line in lines), sid   # RADIUS, the applier
    access = [line for line in lines if '"POST /register' in line]
    assert len(access) == 1 and "\\r\\n" in access[0] and "127.0.0.1" not in access[0], access   # gunicorn access
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO gunicorn\.error: ", text, re.M), \
        "gunicorn's error log is not in Conecta's format"


def test_gunicorn_keeps_no_control_socket(instance):
    running, _ = instance
    home = Path(running.service.extra["HOME"])
    assert not (home / ".gunicorn").exists()


def test_a_second_instance_on_the_same_ports_refuses_at_once(instance, tmp_path):
    running, secret = instance
    other = Service(data_dir=tmp_path / "other", portal_port=running.service.portal_port,
                    auth_port=running.service.auth_port, acct_port=running.service.acct_port,
                    metrics_port=running.service.metrics_port)
    started = time.monotonic()
    status, out = run_briefly([str(CONECTA), "run"], other.env(), timeout=25, cwd=tmp_path)
    assert status == 1 and "is in use by another Conecta" in out and "Conecta is running" not in out, out
    assert time.monotonic() - started < 15
    status, out = run_briefly([str(CONECTA), "radius"], other.env(), timeout=25, cwd=tmp_path)
    assert status == 1 and f"port {running.service.auth_port}/udp (RADIUS auth) is in use" in out, out
    assert all(status_server(running.service, secret, timeout=1) is not None for _ in range(20))


def test_kill_9_of_conecta_run_takes_every_child_with_it(instance):
    running, _ = instance
    children = running.note_descendants()
    assert len(children) >= 4, children
    os.kill(running.proc.pid, signal.SIGKILL)
    running.proc.wait(10)
    left = wait_gone(children, timeout=20)
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes() for p in left if Path(f"/proc/{p}").exists()]


def test_ctrl_c_in_the_demo_simulation_stops_in_order_and_is_finished_next_time(tmp_path):
    service = Service(data_dir=tmp_path / "data")
    env = service.env()
    assert subprocess.run([str(CONECTA), "init"], env=env, cwd=tmp_path, capture_output=True,
                          timeout=90).returncode == 0
    command = [str(CONECTA), "simulate", "--if-empty", "--people", "40", "--days", "4"]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)   # a terminal's job
    progress = service.data_dir / "simulation.json"
    try:
        deadline = time.monotonic() + 60
        while not (progress.exists() and json.loads(progress.read_text() or "{}").get("done", 0) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        redis_url = (service.data_dir / "redis" / "url").read_text()
        os.killpg(proc.pid, signal.SIGINT)          # Ctrl-C: the whole foreground group
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "simulation stopped after" in err and "Traceback" not in err, err
    with pytest.raises(redis.ConnectionError):      # the embedded Redis was stopped too, last
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
    plan = json.loads(progress.read_text())
    assert 3 <= plan["done"] < plan["total"], plan
    status, out = run_briefly(command, env, timeout=120, cwd=tmp_path)
    assert status == 0 and f"interrupted after {plan['done']} of {plan['total']} visits" in out, out
    assert f"{plan['total'] - plan['done']} visits played" in out, out
    assert json.loads(progress.read_text())["done"] == plan["total"]
    status, out = run_briefly(command, env, timeout=60, cwd=tmp_path)
    assert status == 0 and "no demo data added" in out, out
