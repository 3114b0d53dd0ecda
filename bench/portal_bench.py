"""Portal benchmark (issue 16): splash pages and completed registrations under gunicorn gthread, as
ratios to the smallest Flask page and form POST served the same way in the same run.

For each database (PostgreSQL on 127.0.0.1:5432 and the embedded default, SQLite) it sets up its own
data dir (and PostgreSQL database conecta_portal_bench) with Redis db 13, runs `conecta init`, adds a
site and a CoovaChilli NAS with a UAM secret, and starts the portal with the launcher's own gunicorn
command on 127.0.0.1. Then it measures

  splash        GET / as a CoovaChilli redirect builds it (distinct MAC, fresh challenge, correct md),
                driven by wrk with bench/portal_splash.lua;
  registration  arrival GET (session cookie + CSRF token) then POST /register (gender, age band,
                terms, privacy) answered by the 302 hand-off to the NAS's /logon, one new MAC each,
                driven by a threaded Python client (closed loop);

and, with the same gunicorn command serving bench/reference_app.py on the same database,

  bare page     GET of the smallest Flask page (same wrk, same connections);
  bare POST     the smallest Flask form POST that writes one row (same client, same threads).

Targets: splash >= 70 % of the bare page, registration >= 35 % of the bare POST. It prints the rates,
p50 and p99, the ratios with PASS/FAIL, the CPU per operation and the database round trips, writes
bench/out/portal.json, and stops all it started (also on Ctrl-C). Exit status: 0 all targets met, 1
measured but a target missed or requests failed, 2 could not run.

  .venv/bin/python bench/portal_bench.py [--databases postgresql,sqlite] [--duration S] [--warmup S]
      [--connections N] [--citizens N] [--threads N] [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

from portal_probe import CSRF, probe
from portal_rig import (
    FORM,
    HERE,
    HOST,
    OUT,
    STARTED,
    UAM_PORT,
    VENV_BIN,
    BenchError,
    Meter,
    Server,
    Tally,
    conecta_env,
    coova_path,
    drop_stores,
    exchange,
    next_mac,
    percentile,
    reset_stores,
    run_wrk,
    session_cookie,
    setup_fleet,
    start_server,
    stop,
    stop_all,
    wait_quiet,
)

# Conecta's operation against the reference's, and the least ratio that passes.
TARGETS = {"splash": ("bare_page", 0.70), "registration": ("bare_post", 0.35)}
DATABASES = ("postgresql", "sqlite")
LINE_NO = re.compile(r":\d+\)$")
PROJECT_FRAME = re.compile(r"\((?:portal|radius|policies)/|templates/")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--databases", default=",".join(DATABASES), help="postgresql,sqlite (default both)")
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase (default 15)")
    ap.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per phase (default 3)")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections for the GETs (default 16)")
    ap.add_argument("--citizens", type=int, default=16, help="concurrent POSTing clients (default 16)")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, as `conecta portal`)")
    ap.add_argument("--threads", type=int, help="gunicorn threads per worker (default: the launcher's)")
    ap.add_argument("--profile", action="store_true", help="sample Conecta's workers with py-spy while measuring")
    ap.add_argument("--keep", action="store_true", help="keep the database, Redis db 13 and the data dir")
    args = ap.parse_args(argv)
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if not (1 <= args.duration <= 60 and 0 <= args.warmup <= 15):
        ap.error("--duration must be 1..60 s and --warmup 0..15 s (the whole run stays near 6 minutes)")
    if not args.databases or set(args.databases) - set(DATABASES):
        ap.error("--databases: postgresql, sqlite or both")
    return args


# --- one client operation, over http.client --------------------------------------------------

BASE_HEADERS = {"Accept-Language": "es-MX,es;q=0.9", "User-Agent": "conecta-portal-bench"}


def register_once(conn: http.client.HTTPConnection, server: Server) -> tuple[float, float, float]:
    """Arrival GET then registration POST for a new MAC; return (start, after GET, end) or raise."""
    t0 = time.perf_counter()
    status, headers, body = exchange(conn, "GET", coova_path(server, next_mac(1)), BASE_HEADERS)
    token, cookie = CSRF.search(body), session_cookie(headers)
    if status != 200 or not token or not cookie:
        raise BenchError(f"arrival GET {status}{'' if token else ' without CSRF token'}")
    t1 = time.perf_counter()
    form = urlencode({**FORM, "csrf_token": token.group(1).decode()})
    status, headers, _ = exchange(conn, "POST", "/register", {
        **BASE_HEADERS, "Cookie": cookie, "Origin": server.origin, "Referer": server.origin + "/",
        "Content-Type": "application/x-www-form-urlencoded"}, form)
    location = headers.get("Location", "")
    if status != 302 or f"{HOST}:{UAM_PORT}/logon?username=c-" not in location:
        raise BenchError(f"registration POST {status}")
    return t0, t1, time.perf_counter()


def post_row_once(conn: http.client.HTTPConnection, server: Server) -> tuple[float, float, float]:
    """The reference's form POST (one row written); return (start, start, end) or raise."""
    t0 = time.perf_counter()
    status, _, _ = exchange(conn, "POST", "/row", {
        **BASE_HEADERS, "Origin": server.origin, "Content-Type": "application/x-www-form-urlencoded"},
        urlencode({"value": secrets.token_hex(8)}))
    if status != 302:
        raise BenchError(f"reference POST {status}")
    return t0, t0, time.perf_counter()


def client_loop(operation, server: Server, stop_at: float, tally: Tally) -> None:  # noqa: ANN001
    """Run `operation` back to back on one keep-alive connection until `stop_at` (perf_counter)."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    while time.perf_counter() < stop_at:
        try:
            tally.samples.append(operation(conn, server))
        except BenchError as exc:
            tally.errors[str(exc)] += 1
        except (OSError, http.client.HTTPException) as exc:
            tally.errors[type(exc).__name__] += 1
            conn.close()
    conn.close()


# --- phases ----------------------------------------------------------------------------------

def write_paths(server: Server, count: int) -> Path:
    """Precompute `count` GET paths for wrk, one per line: signed redirects, or the reference's page."""
    path = OUT / f"portal-paths-{server.name}.txt"
    if server.name == "conecta":
        path.write_text("".join(coova_path(server, next_mac(0)) + "\n" for _ in range(count)))
    else:
        path.write_text("/\n" * 1000)
    return path


def preflight(server: Server) -> None:
    """One splash page and one registration by hand, so a broken setup fails loudly, not as a 0."""
    conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
    try:
        status, _, body = exchange(conn, "GET", coova_path(server, next_mac(0)), {})
        if status != 200 or b'action="/register"' not in body:
            raise BenchError(f"splash GET answered {status} without the registration form; see {server.log}")
        register_once(conn, server)
    finally:
        conn.close()


def get_phase(server: Server, args: argparse.Namespace) -> dict:
    """Warm up, then measure GETs with wrk (the splash page, or the reference's page)."""
    paths = write_paths(server, 60_000)
    quiet = wait_quiet()
    if args.warmup:
        run_wrk(server, paths, args.warmup, args.connections)
    meter, profile = Meter(server), start_profile(server, "splash", args)
    meter.start()
    raw = run_wrk(server, paths, args.duration, args.connections)
    usage = meter.stop(raw["requests"])
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "bad_status"))
    return {"tool": "wrk", "connections": args.connections, "seconds": round(seconds, 2),
            "requests": raw["requests"], "errors": errors, "raw": raw,
            "rate": round(raw["requests"] / seconds, 1), "p50_ms": raw["p50_us"] / 1000,
            "p90_ms": raw["p90_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, **usage, "busy_before": quiet,
            "profile": finish_profile(profile)}


def post_phase(server: Server, args: argparse.Namespace) -> dict:
    """Run the clients for warm-up + duration (registrations, or the reference's POST); keep what
    completed inside the measured window."""
    operation = register_once if server.name == "conecta" else post_row_once
    quiet = wait_quiet()
    start = time.perf_counter()
    window = (start + args.warmup, start + args.warmup + args.duration)
    tallies = [Tally() for _ in range(args.citizens)]
    threads = [threading.Thread(target=client_loop, args=(operation, server, window[1], t), daemon=True)
               for t in tallies]
    for thread in threads:
        thread.start()
    meter = Meter(server)
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    profile = start_profile(server, "registration", args)
    meter.start()
    for thread in threads:
        thread.join(args.duration + 30)
    summary = summarize(tallies, window, args.citizens)
    usage = meter.stop(summary["operations"])
    return summary | usage | {"busy_before": quiet, "profile": finish_profile(profile)}


def summarize(tallies: list[Tally], window: tuple[float, float], clients: int) -> dict:
    """Rate and latencies of the operations that ended inside the window."""
    done = [s for t in tallies for s in t.samples if window[0] <= s[2] <= window[1]]
    errors = sum((t.errors for t in tallies), Counter())
    seconds = window[1] - window[0]
    whole = [(s[2] - s[0]) * 1000 for s in done]
    post = [(s[2] - s[1]) * 1000 for s in done]
    get = [(s[1] - s[0]) * 1000 for s in done]
    return {"tool": "python http.client threads", "clients": clients, "seconds": round(seconds, 2),
            "operations": len(done), "errors": sum(errors.values()), "error_kinds": dict(errors),
            "rate": round(len(done) / seconds, 1),
            "p50_ms": round(percentile(whole, 50), 2), "p99_ms": round(percentile(whole, 99), 2),
            "get_p50_ms": round(percentile(get, 50), 2), "get_p99_ms": round(percentile(get, 99), 2),
            "post_p50_ms": round(percentile(post, 50), 2), "post_p99_ms": round(percentile(post, 99), 2)}


def start_profile(server: Server, phase: str, args: argparse.Namespace) -> tuple[subprocess.Popen, Path] | None:
    """py-spy on the master and its workers for one phase: samples of threads holding the GIL (= CPU)."""
    if not args.profile or server.name != "conecta":
        return None
    spy = VENV_BIN / "py-spy"
    if not spy.exists():
        raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
    path = OUT / f"portal-profile-{phase}-{server.env['CONECTA_DATABASE_URL'][:6]}.txt"
    proc = subprocess.Popen([str(spy), "record", "--nonblocking", "--gil", "--subprocesses", "--format", "raw",
                             "--rate", "200", "--duration", str(max(1, round(args.duration))), "--pid",
                             str(server.proc.pid), "--output", str(path)], stdout=subprocess.DEVNULL,
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
    """Per database: each of Conecta's operations as a ratio to its reference, PASS/FAIL."""
    out = {}
    for database, r in results.items():
        out[database] = {}
        for phase, (reference, least) in TARGETS.items():
            ratio = r[phase]["rate"] / max(1e-9, r[reference]["rate"])
            out[database][phase] = {"rate": r[phase]["rate"], "reference": reference,
                                    "reference_rate": r[reference]["rate"], "ratio": round(ratio, 3),
                                    "target": least, "result": "PASS" if ratio >= least else "FAIL"}
    return out


def print_report(results: dict, verdict: dict) -> None:
    """The table of ratios, then per database the details that explain it."""
    print(f"\n{'database':<12}{'operation':<14}{'per s':>9}{'p50 ms':>8}{'p99 ms':>8}   {'reference':<11}"
          f"{'per s':>9}{'ratio':>8}{'target':>8}  result")
    for database, phases in verdict.items():
        for phase, v in phases.items():
            row = results[database][phase]
            print(f"{database:<12}{phase:<14}{row['rate']:>9.1f}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}   "
                  f"{v['reference'].replace('_', ' '):<11}{v['reference_rate']:>9.1f}{v['ratio']:>8.2f}"
                  f"{v['target']:>8.2f}  {v['result']}")
    for database, r in results.items():
        busy = max(r[p]["busy_before"] for p in ("splash", "registration", "bare_page", "bare_post"))
        if busy > 0.3:
            print(f"\nWARNING ({database}): other processes kept the machine up to {busy:.0%} busy before a phase")
        print_details(database, r)
        print_round_trips(r["round_trips"])
        for name in ("splash", "registration"):
            print_profile(name, r[name].get("profile"))


def print_details(database: str, r: dict) -> None:
    """Counts, errors, and the CPU each party spent per operation."""
    reg, s = r["registration"], r["splash"]
    print(f"\n{database}: {s['requests']} splash GETs, {reg['operations']} registrations, "
          f"{r['bare_page']['requests']} bare pages, {r['bare_post']['operations']} bare POSTs; errors "
          f"{s['errors'] + reg['errors'] + r['bare_page']['errors'] + r['bare_post']['errors']} "
          f"{reg['error_kinds'] or ''}")
    print(f"  registration: arrival GET p50 {reg['get_p50_ms']} / p99 {reg['get_p99_ms']} ms, POST /register "
          f"p50 {reg['post_p50_ms']} / p99 {reg['post_p99_ms']} ms")
    print("  CPU ms per op        server  postgres  client   server cores  machine busy  CPU-bound rate, 2 cores")
    for name, row in (("splash GET", s), ("bare page", r["bare_page"]), ("registration", reg),
                      ("bare POST", r["bare_post"])):
        print(f"  {name:<19}{row['portal_cpu_ms_per_op']:>8.2f}{row['postgres_cpu_ms_per_op']:>10.2f}"
              f"{row['client_cpu_ms_per_op']:>8.2f}{row['portal_cores']:>15.2f}{row['machine_busy']:>14.0%}"
              f"{row['cpu_bound_rate_2_cores']:>12.0f}/s")


def print_round_trips(trips: dict) -> None:
    """Database statements, PostgreSQL and Redis round trips per operation, by kind."""
    for name, label in (("splash", "splash GET"), ("registration", "registration"),
                        ("registration_post", "  its POST")):
        t = trips[name]
        pg = ", ".join(f"{k[3:]} {v:g}" for k, v in t.items() if k.startswith("pg_") and k != "pg_round_trips")
        rd = ", ".join(f"{k[6:]} {v:g}" for k, v in t.items() if k.startswith("redis_") and k != "redis_round_trips")
        print(f"  per {label}: SQL statements {t.get('sql_statements', 0):g} (commits {t.get('sql_commits', 0):g}, "
              f"rollbacks {t.get('sql_rollbacks', 0):g}); PostgreSQL round trips {t.get('pg_round_trips', 0):g} "
              f"({pg or '-'}); Redis {t.get('redis_round_trips', 0):g} ({rd or '-'})")


def print_profile(name: str, prof: dict | None) -> None:
    """The hottest frames py-spy saw, if --profile."""
    if not prof or "self" not in prof:
        return
    print(f"\n  profile {name} ({prof['samples']} samples holding the GIL, {prof['file']}): own time")
    for frame, pct in prof["self"][:8]:
        print(f"    {pct:5.1f}%  {frame}")
    print("    project code, including callees:")
    for frame, pct in prof["project_inclusive"][:8]:
        print(f"    {pct:5.1f}%  {frame}")


def write_json(results: dict, verdict: dict, args: argparse.Namespace, wall: float) -> Path:
    """bench/out/portal.json."""
    path = OUT / "portal.json"
    payload = {"when": datetime.now(timezone.utc).isoformat(), "command": " ".join(sys.argv),
               "cpus": os.cpu_count(), "options": vars(args), "wall_seconds": round(wall, 1),
               "targets": verdict, "results": results}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


# --- main ------------------------------------------------------------------------------------

def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def measure_database(database: str, args: argparse.Namespace) -> dict:
    """Conecta and the reference on one database, phases interleaved so both see the same machine."""
    data_dir = OUT / f"portal-data-{database}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    uam_secret = secrets.token_hex(16)
    print(f"\n== {database}: Redis db 13, data dir {data_dir.relative_to(HERE.parent)}", flush=True)
    reset_stores(database)
    env = conecta_env(database, data_dir, 0)
    setup_fleet(env, uam_secret)
    conecta = start_server("conecta", env, args.workers, args.threads)
    conecta.uam_secret = uam_secret
    reference = start_server("reference", env, args.workers, args.threads)
    print(f"portal on {conecta.origin}, reference on {reference.origin}", flush=True)
    preflight(conecta)
    out = {"round_trips": probe({**env, "CONECTA_PORTAL_PORT": str(conecta.port)}, conecta.origin,
                                lambda: coova_path(conecta, next_mac(2)), FORM)}
    for name, server, phase in (("splash", conecta, get_phase), ("bare_page", reference, get_phase),
                                ("registration", conecta, post_phase), ("bare_post", reference, post_phase)):
        print(f"{name}: {args.warmup:g} s warm-up + {args.duration:g} s", flush=True)
        out[name] = phase(server, args)
    stop(reference.proc)
    stop(conecta.proc)
    return out


def cleanup(args: argparse.Namespace) -> None:
    """Stop all processes; drop the stores and the data dirs unless --keep."""
    stop_all()
    for path in OUT.glob("portal-paths-*.txt"):
        path.unlink(missing_ok=True)
    if not args.keep:
        drop_stores()
        for database in DATABASES:
            shutil.rmtree(OUT / f"portal-data-{database}", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write the figures."""
    args = parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)   # also when started with SIGINT ignored
    started = time.monotonic()
    try:
        results = {database: measure_database(database, args) for database in args.databases}
    except (BenchError, subprocess.CalledProcessError, RuntimeError) as exc:
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
    failed = any(v["result"] == "FAIL" for phases in verdict.values() for v in phases.values())
    errors = any(r[p]["errors"] for r in results.values() for p in ("splash", "registration", "bare_page", "bare_post"))
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main())
