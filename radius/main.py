"""Run the RADIUS server as a process: wiring, signals, and clean shutdown."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import lru_cache

from policies import load_policies
from portal.core.db import engine_for, session_factory
from portal.core.redisconn import connect
from portal.core.settings import Settings
from radius.server import RadiusServer
from radius.writer import Progress

log = logging.getLogger("conecta.radius")


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL("libc.so.6", use_errno=True)


def collect_garbage() -> None:
    """A full collection, then freed heap pages back to the kernel (glibc keeps them after a burst)."""
    gc.collect()
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):   # not glibc
        pass


def build_server(settings: Settings, redis_url: str, auth_port: int | None = None,
                 acct_port: int | None = None, progress: Progress | None = None) -> RadiusServer:
    """A RadiusServer wired to the configured database, Redis and policies."""
    policies = load_policies(settings.policy_dir)
    engine = engine_for(settings)
    return RadiusServer(settings, policies, session_factory(engine), connect(redis_url),
                        auth_port=auth_port, acct_port=acct_port, progress=progress)


def tune_collector() -> None:
    """Freeze what start-up built out of the cyclic collector and make its passes rarer.

    Full passes pause every thread for tens of milliseconds: they run when no datagram waits
    (RadiusServer.on_quiet) or when overdue.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 1_000_000)


def serve(settings: Settings, redis_url: str, progress: Progress | None = None,
          ready: threading.Event | None = None, on_stop: Callable[[], None] = lambda: None) -> None:
    """Serve until SIGTERM or SIGINT, then answer queued accounting and exit.

    With the `progress` of an applier process, accounting is only logged and acknowledged here.
    """
    # The receive loop shares the GIL with the log thread: a short switch interval keeps one
    # from holding up the other for whole 5 ms slices.
    sys.setswitchinterval(0.0005)
    server = build_server(settings, redis_url, progress=progress)
    tune_collector()
    server.on_quiet = collect_garbage
    auth, acct = server.ports
    log.info("RADIUS listening on %s: auth %d/udp, acct %d/udp", settings.radius_host, auth, acct)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        server.running = False
        on_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    finally:
        server.shutdown()
        log.info("RADIUS stopped; %d accounting records logged", server.writer.logged)


def stop_with_parent(parent: int, name: str) -> bool:
    """Take a name for ps and top, and ask for SIGTERM when the parent dies, even by SIGKILL;
    False if it is already gone."""
    try:
        _libc().prctl(15, name.encode()[:15])   # PR_SET_NAME
        _libc().prctl(1, signal.SIGTERM)        # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.warning("cannot ask to be stopped with the supervisor (not Linux?)")
    return os.getppid() == parent
