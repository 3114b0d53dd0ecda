"""Prometheus metrics of every Conecta process, with prometheus_client in multiprocess mode: each process
(RADIUS workers, the applier, the monitor, portal workers) writes its values to files under
$CONECTA_DATA_DIR/metrics, and one exposition adds them up — on CONECTA_METRICS_HOST:PORT
(127.0.0.1:9464 by default, served by whichever long-lived process binds it first) and on the
portal's /metrics (loopback peers or a bearer token).

`enable(settings)` must run before the first metric is used; `m()` makes the metrics on first use.
Without `enable` (the tests' in-process servers) the values stay in the process.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest, start_http_server

from portal.core.settings import Settings

log = logging.getLogger("conecta.metrics")
ENV = "PROMETHEUS_MULTIPROC_DIR"
FILE = re.compile(r"_(\d+)\.db$")
_served: list[object] = []
_lock = threading.Lock()
_making = threading.Lock()
_made: dict[str, SimpleNamespace] = {}


def enable(settings: Settings, fresh: bool = False) -> Path:
    """Point this process and its children at the deployment's metrics directory (kept when the
    environment already names one). `fresh`: empty it first (`conecta run`, before its children)."""
    path = Path(os.environ.get(ENV) or settings.data_dir / "metrics")
    path.mkdir(parents=True, exist_ok=True)
    if fresh:
        for old in path.glob("*.db"):
            old.unlink(missing_ok=True)
    os.environ[ENV] = str(path)
    values.ValueClass = values.get_value_class()     # chosen when prometheus_client was imported
    _forget_the_dead(path)
    return path


def _forget_the_dead(path: Path) -> None:
    """Drop the live gauges of processes that are gone (their counters stay: totals never go back)."""
    for file in path.glob("gauge_live*.db"):
        match = FILE.search(file.name)
        if match and not Path(f"/proc/{match[1]}").exists():
            multiprocess.mark_process_dead(int(match[1]), str(path))


def enabled() -> bool:
    """True in a process writing to a metrics directory."""
    return bool(os.environ.get(ENV))


def m() -> SimpleNamespace:
    """The metrics, made once per process (after `enable`). The portal's threads can get here together
    on their first requests: a second registration of the same names would raise, so they take turns."""
    made = _made.get("metrics")
    if made is None:
        with _making:
            made = _made.get("metrics") or _made.setdefault("metrics", _make())
    return made


def _make() -> SimpleNamespace:
    requests = Counter("conecta_radius_requests_total", "RADIUS requests by type and result", ["type", "result"])
    reply = Histogram("conecta_radius_reply_seconds", "From reading a request to sending its reply", ["type"],
                      buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
    probes = Counter("conecta_monitor_probes_total", "Probes by kind and result", ["kind", "result"])
    return SimpleNamespace(
        auth_accept=requests.labels("auth", "accept"), auth_reject=requests.labels("auth", "reject"),
        auth_unanswered=requests.labels("auth", "unanswered"), acct_logged=requests.labels("acct", "logged"),
        acct_refused=requests.labels("acct", "refused"), status=requests.labels("status", "answered"),
        drops=Counter("conecta_radius_drops_total", "Requests dropped, by reason", ["reason"]),
        reply_auth=reply.labels("auth"), reply_acct=reply.labels("acct"),
        wal_backlog=Gauge("conecta_radius_wal_backlog", "Accounting records acknowledged but not yet applied",
                          multiprocess_mode="livesum"),
        applier_lag=Gauge("conecta_radius_applier_lag_seconds", "Age of the last record applied when applied",
                          multiprocess_mode="livemax"),
        disconnects=Counter("conecta_disconnect_requests_total",
                            "Disconnect-Requests (RFC 5176) by result: ack, nak, timeout, no-coa", ["result"]),
        coa_requests=Counter("conecta_coa_requests_total", "CoA-Requests (RFC 5176) of the slow lane by action "
                             "(slow, restore) and result: ack, nak, timeout, no-coa", ["action", "result"]),
        backend_errors=Counter("conecta_backend_errors_total", "Failed calls to Redis or the database",
                               ["backend", "process"]),
        nas_up=Gauge("conecta_monitor_nas_up", "1 when the NAS answers its probes, 0 when it does not",
                     ["nas", "site_id"], multiprocess_mode="mostrecent"),
        probe_latency=Gauge("conecta_monitor_probe_latency_seconds", "Round trip of the NAS's last answered probe",
                            ["nas"], multiprocess_mode="mostrecent"),
        probes=probes,
        alerts=Counter("conecta_monitor_alerts_total", "Alerts by channel and outcome", ["channel", "result"]),
        registrations=Counter("conecta_portal_registrations_total", "People registered at the portal"),
        logins=Counter("conecta_portal_logins_total", "Portal sign-ins by result", ["result"]),
        refusals=Counter("conecta_portal_refusals_total", "Portal requests refused, by reason", ["reason"]),
    )


def registry() -> CollectorRegistry:
    """A registry that adds up every process's files (or this process's own values when not enabled)."""
    if not enabled():
        from prometheus_client import REGISTRY
        return REGISTRY
    found = CollectorRegistry()
    multiprocess.MultiProcessCollector(found)
    return found


def exposition(extra: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """The text format of every process's metrics (and `extra`'s), with its content type."""
    body = generate_latest(registry())
    if extra is not None:
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST


def serve(settings: Settings) -> bool:
    """Serve the exposition on CONECTA_METRICS_HOST:PORT from a thread, unless the port is 0 or
    another process of this deployment serves it already; True when this process serves it."""
    if not settings.metrics_port or not enabled():
        return False
    with _lock:
        if _served:
            return True
        try:
            _served.append(start_http_server(settings.metrics_port, settings.metrics_host, registry=registry()))
        except OSError:
            log.info("metrics on %s:%d are served by another process", settings.metrics_host, settings.metrics_port)
            return False
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return True
