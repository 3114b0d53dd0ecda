"""The printed table, the ratios against the targets (PASS/FAIL), and results.json."""

from __future__ import annotations

import json
from pathlib import Path

MB = 1024 * 1024
RSS_LIMIT_MB = 150
P99_LIMIT_MS = 10.0


def table(results: dict[str, dict]) -> str:
    """One row per system: peak throughput with its latencies, and latencies at half the peak rate."""
    head = (f"{'round · system':30} {'auth req/s':>10} {'p50':>6} {'p99':>6} {'½:p50':>6} {'½:p99':>6} │"
            f" {'acct req/s':>10} {'p50':>6} {'p99':>6} {'½:p50':>6} {'½:p99':>6}")
    lines = [head, "─" * len(head)]
    for r in results.values():
        cells = []
        for kind in ("auth", "acct"):
            peak, half = r["peak"][kind], (r["half"] or {}).get(kind)
            halves = f"{half['p50_ms']:6.2f} {half['p99_ms']:6.2f}" if half else f"{'-':>6} {'-':>6}"
            cells.append(f"{peak['rate']:10.0f} {peak['p50_ms']:6.2f} {peak['p99_ms']:6.2f} {halves}")
        lines.append(f"{r['round']} · {r['name']:26} {cells[0]} │ {cells[1]}")
    lines.append("req/s: median of the peak runs (closed loop); p50/p99 in ms at that peak; "
                 "½: at a fixed rate of half the peak.\nSystems of one round were measured taking turns, "
                 "so each is compared with Conecta of its own round.")
    return "\n".join(lines)


def cpu_table(results: dict[str, dict]) -> str:
    """CPU per request of the server, PostgreSQL and the load generator, and how busy the machine was."""
    head = f"{'CPU µs/request (auth | acct)':30} {'server':>13} {'postgres':>13} {'loadgen':>13} {'machine busy':>14}"
    lines = [head, "─" * len(head)]
    for r in results.values():
        a, c = r["peak"]["auth"], r["peak"]["acct"]
        cols = [f"{a[k]:6.0f}|{c[k]:<6.0f}" for k in ("server_cpu_us", "pg_cpu_us", "loadgen_cpu_us")]
        busy = f"{a['box_busy']:6.0%}|{c['box_busy']:<6.0%}"
        lines.append(f"{r['round']} · {r['name']:26} {cols[0]:>13} {cols[1]:>13} {cols[2]:>13} {busy:>14}")
    lines.append("postgres: all PostgreSQL processes (shared with any other work); machine busy: all CPUs, "
                 "other processes included")
    return "\n".join(lines)


def _target(name: str, value: float | None, note: str, limit: float, unit: str, above: bool | None,
            group: str = "issue 12") -> dict:
    """above: True for at least `limit`, False for below it, None for at most it (a count of losses)."""
    if value is None:
        return {"target": name, "value": None, "limit": limit, "unit": unit, "status": "n/a", "note": note,
                "group": group}
    ok = value >= limit if above else value < limit if above is False else value <= limit
    return {"target": name, "value": round(value, 3), "limit": limit, "unit": unit,
            "status": "PASS" if ok else "FAIL", "note": note, "group": group}


def _row(results: dict, name: str) -> dict | None:
    return next((r for r in results.values() if r["name"] == name), None)


def _vs(results: dict, ref: str, kind: str, mine_name: str = "conecta") -> tuple[float | None, str]:
    """A Conecta row's peak rate over `ref`'s, both from the same round."""
    other = _row(results, ref)
    if other is None:
        return None, "not run"
    mine = next((r for r in results.values() if r["name"] == mine_name and r["round"] == other["round"]), None)
    if mine is None:
        return None, f"{mine_name} not run in that round"
    ratio = mine["peak"][kind]["rate"] / other["peak"][kind]["rate"] if other["peak"][kind]["rate"] else None
    return ratio, (f"round {other['round']}: {mine['peak'][kind]['rate']:.0f} vs "
                   f"{other['peak'][kind]['rate']:.0f} req/s")


def _lost(results: dict) -> tuple[float | None, str]:
    """Requests the quota row lost, over all its peak and half-rate runs (every round)."""
    rows = [r for r in results.values() if r["name"] == "conecta"]
    if not rows:
        return None, "not run"
    lost = sum(r["peak"][k]["lost"] for r in rows for k in ("auth", "acct"))
    lost += sum(h["lost"] for r in rows for h in (r["half"] or {}).values())
    sent = sum(run["sent"] for r in rows for k in ("auth", "acct") for run in r["runs"][k])
    return lost, f"of {sent} sent at peak, and the half-rate runs"


def _half(results: dict, kind: str, group: str) -> dict:
    conecta = results.get("conecta")
    half = (conecta["half"] or {}).get(kind) if conecta else None
    note = f"at {half['target_rate']:.0f} req/s, got {half['rate']:.0f}" if half else "not run"
    return _target(f"quota {kind} p99 < 10 ms at half the peak rate", half["p99_ms"] if half else None, note,
                   limit=P99_LIMIT_MS, unit="ms", above=False, group=group)


def targets(results: dict[str, dict], rss_kib: int | None) -> list[dict]:
    """Every target of issue 12 (quota policy), then the earlier issues' ones, on this run's figures."""
    out = [_target("quota auth ≥ 10× FreeRADIUS sql-hotspot-idx", *_vs(results, "freeradius-sql-hotspot-idx", "auth"),
                   limit=10.0, unit="×", above=True),
           _target("quota auth ≥ 40% of FreeRADIUS files", *_vs(results, "freeradius-files", "auth"),
                   limit=0.4, unit="×", above=True),
           _target("quota: no request lost", *_lost(results), limit=0, unit="lost", above=None),
           _half(results, "auth", "issue 12"),
           _target("quota acct ≥ 3× FreeRADIUS sql-hotspot-idx", *_vs(results, "freeradius-sql-hotspot-idx", "acct"),
                   limit=3.0, unit="×", above=True),
           _target("RADIUS server RSS < 150 MB (100,000 accounts a row)", rss_kib / 1024 if rss_kib else None,
                   "PSS of `conecta radius` and its workers, summed, after the runs" if rss_kib else "not run",
                   limit=RSS_LIMIT_MB, unit="MB", above=False)]
    earlier = "earlier"
    out.append(_target("no-counter auth ≥ 4× FreeRADIUS sql-hotspot-idx",
                       *_vs(results, "freeradius-sql-hotspot-idx", "auth", "conecta-personal"),
                       limit=4.0, unit="×", above=True, group=earlier))
    pyrads = [n for n in ("pyrad-sync", "pyrad-async") if _row(results, n)]
    best = max(pyrads, key=lambda n: _row(results, n)["peak"]["auth"]["rate"]) if pyrads else None
    value, note = _vs(results, best, "auth") if best else (None, "not run")
    out.append(_target("quota auth ≥ 50% of the best bare pyrad", value, f"best: {best}; {note}" if best else note,
                       limit=0.5, unit="×", above=True, group=earlier))
    if _row(results, "freeradius-sql-hotspot"):
        out.append(_target("quota acct ≥ 1.5× FreeRADIUS sql-hotspot", *_vs(results, "freeradius-sql-hotspot", "acct"),
                           limit=1.5, unit="×", above=True, group=earlier))
    out.append(_half(results, "acct", earlier))
    return out


def target_lines(rows: list[dict]) -> str:
    """The targets as aligned text, issue 12's first, then the earlier issues' (same run)."""
    lines = []
    for group in dict.fromkeys(t.get("group", "") for t in rows):
        if group != "issue 12":
            lines.append(f"  -- {group} targets (same run)")
        for t in (t for t in rows if t.get("group", "") == group):
            value = "-" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
            sign = "≥" if t["unit"] == "×" else "≤" if t["unit"] == "lost" else "<"
            limit = f"{sign} {t['limit']:g}{'' if t['unit'] == '×' else ' ' + t['unit']}"
            note = f"  ({t['note']})" if t["note"] else ""
            lines.append(f"  [{t['status']:4}] {t['target']:48} {value:>12}  {limit}{note}")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    """results.json, without the raw latency lists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
