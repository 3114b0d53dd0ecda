"""Portal benchmark (issue 3, "Figures"): splash GETs and completed registrations under gunicorn gthread.

Sets up its own data dir, PostgreSQL database (conecta_portal_bench) and Redis db 13, runs
`conecta init`, adds a site and a CoovaChilli NAS with a UAM secret, and starts the portal with the
launcher's own gunicorn command on 127.0.0.1. Then it measures

  splash        GET / as a CoovaChilli redirect builds it (distinct MAC, fresh challenge, correct md),
                driven by wrk with bench/portal_splash.lua;
  registration  arrival GET (session cookie + CSRF token) then POST /register (gender, age band,
                terms, privacy) answered by the 302 hand-off to the NAS's /logon, one new MAC each,
                driven by a threaded Python client (closed loop).

It prints req/s, p50 and p99 with the ratio to the targets (500 splash pages/s, 150 registrations/s),
writes bench/out/portal.json, and stops all it started (also on Ctrl-C). Exit status: 0 all targets
met, 1 measured but a target missed or requests failed, 2 could not run.

  .venv/bin/python bench/portal_bench.py [--duration S] [--warmup S] [--connections N]
      [--citizens N] [--threads N] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import itertools
import json
import os
import re
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
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from portal_probe import CSRF, probe

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PG = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "conecta_portal_bench"
REDIS_URL = "redis://127.0.0.1:6379/13"
IP_LIMIT = "10000000/minute"       # all the load comes from 127.0.0.1; the per-MAC limit stays as shipped
NAS_NAME, UAM_PORT = "bench-ap", 3990
TARGETS = {"splash": 500.0, "registration": 150.0}
FORM = {"gender": "undisclosed", "age_band": "30-44", "terms": "yes", "privacy": "yes"}
LINE_NO = re.compile(r":\d+\)$")
PROJECT_FRAME = re.compile(r"\((?:portal|radius|policies)/|templates/")
STARTED: list[subprocess.Popen] = []


class BenchError(RuntimeError):
    """The benchmark could not set up or measure; the message says what to look at."""


@dataclass
class Portal:
    """The running portal: its port, its UAM secret, the gunicorn process and its log."""

    port: int
    uam_secret: str
    proc: subprocess.Popen
    log: Path
    data_dir: Path

    @property
    def origin(self) -> str:
        """Scheme, host and port as a browser's Origin header gives them."""
        return f"http://{HOST}:{self.port}"


@dataclass
class Tally:
    """One registration thread's samples (start, after GET, end) and its failures."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


# --- options ---------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase (default 15)")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per phase (default 3)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections for the splash (default 16)")
    ap.add_argument("--citizens", type=int, default=16, help="concurrent registering clients (default 16)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, as `conecta portal`)")
    ap.add_argument("--threads", type=int, help="gunicorn threads per worker (default: the launcher's)")
    ap.add_argument("--profile", action="store_true", help="sample the workers with py-spy while measuring")
    ap.add_argument("--keep", action="store_true", help="keep the database, Redis db 13 and the data dir")
    args = ap.parse_args(argv)
    if not (1 <= args.duration <= 60 and 0 <= args.warmup <= 15):
        ap.error("--duration must be 1..60 s and --warmup 0..15 s (the whole run stays near 2 minutes)")
    return args


# --- stores and fleet ------------------------------------------------------------------------

def database_url() -> str:
    """The SQLAlchemy URL of the benchmark's own database."""
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"


def reset_stores() -> None:
    """A fresh conecta_portal_bench database and an empty Redis db 13."""
    import psycopg
    import redis
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


def conecta_env(data_dir: Path, port: int) -> dict[str, str]:
    """The environment of every `conecta` command and of gunicorn."""
    return {**os.environ, "CONECTA_DATA_DIR": str(data_dir), "CONECTA_DATABASE_URL": database_url(),
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


def start_portal(data_dir: Path, uam_secret: str, args: argparse.Namespace) -> Portal:
    """gunicorn exactly as `conecta portal` builds it (launcher.gunicorn_command), on 127.0.0.1."""
    from portal.cli.launcher import gunicorn_command
    from portal.core.settings import load_settings
    port = free_port()
    env = conecta_env(data_dir, port)
    argv = gunicorn_command(load_settings(env), workers=args.workers)
    if args.threads:
        argv[argv.index("--threads") + 1] = str(args.threads)
    log = OUT / "portal-gunicorn.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(argv, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    STARTED.append(proc)
    portal = Portal(port, uam_secret, proc, log, data_dir)
    wait_ready(portal, args.workers)
    return portal


def wait_ready(portal: Portal, workers: int, timeout: float = 30.0) -> None:
    """Wait until /healthz answers 200 and every worker is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if portal.proc.poll() is not None:
            raise BenchError(f"gunicorn exited with status {portal.proc.returncode}; see {portal.log}")
        if len(children(portal.proc.pid)) >= workers and _healthy(portal.port):
            return
        time.sleep(0.2)
    raise BenchError(f"the portal did not answer /healthz within {timeout:.0f} s; see {portal.log}")


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


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


def coova_path(portal: Portal, mac: str) -> str:
    """The path + query of a CoovaChilli UAM redirect for `mac`, signed with md as chilli does."""
    serial = int(mac.replace("-", "")[-6:], 16)
    query = urlencode({
        "res": "notyet", "uamip": HOST, "uamport": UAM_PORT, "challenge": secrets.token_hex(16),
        "called": "02-AA-00-00-00-01", "mac": mac, "ip": f"127.1.{serial >> 8 & 255}.{serial & 255}",
        "nasid": NAS_NAME, "sessionid": secrets.token_hex(8), "userurl": "http://example.com/noticias"})
    before_md = f"/?{query}"
    md = hashlib.md5(f"{portal.origin}{before_md}{portal.uam_secret}".encode()).hexdigest().upper()
    return f"{before_md}&md={md}"


# --- one citizen, over http.client -----------------------------------------------------------

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


def register_once(conn: http.client.HTTPConnection, portal: Portal) -> tuple[float, float, float]:
    """Arrival GET then registration POST for a new MAC; return (start, after GET, end) or raise."""
    base = {"Accept-Language": "es-MX,es;q=0.9", "User-Agent": "conecta-portal-bench"}
    t0 = time.perf_counter()
    status, headers, body = exchange(conn, "GET", coova_path(portal, next_mac(1)), base)
    token, cookie = CSRF.search(body), session_cookie(headers)
    if status != 200 or not token or not cookie:
        raise BenchError(f"arrival GET {status}{'' if token else ' without CSRF token'}")
    t1 = time.perf_counter()
    form = urlencode({**FORM, "csrf_token": token.group(1).decode()})
    status, headers, _ = exchange(conn, "POST", "/register", {
        **base, "Cookie": cookie, "Origin": portal.origin, "Referer": portal.origin + "/",
        "Content-Type": "application/x-www-form-urlencoded"}, form)
    location = headers.get("Location", "")
    if status != 302 or f"{HOST}:{UAM_PORT}/logon?username=c-" not in location:
        raise BenchError(f"registration POST {status}")
    return t0, t1, time.perf_counter()


def citizen_loop(portal: Portal, stop_at: float, tally: Tally) -> None:
    """Register new citizens back to back until `stop_at` (a perf_counter time)."""
    conn = http.client.HTTPConnection(HOST, portal.port, timeout=10)
    while time.perf_counter() < stop_at:
        try:
            tally.samples.append(register_once(conn, portal))
        except BenchError as exc:
            tally.errors[str(exc)] += 1
        except (OSError, http.client.HTTPException) as exc:
            tally.errors[type(exc).__name__] += 1
            conn.close()
    conn.close()


def round_trips(portal: Portal) -> dict:
    """PostgreSQL and Redis round trips per splash GET and per registration (see portal_probe.py)."""
    env = conecta_env(portal.data_dir, portal.port)
    try:
        return probe(env, portal.origin, lambda: coova_path(portal, next_mac(2)), FORM)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None


# --- phases ----------------------------------------------------------------------------------

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

    def __init__(self, portal: Portal) -> None:
        self.pids = [portal.proc.pid, *children(portal.proc.pid)]

    def start(self) -> None:
        """Take the first reading."""
        self.pg = PgWatch()
        self.t0, self.cpu0, self.ticks0 = time.monotonic(), cpu_seconds(self.pids), machine_ticks()
        self.client0 = client_cpu()

    def stop(self, ops: int) -> dict[str, float]:
        """Cores the portal used, CPU per operation of each party, and the machine's busy fraction."""
        wall, cpu = time.monotonic() - self.t0, cpu_seconds(self.pids) - self.cpu0
        client = client_cpu() - self.client0
        busy1, total1 = machine_ticks()
        pg, opened = self.pg.stop()
        per_op = {"portal": cpu, "postgres": pg, "client": client}
        out = {f"{k}_cpu_ms_per_op": round(1000 * v / max(1, ops), 2) for k, v in per_op.items()}
        return {"portal_cores": round(cpu / wall, 2), **out, "pg_connections_opened": opened,
                # what 2 idle cores would allow: the CPU every party spends on one operation, Redis aside
                "cpu_bound_rate_2_cores": round(2 * max(1, ops) / max(1e-9, sum(per_op.values())), 1),
                "machine_busy": round((busy1 - self.ticks0[0]) / max(1, total1 - self.ticks0[1]), 3)}


def write_paths(portal: Portal, count: int) -> Path:
    """Precompute `count` distinct signed redirects for wrk, one per line."""
    path = OUT / "portal-splash-paths.txt"
    path.write_text("".join(coova_path(portal, next_mac(0)) + "\n" for _ in range(count)))
    return path


def preflight(portal: Portal) -> None:
    """One splash page and one registration by hand, so a broken setup fails loudly, not as a 0."""
    conn = http.client.HTTPConnection(HOST, portal.port, timeout=10)
    try:
        status, _, body = exchange(conn, "GET", coova_path(portal, next_mac(0)), {})
        if status != 200 or b'action="/register"' not in body:
            raise BenchError(f"splash GET answered {status} without the registration form; see {portal.log}")
        register_once(conn, portal)
    finally:
        conn.close()


def run_wrk(portal: Portal, paths: Path, seconds: float, connections: int) -> dict:
    """One wrk run over the precomputed redirects; return the script's JSON summary."""
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-H", "Accept-Language: es-MX,es;q=0.9", "-s", str(HERE / "portal_splash.lua"),
            portal.origin + "/", "--", str(paths), "1"]
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


def splash_phase(portal: Portal, args: argparse.Namespace) -> dict:
    """Warm up, then measure the splash GET with wrk."""
    paths = write_paths(portal, 60_000)
    quiet = wait_quiet()
    if args.warmup:
        run_wrk(portal, paths, args.warmup, args.connections)
    meter, profile = Meter(portal), start_profile(portal, "splash", args)
    meter.start()
    raw = run_wrk(portal, paths, args.duration, args.connections)
    usage = meter.stop(raw["requests"])
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "bad_status"))
    return {"tool": "wrk", "connections": args.connections, "seconds": round(seconds, 2),
            "requests": raw["requests"], "errors": errors, "raw": raw,
            "rate": round(raw["requests"] / seconds, 1), "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, **usage, "busy_before": quiet,
            "profile": finish_profile(profile)}


def registration_phase(portal: Portal, args: argparse.Namespace) -> dict:
    """Run the citizens for warm-up + duration; keep what completed inside the measured window."""
    quiet = wait_quiet()
    start = time.perf_counter()
    window = (start + args.warmup, start + args.warmup + args.duration)
    tallies = [Tally() for _ in range(args.citizens)]
    threads = [threading.Thread(target=citizen_loop, args=(portal, window[1], t), daemon=True) for t in tallies]
    for thread in threads:
        thread.start()
    meter = Meter(portal)
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    profile = start_profile(portal, "registration", args)
    meter.start()
    for thread in threads:
        thread.join(args.duration + 30)
    summary = summarize_registrations(tallies, window, args.citizens)
    usage = meter.stop(summary["registrations"])
    return summary | usage | {"busy_before": quiet, "profile": finish_profile(profile)}


def summarize_registrations(tallies: list[Tally], window: tuple[float, float], citizens: int) -> dict:
    """Rate and latencies of the registrations that ended inside the window."""
    done = [s for t in tallies for s in t.samples if window[0] <= s[2] <= window[1]]
    errors = sum((t.errors for t in tallies), Counter())
    seconds = window[1] - window[0]
    whole = [(s[2] - s[0]) * 1000 for s in done]
    post = [(s[2] - s[1]) * 1000 for s in done]
    get = [(s[1] - s[0]) * 1000 for s in done]
    return {"tool": "python http.client threads", "citizens": citizens, "seconds": round(seconds, 2),
            "registrations": len(done), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "rate": round(len(done) / seconds, 1), "http_requests_per_s": round(2 * len(done) / seconds, 1),
            "p50_ms": round(percentile(whole, 50), 2), "p99_ms": round(percentile(whole, 99), 2),
            "get_p50_ms": round(percentile(get, 50), 2), "get_p99_ms": round(percentile(get, 99), 2),
            "post_p50_ms": round(percentile(post, 50), 2), "post_p99_ms": round(percentile(post, 99), 2)}


# --- optional profile ------------------------------------------------------------------------

def start_profile(portal: Portal, phase: str, args: argparse.Namespace) -> tuple[subprocess.Popen, Path] | None:
    """py-spy on the master and its workers for one phase: samples of threads holding the GIL (= CPU)."""
    if not args.profile:
        return None
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    path = OUT / f"portal-profile-{phase}.txt"
    proc = subprocess.Popen([str(spy), "record", "--nonblocking", "--gil", "--subprocesses", "--format", "raw",
                             "--rate", "200", "--duration", str(max(1, round(args.duration))), "--pid",
                             str(portal.proc.pid), "--output", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    STARTED.append(proc)
    return proc, path


def finish_profile(profile: tuple[subprocess.Popen, Path] | None) -> dict | None:
    """Wait for py-spy and return the hottest frames: by own time, and project lines by total time."""
    if profile is None:
        return None
    proc, path = profile
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    stop(proc)
    if not path.exists():
        return {"error": "py-spy wrote nothing (ptrace not permitted?)"}
    return {"file": str(path.relative_to(HERE.parent)), **hot_frames(path.read_text())}


def hot_frames(collapsed: str, top: int = 12) -> dict:
    """Top functions by own samples, and top project lines (portal/, templates) by inclusive samples."""
    own, inclusive, total = Counter(), Counter(), 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += int(count)
        if frames:
            own[LINE_NO.sub(")", frames[-1])] += int(count)
        for frame in set(frames):
            if PROJECT_FRAME.search(frame):
                inclusive[frame] += int(count)
    share = max(1, total)
    return {"samples": total,
            "self": [[f, round(100 * n / share, 1)] for f, n in own.most_common(top)],
            "project_inclusive": [[f, round(100 * n / share, 1)] for f, n in inclusive.most_common(top)]}


# --- report ----------------------------------------------------------------------------------

def verdicts(results: dict) -> dict:
    """Ratio to target and PASS/FAIL per phase."""
    out = {}
    for phase, target in TARGETS.items():
        rate = results[phase]["rate"]
        out[phase] = {"target_per_s": target, "rate": rate, "ratio": round(rate / target, 2),
                      "result": "PASS" if rate >= target else "FAIL"}
    return out


def print_report(results: dict, verdict: dict) -> None:
    """The table, then the details that explain it."""
    print(f"\n{'phase':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'target':>9}{'ratio':>8}  result")
    for name, unit in (("splash", "pages/s"), ("registration", "registrations/s")):
        row, v = results[name], verdict[name]
        print(f"{name:<14}{row['rate']:>9.1f}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}"
              f"{v['target_per_s']:>9.0f}{v['ratio']:>8.2f}  {v['result']} ({unit})")
    busy = [results[n]["busy_before"] for n in ("splash", "registration")]
    if max(busy) > 0.3:
        print(f"\nWARNING: other processes kept the machine {busy[0]:.0%} / {busy[1]:.0%} busy before the "
              "phases: the figures are skewed low (compare the CPU per operation instead)")
    print_details(results["splash"], results["registration"])
    print_round_trips(results["round_trips"])
    for name in ("splash", "registration"):
        print_profile(name, results[name].get("profile"))


def print_details(s: dict, r: dict) -> None:
    """Counts, errors, the latency split, and the CPU each party spent per operation."""
    print(f"\nsplash: {s['requests']} GETs in {s['seconds']} s over {s['connections']} keep-alive connections, "
          f"{s['errors']} errors")
    print(f"registration: {r['registrations']} in {r['seconds']} s by {r['citizens']} clients "
          f"({r['http_requests_per_s']} HTTP req/s), {r['errors']} errors {r['error_kinds'] or ''}")
    print(f"  arrival GET p50 {r['get_p50_ms']} / p99 {r['get_p99_ms']} ms, POST /register p50 "
          f"{r['post_p50_ms']} / p99 {r['post_p99_ms']} ms")
    print("\nCPU ms per op          portal  postgres  client   portal cores  machine busy  CPU-bound rate, 2 cores")
    for name, row in (("splash GET", s), ("registration", r)):
        print(f"  {name:<20}{row['portal_cpu_ms_per_op']:>8.2f}{row['postgres_cpu_ms_per_op']:>10.2f}"
              f"{row['client_cpu_ms_per_op']:>8.2f}{row['portal_cores']:>15.2f}{row['machine_busy']:>14.0%}"
              f"{row['cpu_bound_rate_2_cores']:>12.0f}/s")
    print(f"new PostgreSQL connections while measuring (the pool letting overflow go): splash "
          f"{s['pg_connections_opened']}, registration {r['pg_connections_opened']}")


def print_round_trips(trips: dict) -> None:
    """PostgreSQL and Redis round trips per operation, by kind."""
    print()
    for name, label in (("splash", "splash GET"), ("registration", "registration"),
                        ("registration_post", "  its POST")):
        t = trips[name]
        pg = ", ".join(f"{k[3:]} {v:g}" for k, v in t.items() if k.startswith("pg_") and k != "pg_round_trips")
        rd = ", ".join(f"{k[6:]} {v:g}" for k, v in t.items() if k.startswith("redis_") and k != "redis_round_trips")
        print(f"round trips per {label}: PostgreSQL {t.get('pg_round_trips', 0):g} ({pg or '-'}), "
              f"Redis {t.get('redis_round_trips', 0):g} ({rd or '-'})")


def print_profile(name: str, prof: dict | None) -> None:
    """The hottest frames py-spy saw, if --profile."""
    if not prof or "self" not in prof:
        return
    print(f"\nprofile {name} ({prof['samples']} samples holding the GIL, {prof['file']}): own time")
    for frame, pct in prof["self"][:8]:
        print(f"  {pct:5.1f}%  {frame}")
    print("  project code, including callees:")
    for frame, pct in prof["project_inclusive"][:8]:
        print(f"  {pct:5.1f}%  {frame}")


def write_json(results: dict, verdict: dict, args: argparse.Namespace, wall: float) -> Path:
    """bench/out/portal.json."""
    path = OUT / "portal.json"
    payload = {"when": datetime.now(timezone.utc).isoformat(), "command": " ".join(sys.argv),
               "cpus": os.cpu_count(), "options": vars(args), "wall_seconds": round(wall, 1),
               "targets": verdict, **results}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# --- main ------------------------------------------------------------------------------------

def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def measure(args: argparse.Namespace) -> dict:
    """Set everything up, run both phases, and return their results."""
    data_dir = OUT / "portal-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    uam_secret = secrets.token_hex(16)
    print(f"setting up: database {DB_NAME}, Redis db 13, data dir {data_dir.relative_to(HERE.parent)}", flush=True)
    reset_stores()
    setup_fleet(conecta_env(data_dir, 0), uam_secret)
    portal = start_portal(data_dir, uam_secret, args)
    print(f"portal up on {portal.origin} (pid {portal.proc.pid}, workers {children(portal.proc.pid)})", flush=True)
    preflight(portal)
    trips = round_trips(portal)
    print(f"splash: wrk, {args.connections} connections, {args.warmup:g} s warm-up + {args.duration:g} s", flush=True)
    splash = splash_phase(portal, args)
    print(f"registration: {args.citizens} clients, {args.warmup:g} s warm-up + {args.duration:g} s", flush=True)
    registration = registration_phase(portal, args)
    return {"splash": splash, "registration": registration, "round_trips": trips}


def cleanup(args: argparse.Namespace) -> None:
    """Stop all processes; drop the stores and the data dir unless --keep."""
    stop_all()
    (OUT / "portal-splash-paths.txt").unlink(missing_ok=True)
    if not args.keep:
        drop_stores()
        shutil.rmtree(OUT / "portal-data", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write the figures."""
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # also when started with SIGINT ignored
    started = time.monotonic()
    try:
        results = measure(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; stopping what was started", file=sys.stderr)
        return 130
    finally:
        cleanup(args)
    verdict = verdicts(results)
    print_report(results, verdict)
    path = write_json(results, verdict, args, time.monotonic() - started)
    print(f"\nwrote {path.relative_to(HERE.parent)} (total {time.monotonic() - started:.0f} s)")
    failed = any(v["result"] == "FAIL" for v in verdict.values())
    return 1 if failed or results["splash"]["errors"] or results["registration"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
