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


def _target(name: str, value: float | None, note: str, limit: float, unit: str, above: bool) -> dict:
    if value is None:
        return {"target": name, "value": None, "limit": limit, "unit": unit, "status": "n/a", "note": note}
    ok = value >= limit if above else value < limit
    return {"target": name, "value": round(value, 3), "limit": limit, "unit": unit,
            "status": "PASS" if ok else "FAIL", "note": note}


def _row(results: dict, name: str) -> dict | None:
    return next((r for r in results.values() if r["name"] == name), None)


def _vs(results: dict, ref: str, kind: str) -> tuple[float | None, str]:
    """Conecta's peak rate over `ref`'s, both from the same round."""
    other = _row(results, ref)
    if other is None:
        return None, "not run"
    mine = next((r for r in results.values() if r["name"] == "conecta" and r["round"] == other["round"]), None)
    if mine is None:
        return None, "Conecta not run"
    ratio = mine["peak"][kind]["rate"] / other["peak"][kind]["rate"] if other["peak"][kind]["rate"] else None
    return ratio, (f"round {other['round']}: {mine['peak'][kind]['rate']:.0f} vs "
                   f"{other['peak'][kind]['rate']:.0f} req/s")


def targets(results: dict[str, dict], rss_kib: int | None) -> list[dict]:
    """Every target of the issue, evaluated on this run's figures."""
    out = [_target("auth ≥ 4× FreeRADIUS sql-hotspot-idx", *_vs(results, "freeradius-sql-hotspot-idx", "auth"),
                   limit=4.0, unit="×", above=True)]
    pyrads = [n for n in ("pyrad-sync", "pyrad-async") if _row(results, n)]
    best = max(pyrads, key=lambda n: _row(results, n)["peak"]["auth"]["rate"]) if pyrads else None
    value, note = _vs(results, best, "auth") if best else (None, "not run")
    out.append(_target("auth ≥ 50% of the best bare pyrad", value, f"best: {best}; {note}" if best else note,
                       limit=0.5, unit="×", above=True))
    for n in pyrads:
        out.append(_target(f"auth ≥ 50% of {n}", *_vs(results, n, "auth"), limit=0.5, unit="×", above=True))
    ref = "freeradius-sql-hotspot" if _row(results, "freeradius-sql-hotspot") else "freeradius-sql-hotspot-idx"
    value, note = _vs(results, ref, "acct")
    if ref != "freeradius-sql-hotspot":
        note = f"sql-hotspot not run: compared with sql-hotspot-idx; {note}"
    out.append(_target("acct ≥ 1.5× FreeRADIUS sql-hotspot", value, note, limit=1.5, unit="×", above=True))
    if ref != "freeradius-sql-hotspot-idx" and _row(results, "freeradius-sql-hotspot-idx"):
        out.append(_target("acct ≥ 1.5× FreeRADIUS sql-hotspot-idx (extra)",
                           *_vs(results, "freeradius-sql-hotspot-idx", "acct"), limit=1.5, unit="×", above=True))
    conecta = results.get("conecta")
    for kind in ("auth", "acct"):
        half = (conecta["half"] or {}).get(kind) if conecta else None
        note = f"at {half['target_rate']:.0f} req/s, got {half['rate']:.0f}" if half else "not run"
        out.append(_target(f"{kind} p99 < 10 ms at half the peak rate", half["p99_ms"] if half else None, note,
                           limit=P99_LIMIT_MS, unit="ms", above=False))
    out.append(_target("RADIUS server RSS < 150 MB (100,000 users)", rss_kib / 1024 if rss_kib else None,
                       "PSS of `conecta radius` and its workers, summed, after the runs" if rss_kib else "not run",
                       limit=RSS_LIMIT_MB, unit="MB", above=False))
    return out


def target_lines(rows: list[dict]) -> str:
    """The targets as aligned text."""
    lines = []
    for t in rows:
        value = "-" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
        limit = f"{'≥' if t['unit'] == '×' else '<'} {t['limit']:g}{'' if t['unit'] == '×' else ' ' + t['unit']}"
        note = f"  ({t['note']})" if t["note"] else ""
        lines.append(f"  [{t['status']:4}] {t['target']:48} {value:>12}  {limit}{note}")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    """results.json, without the raw latency lists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
