"""Profile `conecta radius` on the benchmark's quota path: start it as `make bench-radius` does, drive
one kind of load for a while, and record every worker with py-spy (when installed) meanwhile.

  python bench/profile_radius.py [--kind auth|acct] [--seconds 15] [--users 100000] [--py-spy PATH]

Writes bench/out/profile-<kind>-<pid>.txt (py-spy's --format raw: collapsed stacks, one line each);
prints the functions that hold most samples.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import packets  # noqa: E402
import procs  # noqa: E402
import systems  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def top(path: Path, n: int = 25) -> list[tuple[str, float]]:
    """The functions with the most samples anywhere on the stack (inclusive), as shares."""
    total, inclusive = 0, Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame.split(" (")[0] + " (" + frame.split(" (")[-1]] += int(count)
    return [(f, c / max(total, 1)) for f, c in inclusive.most_common(n)]


def main() -> int:
    """Start Conecta, load it, profile it, stop it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("auth", "acct"), default="auth")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork"))
    target = systems.start_conecta(OUT, args.users)
    spies = []
    try:
        spec = packets.Spec(args.kind, target.secret, f"prof{int(time.time())}", loadgen.NSOCK)
        pkts = packets.encode(spec, target.users, int(args.seconds * 8000), pool)
        workers = [p for p in procs.family(target.server.server_pid)
                   if "applier" not in Path(f"/proc/{p}/comm").read_text()]
        if Path(args.py_spy).exists() or shutil.which(args.py_spy):
            for pid in workers:
                out = OUT / f"profile-{args.kind}-{pid}.txt"
                spies.append((out, subprocess.Popen([args.py_spy, "record", "-p", str(pid), "-r", "200", "-f", "raw",
                                                     "-d", str(int(args.seconds)), "-o", str(out), "--nonblocking"],
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        res = loadgen.run_load(pkts, target.acct_port if args.kind == "acct" else target.auth_port, target.secret,
                               window=64, max_seconds=args.seconds * 2)
        print(f"{args.kind}: {res.rate:.0f} req/s, p99 {res.p99_ms:.1f} ms, lost {res.lost}, rejected {res.reject}")
        for out, spy in spies:
            spy.wait(args.seconds + 30)
            if out.exists():
                print(f"\n{out}:")
                for frame, share in top(out):
                    print(f"  {share:6.1%}  {frame}")
    finally:
        target.server.stop()
        pool.shutdown()
        systems.drop_database()
    return 0


if __name__ == "__main__":
    sys.exit(main())
