"""Issue 9 "Figures": one `conecta monitor` probing 2,000 access points every 30 s.

Targets (addresses on this machine only): 1,980 NAS on loopback addresses 127.1.x.y (the kernel answers
their ICMP echo) and 20 on addresses of a network namespace of our own behind a veth pair
(198.18.250.2-21). The monitor runs as `conecta monitor` (its own process, the real settings:
interval 30 s, down after 3 failures, probe timeout 2 s) on a SQLite database in a temp dir, or on
PostgreSQL with --database-url.

  1. warm-up: until every NAS has been probed and is up;
  2. CPU: the monitor's user+system time over --cpu-seconds (default 120 s, four intervals), as a
     share of one core (target < 10 %);
  3. detection: the namespace's link goes down; each of its 20 NAS must read `down` within
     interval x confirmations + 5 s = 95 s (the database is polled every 0.5 s);
  4. recovery: the link comes back; time until all 20 read `up` again.

Prints a table and writes bench/out/monitor.json with the machine's state.

  .venv/bin/python bench/monitor_bench.py [--nas 2000] [--cpu-seconds 120] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policies import load_policies  # noqa: E402
from portal.core import probes, sites  # noqa: E402
from portal.core.db import make_engine, session_factory  # noqa: E402
from portal.core.model import Nas, NodeState  # noqa: E402
from portal.core.schema import upgrade  # noqa: E402
from portal.core.settings import load_settings, settings_env  # noqa: E402

NS, NEAR, FAR, NET = "conecta-bench", "cvbench0", "cvbench1", "198.18.250"
OUTAGE = 20
INTERVAL, CONFIRMATIONS, TIMEOUT = 30.0, 3, 2.0


def ip(*args: str) -> None:
    """An iproute2 command, failing loudly."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def namespace_up() -> None:
    """A namespace with OUTAGE addresses behind a veth pair."""
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    ip("netns", "add", NS)
    ip("link", "add", NEAR, "type", "veth", "peer", "name", FAR, "netns", NS)
    ip("addr", "add", f"{NET}.1/24", "dev", NEAR)
    ip("link", "set", NEAR, "up")
    for i in range(OUTAGE):
        ip("-n", NS, "addr", "add", f"{NET}.{i + 2}/24", "dev", FAR)
    ip("-n", NS, "link", "set", FAR, "up")
    ip("-n", NS, "link", "set", "lo", "up")


def register(db_factory, count: int) -> list[str]:
    """A site per 10 NAS; the namespace's NAS first; returns their names."""
    policies = load_policies()
    outage = []
    with db_factory() as db:
        for i in range(count):
            site = f"Sitio {i // 10:03d}"
            if i % 10 == 0:
                sites.add_site(db, policies, site, "park", "parque")
            address = f"{NET}.{i + 2}" if i < OUTAGE else f"127.1.{(i - OUTAGE) // 250}.{(i - OUTAGE) % 250 + 1}"
            name = f"ap-{i:04d}"
            sites.add_nas(db, sites.NasSpec(name, site, address, "b" * 20, "generic"), production=False)
            probes.set_probe(db, name, "icmp")
            if i < OUTAGE:
                outage.append(name)
        db.commit()
    return outage


def states(db_factory, names: list[str] | None = None) -> dict[str, int]:
    """How many NAS (of `names`, or all) are in each state."""
    with db_factory() as db:
        query = select(NodeState.state, func.count()).join(Nas, Nas.id == NodeState.nas_id)
        if names is not None:
            query = query.where(Nas.name.in_(names))
        return dict(db.execute(query.group_by(NodeState.state)).all())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(check, timeout: float, every: float = 0.5) -> float | None:
    """Seconds until `check()` is true, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(every)
    return None


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nas", type=int, default=2000)
    parser.add_argument("--cpu-seconds", type=float, default=120.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="conecta-monitor-bench-"))
    url = args.database_url or f"sqlite:///{tmp / 'conecta.db'}"
    settings = load_settings({"CONECTA_DATA_DIR": str(tmp), "CONECTA_DATABASE_URL": url,
                              "CONECTA_MONITOR_INTERVAL": str(INTERVAL),
                              "CONECTA_MONITOR_CONFIRMATIONS": str(CONFIRMATIONS),
                              "CONECTA_PROBE_TIMEOUT": str(TIMEOUT), "CONECTA_METRICS_PORT": "0"})
    engine = make_engine(url)
    upgrade(engine)
    db_factory = session_factory(engine)
    namespace_up()
    outage = register(db_factory, args.nas)
    env = {**os.environ, **settings_env(settings)}
    monitor = subprocess.Popen([str(Path(sys.executable).with_name("conecta")), "monitor"], env=env,
                               stdout=subprocess.DEVNULL, stderr=open(tmp / "monitor.log", "w"))
    result: dict = {"nas": args.nas, "interval_s": INTERVAL, "confirmations": CONFIRMATIONS,
                    "probe_timeout_s": TIMEOUT, "database": url.split(":")[0], "bound_s": INTERVAL * CONFIRMATIONS + 5}
    try:
        result["warmup_s"] = _round(wait(lambda: states(db_factory).get("up", 0) == args.nas, INTERVAL * 3))
        load_before = os.getloadavg()
        start_cpu, start = cpu_seconds(monitor.pid), time.monotonic()
        time.sleep(args.cpu_seconds)
        used, took = cpu_seconds(monitor.pid) - start_cpu, time.monotonic() - start
        result["cpu_percent_of_one_core"] = round(100 * used / took, 2)
        result["states_during_cpu_window"] = states(db_factory)
        ip("-n", NS, "link", "set", FAR, "down")
        result["detection_s"] = _round(wait(lambda: states(db_factory, outage).get("down", 0) == OUTAGE,
                                            result["bound_s"] + 30))
        ip("-n", NS, "link", "set", FAR, "up")
        result["recovery_s"] = _round(wait(lambda: states(db_factory, outage).get("up", 0) == OUTAGE, INTERVAL * 3))
        result["machine"] = {"cpus": os.cpu_count(), "load_before": [round(v, 2) for v in load_before],
                             "load_after": [round(v, 2) for v in os.getloadavg()], "kernel": platform.release(),
                             "python": platform.python_version(), "root": os.geteuid() == 0}
    finally:
        monitor.terminate()
        monitor.wait(30)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        engine.dispose()
    report(result)


def report(result: dict) -> None:
    """Print the figures against the targets; write bench/out/monitor.json."""
    cpu, detection = result["cpu_percent_of_one_core"], result["detection_s"]
    rows = [("warm-up: all probed and up", f"{result['warmup_s']} s", ""),
            ("monitor CPU, 2,000 NAS every 30 s", f"{cpu} % of one core", "pass" if cpu < 10 else "FAIL"),
            (f"confirmed down, {OUTAGE} NAS (bound {result['bound_s']:.0f} s)", f"{detection} s",
             "pass" if detection is not None and detection <= result["bound_s"] else "FAIL"),
            ("recovered", f"{result['recovery_s']} s", "")]
    for name, value, verdict in rows:
        print(f"{name:48} {value:24} {verdict}")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "monitor.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
