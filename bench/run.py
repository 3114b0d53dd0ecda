"""`make bench`: Conecta against FreeRADIUS 3.2 hotspot stacks and the bare pyrad ceiling, in one run.

Every system is started here, driven by the same load generator (bench/loadgen.py), and stopped
by PID (also on Ctrl-C or an error). Prints a table and the ratios against the targets, and
writes bench/out/results.json.

  python bench/run.py [--only conecta,pyrad] [--quick] [--reps N] [--duration S] [--window W]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import measure  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import systems  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
ORDER = ["conecta", "freeradius-sql-hotspot-idx", "freeradius-files", "freeradius-sql-hotspot", "pyrad-sync",
         "pyrad-async"]
ROUNDS = [["freeradius-sql-hotspot-idx", "pyrad-sync"],  # FreeRADIUS first: its script wants the pyrad ports free
          ["freeradius-files"],                          # the FreeRADIUS setups share their ports
          ["freeradius-sql-hotspot", "pyrad-async"]]
ALIASES = {"freeradius": ["freeradius-sql-hotspot-idx", "freeradius-files", "freeradius-sql-hotspot"],
           "freeradius-idx": ["freeradius-sql-hotspot-idx"], "pyrad": ["pyrad-sync", "pyrad-async"]}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help=f"comma list of {', '.join(ORDER)} (or freeradius, freeradius-idx, pyrad)")
    ap.add_argument("--skip", help="comma list of systems to leave out (same names)")
    ap.add_argument("--quick", action="store_true", help="1 repetition of 1.5 s per measurement (a smoke run)")
    ap.add_argument("--reps", type=int, help="peak measurements per kind (default 3, --quick 1)")
    ap.add_argument("--duration", type=float, help="seconds per measurement (default 2.5, --quick 1.5)")
    ap.add_argument("--window", type=int, default=64, help="requests in flight in the closed loop (default 64)")
    ap.add_argument("--users", type=int, default=100_000, help="Conecta accounts (default 100000)")
    ap.add_argument("--keep-db", action="store_true", help="leave the conecta_bench database and Redis db 14")
    return ap.parse_args(argv)


def selected(args: argparse.Namespace) -> list[str]:
    """The systems to run, in the fixed order."""
    def names(text: str | None) -> set[str]:
        out = set()
        for item in filter(None, (text or "").split(",")):
            item = item.strip()
            if item not in ORDER and item not in ALIASES:
                sys.exit(f"unknown system {item!r}; choose from {', '.join(ORDER + list(ALIASES))}")
            out.update(ALIASES.get(item, [item]))
        return out
    only, skip = names(args.only), names(args.skip)
    return [n for n in ORDER if (not only or n in only) and n not in skip]


def make_plan(args: argparse.Namespace) -> measure.Plan:
    """Durations and repetitions from the options."""
    plan = measure.Plan(window=args.window, users=args.users)
    if args.quick:
        plan.reps, plan.duration, plan.warm_seconds = 1, 1.5, 1.0
    plan.reps = args.reps or plan.reps
    plan.duration = args.duration or plan.duration
    return plan


def start(name: str, plan: measure.Plan, extras: dict) -> systems.Target | None:
    """Start one system; None (and the reason in extras) if it cannot run here."""
    t0 = time.monotonic()
    print(f"\n== {name}: starting", flush=True)
    busy = procs.wait_quiet()
    if busy > 0.25:
        print(f"   warning: the machine is {busy:.0%} busy with other work; figures will be skewed", flush=True)
    try:
        target = systems.SYSTEMS[name](OUT, plan)
    except procs.StartError as exc:
        print(f"   SKIPPED: {exc}", flush=True)
        extras[name] = {"error": str(exc)}
        return None
    target.notes.append(f"machine {busy:.0%} busy before start")
    print(f"   up in {time.monotonic() - t0:.1f} s (pid {target.server.server_pid}); {'; '.join(target.notes)}",
          flush=True)
    return target


def rounds(names: list[str]) -> list[list[str]]:
    """Systems measured together, taking turns; Conecta takes part in every round."""
    refs = [[n for n in r if n in names] for r in ROUNDS]
    refs = [r for r in refs if r]
    if "conecta" not in names:
        return refs
    return [["conecta", *r] for r in refs] or [["conecta"]]


def run_rounds(names: list[str], plan: measure.Plan, pool: ProcessPoolExecutor) -> tuple[dict, dict]:
    """Every round: start its references, measure them with Conecta taking turns, stop them."""
    rows, extras = {}, {}
    conecta = start("conecta", plan, extras) if "conecta" in names else None
    for i, members in enumerate(rounds(names), 1):
        print(f"\n== round {i}: {', '.join(members)}", flush=True)
        # Round 1 also measures the no-counter policy (a companion row served by the same process).
        targets = [conecta, *(conecta.companions if i == 1 else [])] if conecta and "conecta" in members else []
        refs = [t for t in (start(n, plan, extras) for n in members if n != "conecta") if t]
        try:
            if targets or refs:
                found = measure.measure_round(targets + refs, plan, pool, lambda line: print(line, flush=True),
                                              no_half=frozenset({"conecta"} if i > 1 else {"conecta-personal"}))
                for name, row in found.items():
                    rows[name if not name.startswith("conecta") or i == 1 else f"{name}/{i}"] = {**row, "round": i}
        finally:
            for t in refs:
                t.server.stop()
    if conecta is not None:
        if conecta.server.proc.poll() is not None:
            extras["conecta"] = {"error": f"conecta radius exited ({conecta.server.proc.returncode}) during the "
                                          f"runs; see {conecta.server.log}"}
        else:
            extras["conecta"] = {"rss_kib": conecta.server.rss_kib()}
        conecta.server.stop()
    return rows, extras


def code_state() -> dict:
    """The commit measured, and which server files differed from it (the tree may be mid-edit)."""
    import subprocess
    repo = Path(__file__).resolve().parent.parent
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=repo, capture_output=True, text=True, check=False)
        return done.stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": git("status", "--porcelain", "--", "radius", "portal", "policies").splitlines()}


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the selected systems, print the table and targets, write results.json."""
    args = parse_args(argv)
    names, plan = selected(args), make_plan(args)
    OUT.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored (`&`)
    started = time.monotonic()
    results, extras = {}, {}
    pool = ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=multiprocessing.get_context("fork"))
    try:
        results, extras = run_rounds(names, plan, pool)
    finally:
        procs.stop_all()
        pool.shutdown(cancel_futures=True)
        if "conecta" in names and not args.keep_db:
            systems.drop_database()
    return finish(args, plan, results, extras, time.monotonic() - started)


def finish(args: argparse.Namespace, plan: measure.Plan, results: dict, extras: dict, wall: float) -> int:
    """Print the table and the targets; write results.json; exit status 0 if nothing failed to run."""
    rss = extras.get("conecta", {}).get("rss_kib", {})
    rows = report.targets(results, rss.get("VmRSS"))
    print(f"\n== results ({datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, window {plan.window}, "
          f"{plan.reps}× {plan.duration:g} s per measurement, medians; total {wall:.0f} s)")
    print(report.table(results))
    print()
    print(report.cpu_table(results))
    if rss:
        print(f"conecta radius RSS after the runs: {rss['VmRSS'] / 1024:.1f} MB (peak {rss['VmHWM'] / 1024:.1f} MB)")
    print("\n== targets")
    print(report.target_lines(rows))
    payload = {"when": datetime.now(timezone.utc).isoformat(), "command": " ".join(sys.argv),
               "code": code_state(), "plan": vars(plan), "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
               "wall_seconds": wall, "systems": results, "extras": extras, "targets": rows}
    report.write_json(OUT / "results.json", payload)
    report.write_json(OUT / f"results-{datetime.now():%Y%m%d-%H%M%S}.json", payload)  # kept: runs are noisy
    code = payload["code"]
    dirty = f" + uncommitted changes in {len(code['modified'])} server file(s)" if code["modified"] else ""
    print(f"\ncode: {code['commit']}{dirty}")
    print(f"wrote {OUT / 'results.json'}")
    return 1 if any("error" in e for e in extras.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
