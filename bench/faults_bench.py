"""`make bench-faults`: faults under load, one at a time, against `conecta radius` on PostgreSQL + Redis
that this benchmark starts itself, with accounting checked record by record in SQL afterwards.

Mixed Access-Requests and accounting (Start, 3 Interim-Update, Stop per session) run at half the peak
of the same mix, measured first, while one fault is injected: kill -9 of a worker, kill -9 of the
applier, Redis restarted empty, PostgreSQL stopped for 20 s, Redis stopped for 20 s, the data
directory's disk full for 20 s (a tmpfs of its own: needs root). Prints a table, writes
bench/out/faults.json; exit status 1 if any acknowledged record was lost or charged twice.

  python bench/faults_bench.py [--only kill-worker,postgres-stop] [--hold 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import faults_check as check  # noqa: E402
import loadgen  # noqa: E402
import packets  # noqa: E402
import procs  # noqa: E402
from faults_stack import PORTS, Stack  # noqa: E402

from portal.core.db import make_engine  # noqa: E402
from portal.core.redisconn import connect  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
FAULTS = ["kill-worker", "kill-applier", "redis-restart-empty", "postgres-stop", "redis-stop", "disk-full"]
NSOCK = 32              # 8,192 request IDs: an outage of several seconds at the run's rate stays in flight
LEAD = 5.0              # seconds of load before the fault
TAIL = 12.0             # ... and after the service is back


def _drive(kind: str, pkts: list[bytes], secret: bytes, rate: float | None, seconds: float, window: int = 64):
    """One load in a process of its own: its summary and its trace."""
    runner = loadgen.Runner(pkts, PORTS[0] if kind == "auth" else PORTS[1], secret, nsock=NSOCK)
    runner.trace = []
    try:
        res = runner.run(window=window, rate=rate, max_seconds=seconds, max_inflight=8000)
    finally:
        runner.close()
    return res.summary(), runner.trace


def peak(stack: Stack, pool: ProcessPoolExecutor, workers: ProcessPoolExecutor, seconds: float) -> dict[str, float]:
    """Auth and accounting closed loops at the same time: each one's rate in the mix."""
    loads = {kind: packets.encode(packets.Spec(kind, stack.secret, f"peak{kind}", NSOCK), stack.users,
                                  int(25_000 * seconds / 3), pool) for kind in ("auth", "acct")}
    futures = {kind: workers.submit(_drive, kind, loads[kind], stack.secret, None, seconds) for kind in loads}
    return {kind: f.result()[0]["rate"] for kind, f in futures.items()}


def inject(stack: Stack, fault: str, hold: float) -> tuple[float, str]:
    """Break one thing; return when the service was given back (perf_counter) and a note."""
    if fault in ("kill-worker", "kill-applier"):
        pid = stack.child("conecta-worker" if fault == "kill-worker" else "conecta-applier")
        os.kill(pid, signal.SIGKILL)
        return time.perf_counter(), f"pid {pid} killed; the supervisor starts another"
    if fault == "redis-restart-empty":
        stack.redis.stop(signal.SIGKILL)
        stack.redis.wipe()
        stack.redis.start()
        return time.perf_counter(), "SIGKILL, files deleted, started again"
    if fault == "postgres-stop":
        stack.pg.stop("fast")
        time.sleep(hold)
        stack.pg.start()
        return time.perf_counter(), f"pg_ctl stop -m fast, {hold:g} s, start"
    if fault == "redis-stop":
        stack.redis.stop(signal.SIGTERM)
        time.sleep(hold)
        stack.redis.start()
        return time.perf_counter(), f"SIGTERM (append-only file kept), {hold:g} s, start"
    if fault == "disk-full":
        filler = stack.fill_disk()
        time.sleep(hold)
        filler.unlink()
        return time.perf_counter(), f"{stack.data_dir} (tmpfs) full for {hold:g} s"
    raise ValueError(fault)


def run_fault(stack: Stack, fault: str, rates: dict[str, float], auth_pkts: list[bytes], hold: float,
              pool: ProcessPoolExecutor, workers: ProcessPoolExecutor, engine) -> check.Outcome:
    """Load, fault, load; then the checks."""
    if fault == "disk-full" and not stack.tmpfs:
        return check.Outcome(fault, note="skipped: needs root for a tmpfs of its own")
    seconds = LEAD + (hold if fault in ("postgres-stop", "redis-stop", "disk-full") else 2) + TAIL
    tag = f"{fault[:6]}{int(time.time()) % 100000}"
    spec = packets.Spec("acct", stack.secret, tag, NSOCK)
    plan = packets.plan(spec, stack.users, int(rates["acct"] * seconds))
    acct_pkts = packets.encode(spec, stack.users, len(plan), pool)
    auth_load = auth_pkts[:int(rates["auth"] * seconds)]
    auth = workers.submit(_drive, "auth", auth_load, stack.secret, rates["auth"], seconds)
    acct = workers.submit(_drive, "acct", acct_pkts, stack.secret, rates["acct"], seconds)
    time.sleep(LEAD)
    fault_at = time.perf_counter()
    back_at, note = inject(stack, fault, hold)
    (_, auth_trace), (_, acct_trace) = auth.result(), acct.result()
    acked = check.acknowledged(acct_trace, plan, tag)
    found = check.wait_stored(engine, tag, acked, timeout=120)
    time.sleep(2)      # the live counters follow SQL a moment later
    twice, people = check.charged_twice(engine, tag)
    over, under = check.redis_against_sql(engine, connect(stack.redis.url()), datetime.now(check.TZ))
    unanswered, back, outage = check.timing(auth_trace, fault_at, back_at)
    if people:
        note += f"; {people} people's rollups differ from their sessions"
    return check.Outcome(fault, acked=len(acked), lost=len(acked - found), charged_twice=twice, redis_over=over,
                         redis_under=under, auth_sent=len(auth_trace), auth_unanswered=unanswered,
                         acct_unanswered=sum(1 for t in acct_trace if t[2] is None),
                         auth_back_s=round(back, 2), outage_s=round(outage, 2), note=note)


def table(rows: list[check.Outcome]) -> str:
    """The README's table."""
    head = ("| fault | accounting acknowledged | lost | charged twice | Redis counters above SQL | "
            "auth unanswered (of sent) | accounting unanswered | auth answers again after |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [head]
    for o in rows:
        if o.note.startswith("skipped"):
            lines.append(f"| {o.fault} | {o.note} | | | | | | |")
            continue
        lines.append(f"| {o.fault} | {o.acked:,} | {o.lost} | {o.charged_twice} | {o.redis_over} | "
                     f"{o.auth_unanswered:,} ({o.auth_sent:,}) | {o.acct_unanswered:,} | "
                     f"{o.auth_back_s:.1f} s ({o.outage_s:.1f} s after the fault began) |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help=f"comma list of {', '.join(FAULTS)}")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds PostgreSQL, Redis or the disk stay away")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--quick", action="store_true", help="5 s outages, a 2 s peak (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.hold = min(args.hold, 5.0)
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure the peak, run each fault, print and write the results."""
    args = parse_args(argv)
    faults = [f.strip() for f in args.only.split(",")] if args.only else FAULTS
    if unknown := set(faults) - set(FAULTS):
        sys.exit(f"unknown fault(s) {', '.join(sorted(unknown))}; choose from {', '.join(FAULTS)}")
    OUT.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    fork = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=fork)
    workers = ProcessPoolExecutor(max_workers=2, mp_context=fork)
    stack = Stack(OUT, args.users)
    rows: list[check.Outcome] = []
    try:
        stack.start()
        engine = make_engine(stack.database_url)
        mix = peak(stack, pool, workers, 2.0 if args.quick else 4.0)
        rates = {kind: rate / 2 for kind, rate in mix.items()}
        print(f"peak of the mix: auth {mix['auth']:.0f}/s + accounting {mix['acct']:.0f}/s; "
              f"running at half: {rates['auth']:.0f} + {rates['acct']:.0f} req/s", flush=True)
        longest = LEAD + args.hold + TAIL + 5
        auth_pkts = packets.encode(packets.Spec("auth", stack.secret, "faults", NSOCK), stack.users,
                                   int(rates["auth"] * longest), pool)
        for fault in faults:
            print(f"== {fault}", flush=True)
            rows.append(run_fault(stack, fault, rates, auth_pkts, args.hold, pool, workers, engine))
            print(f"   {asdict(rows[-1])}", flush=True)
        engine.dispose()
    finally:
        workers.shutdown(cancel_futures=True)
        pool.shutdown(cancel_futures=True)
        stack.stop()
        procs.stop_all()
    print("\n" + table(rows))
    payload = {"when": datetime.now(timezone.utc).isoformat(), "command": " ".join(sys.argv), "hold": args.hold,
               "cpus": os.cpu_count(), "loadavg": os.getloadavg(), "rows": [asdict(o) for o in rows]}
    (OUT / "faults.json").write_text(json.dumps(payload, indent=1))
    print(f"wrote {OUT / 'faults.json'}")
    return 1 if any(o.lost or o.charged_twice or o.redis_over for o in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
