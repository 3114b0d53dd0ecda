"""One system's measurements: warm-up, peak throughput (closed loop, repeated), latency at half the peak."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import loadgen
import packets
from procs import box_ticks, cpu_delta, postgres_cpu
from systems import Target

KINDS = ("auth", "acct")


@dataclass
class Plan:
    """How long and how often to measure."""

    duration: float = 2.5        # seconds of load per measurement
    reps: int = 3                # peak measurements per kind (the median is reported)
    window: int = 64             # requests in flight in the closed loop (radclient -p 64 in the reference)
    warm_seconds: float = 1.0    # warm-up per kind; also estimates the rate to size the loads
    users: int = 100_000         # Conecta's accounts


def _tag(target: Target, label: str) -> str:
    return f"b{int(time.time() * 1000) % 10**10}-{label}"


def run_one(target: Target, kind: str, count: int, pool: ProcessPoolExecutor | None, plan: Plan,
            label: str, rate: float | None = None) -> dict:
    """Encode `count` requests, send them (closed loop, or at `rate`), return the summary with CPU use."""
    spec = packets.Spec(kind, target.secret, _tag(target, label), loadgen.NSOCK)
    pkts = packets.encode(spec, target.users, count, pool)
    port = target.auth_port if kind == "auth" else target.acct_port
    cpu0, pg0, box0, me0 = target.server.cpu_seconds(), postgres_cpu(), box_ticks(), os.times()
    res = loadgen.run_load(pkts, port, target.secret, window=plan.window, rate=rate,
                           max_seconds=(plan.warm_seconds if label == "warm" else plan.duration) * 2)
    cpu1, pg1, box1, me1 = target.server.cpu_seconds(), postgres_cpu(), box_ticks(), os.times()
    out = res.summary()
    n = max(res.answered, 1)
    out.update(kind=kind, label=label, server_cpu_us=(cpu1 - cpu0) * 1e6 / n,
               pg_cpu_us=cpu_delta(pg0, pg1) * 1e6 / n,
               loadgen_cpu_us=(me1.user + me1.system - me0.user - me0.system) * 1e6 / n,
               box_busy=(box1[0] - box0[0]) / max(1, box1[1] - box0[1]))
    return out


def _count(rate: float, seconds: float) -> int:
    return int(min(200_000, max(200, rate * seconds * 1.25)))


def _line(target: Target, r: dict) -> str:
    extra = f" at {r['target_rate']:.0f}/s" if r["target_rate"] else ""
    return (f"  {target.name:28} {r['kind']} {r['label']:6}{extra}: {r['rate']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
            f"  p99 {r['p99_ms']:7.2f} ms  ok {r['answered']}/{r['sent']} rej {r['reject']} lost {r['lost']}"
            f"  µs/req: srv {r['server_cpu_us']:.0f} pg {r['pg_cpu_us']:.0f} gen {r['loadgen_cpu_us']:.0f}"
            f"  box {r['box_busy']:.0%}")


def summarize(runs: list[dict]) -> dict:
    """Median rate and latencies of repeated runs."""
    return {"rate": statistics.median(r["rate"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "rates": [round(r["rate"], 1) for r in runs],
            "lost": sum(r["lost"] for r in runs), "reject": sum(r["reject"] for r in runs),
            "server_cpu_us": statistics.median(r["server_cpu_us"] for r in runs),
            "pg_cpu_us": statistics.median(r["pg_cpu_us"] for r in runs),
            "loadgen_cpu_us": statistics.median(r["loadgen_cpu_us"] for r in runs),
            "box_busy": statistics.median(r["box_busy"] for r in runs)}


def _warm(targets: list[Target], plan: Plan, pool: ProcessPoolExecutor | None,
          say: Callable[[str], None]) -> dict[str, dict[str, float]]:
    estimate: dict[str, dict[str, float]] = {t.name: {} for t in targets}
    for kind in KINDS:
        for t in targets:
            warm = run_one(t, kind, _count(4000 / plan.warm_seconds, plan.warm_seconds), pool, plan, "warm")
            say(_line(t, warm))
            estimate[t.name][kind] = warm["rate"]
    return estimate


def measure_round(targets: list[Target], plan: Plan, pool: ProcessPoolExecutor | None,
                  say: Callable[[str], None] = print, no_half: frozenset[str] = frozenset()) -> dict[str, dict]:
    """Interleaved: warm-up, then `reps` × (auth, acct) at peak taking turns, then each at half its peak.

    Taking turns spreads whatever else the machine does evenly over the systems compared.
    """
    estimate = _warm(targets, plan, pool, say)
    runs = {t.name: {k: [] for k in KINDS} for t in targets}
    for rep in range(plan.reps):
        for kind in KINDS:
            for t in targets:
                r = run_one(t, kind, _count(estimate[t.name][kind], plan.duration), pool, plan, f"peak{rep + 1}")
                say(_line(t, r))
                runs[t.name][kind].append(r)
                estimate[t.name][kind] = max(estimate[t.name][kind], r["rate"])
    results = {t.name: {"name": t.name, "notes": t.notes, "runs": runs[t.name],
                        "peak": {k: summarize(runs[t.name][k]) for k in KINDS}, "half": None} for t in targets}
    for kind in KINDS:
        for t in targets:
            if t.name in no_half:
                continue
            rate = results[t.name]["peak"][kind]["rate"] / 2
            r = run_one(t, kind, max(50, int(rate * plan.duration)), pool, plan, "half", rate=rate)
            say(_line(t, r))
            results[t.name]["half"] = {**(results[t.name]["half"] or {}), kind: r}
    return results
