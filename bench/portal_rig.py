"""The machinery of the portal benchmark: stores, gunicorn processes, CoovaChilli redirects, HTTP
exchanges, wrk, and CPU meters. bench/portal_bench.py drives it (see bench/PORTAL.md)."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "conecta_portal_bench"
REDIS_URL = "redis://127.0.0.1:6379/13"
IP_LIMIT = "10000000/minute"       # all the load comes from 127.0.0.1; the per-MAC limit stays as shipped
NAS_NAME, UAM_PORT = "bench-ap", 3990
FORM = {"gender": "undisclosed", "age_band": "30-44", "terms": "yes", "privacy": "yes"}
STARTED: list[subprocess.Popen] = []


class BenchError(RuntimeError):
    """The benchmark could not set up or measure; the message says what to look at."""


@dataclass
class Server:
    """A running gunicorn: Conecta's portal or the reference app, its port and log."""

    name: str
    port: int
    proc: subprocess.Popen
    log: Path
    env: dict[str, str]
    uam_secret: str = ""

    @property
    def origin(self) -> str:
        """Scheme, host and port as a browser's Origin header gives them."""
        return f"http://{HOST}:{self.port}"


@dataclass
class Tally:
    """One client thread's samples (start, middle, end) and its failures."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


# --- stores and fleet ------------------------------------------------------------------------

def database_url(database: str, data_dir: Path) -> str:
    """The SQLAlchemy URL of the benchmark's own database: PostgreSQL, or a SQLite file in the data dir."""
    if database == "sqlite":
        return f"sqlite:///{data_dir / 'conecta.db'}"
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def reset_stores(database: str) -> None:
    """An empty Redis db 13 and, for PostgreSQL, a fresh conecta_portal_bench database."""
    import psycopg
    import redis
    if database == "postgresql":
        try:
            with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {DB_NAME}")
        except psycopg.Error as exc:
            raise BenchError(f"PostgreSQL on 127.0.0.1:5432 (user postgres, trust): {exc}") from None
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"Redis on 127.0.0.1:6379: {exc}") from None


def drop_stores() -> None:
    """Drop the database and flush Redis db 13 (best effort: called while cleaning up)."""
    import psycopg
    import redis
    try:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except Exception as exc:  # noqa: BLE001 - cleaning up: report, go on
        print(f"warning: could not drop the benchmark stores: {exc}")


def conecta_env(database: str, data_dir: Path, port: int) -> dict[str, str]:
    """The environment of every `conecta` command and of gunicorn (the reference app reads it too)."""
    return {**os.environ, "CONECTA_DATA_DIR": str(data_dir), "CONECTA_DATABASE_URL": database_url(database, data_dir),
            "CONECTA_REDIS_URL": REDIS_URL, "CONECTA_ENV": "development", "CONECTA_PORTAL_HOST": HOST,
            "CONECTA_PORTAL_PORT": str(port), "CONECTA_PORTAL_IP_LIMIT": IP_LIMIT}


def conecta(env: dict[str, str], *args: str) -> None:
    """Run one `conecta` CLI command; raise BenchError with its output if it fails."""
    done = subprocess.run([str(VENV_BIN / "conecta"), "--log-level", "WARNING", *args], env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if done.returncode:
        raise BenchError(f"conecta {' '.join(args[:2])} failed: {(done.stderr or done.stdout).strip()}")


def setup_fleet(env: dict[str, str], uam_secret: str) -> None:
    """`conecta init`, then a park site and a CoovaChilli NAS with a UAM secret."""
    conecta(env, "init")
    conecta(env, "site", "add", "Parque Bench", "--kind", "park", "--policy", "parque")
    conecta(env, "nas", "add", NAS_NAME, "--site", "Parque Bench", "--ip", HOST, "--vendor", "coova",
            "--secret", secrets.token_hex(16), "--uam-secret", uam_secret)


# --- processes -------------------------------------------------------------------------------

def start_server(name: str, env: dict[str, str], workers: int, threads: int | None) -> Server:
    """gunicorn exactly as `conecta portal` builds it (launcher.gunicorn_command), on 127.0.0.1; for the
    reference, the same command serving bench/reference_app.py instead of wsgi:app."""
    from portal.cli.launcher import ROOT, gunicorn_command
    from portal.core.settings import load_settings
    port = free_port()
    env = {**env, "CONECTA_PORTAL_PORT": str(port)}
    argv = gunicorn_command(load_settings(env), workers=workers)
    if threads:
        argv[argv.index("--threads") + 1] = str(threads)
    cwd = ROOT
    if name == "reference":
        argv[argv.index("--chdir") + 1], argv[-1], cwd = str(HERE), "reference_app:app", HERE
        subprocess.run([sys.executable, str(HERE / "reference_app.py")], env=env, check=True, timeout=60)
    database = "postgresql" if env["CONECTA_DATABASE_URL"].startswith("postgresql") else "sqlite"
    log = OUT / f"portal-gunicorn-{name}-{database}.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=cwd,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    STARTED.append(proc)
    server = Server(name, port, proc, log, env)
    wait_ready(server, workers, "/healthz" if name == "conecta" else "/")
    return server


def wait_ready(server: Server, workers: int, path: str, timeout: float = 30.0) -> None:
    """Wait until `path` answers 200 and every worker is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"gunicorn exited with status {server.proc.returncode}; see {server.log}")
        if len(children(server.proc.pid)) >= workers and _answers(server.port, path):
            return
        time.sleep(0.2)
    raise BenchError(f"{server.name} did not answer {path} within {timeout:.0f} s; see {server.log}")


def _answers(port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """PIDs of the direct children of `pid` (gunicorn's workers)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds used so far by these processes."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_quiet(limit: float = 0.3, patience: float = 10.0) -> float:
    """Wait (at most `patience` s) until the machine is less than `limit` busy; return the last reading."""
    deadline = time.monotonic() + patience
    while True:
        b0, t0 = machine_ticks()
        time.sleep(1.0)
        b1, t1 = machine_ticks()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy < limit or time.monotonic() > deadline:
            return round(busy, 3)


def start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot (tells a process from a later one with its PID)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM this process; if it lingers, SIGKILL it and the children it had (the same processes only)."""
    kids = [(pid, start_time(pid)) for pid in children(proc.pid)]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
            for pid, started in kids:
                if started is not None and start_time(pid) == started:
                    os.kill(pid, signal.SIGKILL)
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all() -> None:
    """Stop every process this benchmark started, newest first."""
    for proc in reversed(list(STARTED)):
        try:
            stop(proc)
        except Exception as exc:  # noqa: BLE001 - keep stopping the others
            print(f"warning: could not stop pid {proc.pid}: {exc}")


# --- CoovaChilli redirects -------------------------------------------------------------------

MAC_SERIAL = itertools.count(1)


def next_mac(kind: int) -> str:
    """A new locally administered MAC in CoovaChilli's notation (02-KK-xx-xx-xx-xx)."""
    n = next(MAC_SERIAL)
    return f"02-{kind:02X}-" + "-".join(f"{b:02X}" for b in n.to_bytes(4, "big"))


def coova_path(server: Server, mac: str) -> str:
    """The path + query of a CoovaChilli UAM redirect for `mac`, signed with md as chilli does."""
    serial = int(mac.replace("-", "")[-6:], 16)
    query = urlencode({
        "res": "notyet", "uamip": HOST, "uamport": UAM_PORT, "challenge": secrets.token_hex(16),
        "called": "02-AA-00-00-00-01", "mac": mac, "ip": f"127.1.{serial >> 8 & 255}.{serial & 255}",
        "nasid": NAS_NAME, "sessionid": secrets.token_hex(8), "userurl": "http://example.com/noticias"})
    before_md = f"/?{query}"
    md = hashlib.md5(f"{server.origin}{before_md}{server.uam_secret}".encode()).hexdigest().upper()
    return f"{before_md}&md={md}"


# --- HTTP, wrk and meters --------------------------------------------------------------------

def exchange(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str],
             body: str | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a keep-alive connection; return status, headers and the whole body."""
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.headers, resp.read()


def session_cookie(headers: http.client.HTTPMessage) -> str | None:
    """The `conecta=…` pair from Set-Cookie."""
    for value in headers.get_all("Set-Cookie") or []:
        if value.startswith("conecta="):
            return value.split(";", 1)[0]
    return None


def run_wrk(server: Server, paths: Path, seconds: float, connections: int) -> dict:
    """One wrk run over the precomputed paths; return the script's JSON summary."""
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-H", "Accept-Language: es-MX,es;q=0.9", "-s", str(HERE / "portal_splash.lua"),
            server.origin + "/", "--", str(paths), "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    STARTED.append(proc)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        stop(proc)
    line = next((x for x in out.splitlines() if x.startswith("PORTAL_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no summary:\n{out}")
    return json.loads(line.split(" ", 1)[1])


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`, 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


class PgWatch:
    """Polls the backends of the benchmark's database: their CPU (also of those that exit) and how many opened."""

    def __init__(self, interval: float = 0.25) -> None:
        import psycopg
        self.conn = psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5)
        self.interval, self.done = interval, threading.Event()
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.initial = set(self.backends())
        for pid in self.initial:
            self.first[pid] = self.last[pid] = cpu_seconds([pid])
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def backends(self) -> list[int]:
        """PIDs of the backends connected to the benchmark's database now."""
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB_NAME,)).fetchall()
        return [pid for (pid,) in rows]

    def run(self) -> None:
        """Sample until stopped."""
        while not self.done.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        """Note every backend's CPU so far (a new one counted from 0)."""
        for pid in self.backends():
            cpu = cpu_seconds([pid])
            self.first.setdefault(pid, 0.0)
            if cpu:
                self.last[pid] = cpu

    def stop(self) -> tuple[float, int]:
        """(CPU seconds the backends used, backends opened) since the start."""
        self.done.set()
        self.thread.join(5)
        self.sample()
        self.conn.close()
        return sum(self.last.get(p, f) - f for p, f in self.first.items()), len(set(self.first) - self.initial)


def client_cpu() -> float:
    """CPU seconds of this process (the registration clients) and of its reaped children (wrk)."""
    import resource
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


class Meter:
    """CPU of the gunicorn processes, of the database's backends, of the load generator and of the machine."""

    def __init__(self, server: Server) -> None:
        self.pids = [server.proc.pid, *children(server.proc.pid)]
        self.watch_pg = server.env["CONECTA_DATABASE_URL"].startswith("postgresql")

    def start(self) -> None:
        """Take the first reading."""
        self.pg = PgWatch() if self.watch_pg else None
        self.t0, self.cpu0, self.ticks0 = time.monotonic(), cpu_seconds(self.pids), machine_ticks()
        self.client0 = client_cpu()

    def stop(self, ops: int) -> dict[str, float]:
        """Cores the portal used, CPU per operation of each party, and the machine's busy fraction."""
        wall, cpu = time.monotonic() - self.t0, cpu_seconds(self.pids) - self.cpu0
        client = client_cpu() - self.client0
        busy1, total1 = machine_ticks()
        pg, opened = self.pg.stop() if self.pg else (0.0, 0)
        per_op = {"portal": cpu, "postgres": pg, "client": client}
        out = {f"{k}_cpu_ms_per_op": round(1000 * v / max(1, ops), 2) for k, v in per_op.items()}
        return {"portal_cores": round(cpu / wall, 2), **out, "pg_connections_opened": opened,
                # what 2 idle cores would allow: the CPU every party spends on one operation, Redis aside
                "cpu_bound_rate_2_cores": round(2 * max(1, ops) / max(1e-9, sum(per_op.values())), 1),
                "machine_busy": round((busy1 - self.ticks0[0]) / max(1, total1 - self.ticks0[1]), 3)}


