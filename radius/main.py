"""Run the RADIUS server as a process: wiring, signals, and clean shutdown."""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import lru_cache

import radius
from policies import load_policies
from portal.db import engine_for, session_factory
from portal.redisconn import connect
from portal.settings import Settings
from radius.server import RadiusServer

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
                 acct_port: int | None = None) -> RadiusServer:
    """A RadiusServer wired to the configured database, Redis and policies."""
    policies = load_policies(settings.policy_dir)
    engine = engine_for(settings)
    return RadiusServer(settings, policies, session_factory(engine), connect(redis_url),
                        auth_port=auth_port, acct_port=acct_port)


def serve(settings: Settings, redis_url: str, ready: threading.Event | None = None,
          on_stop: Callable[[], None] = lambda: None) -> None:
    """Serve until SIGTERM or SIGINT, then commit and answer queued accounting and exit."""
    # The receive loop shares the GIL with the applier; a short switch interval keeps a long
    # applier batch from delaying replies by whole 5 ms slices.
    sys.setswitchinterval(0.0005)
    server = build_server(settings, redis_url)
    # The cyclic collector's full passes pause every thread for tens of milliseconds: what start-up
    # built (models, dictionary, policies) is frozen out of them, young passes are made rarer, and
    # full passes run only when no datagram waits (RadiusServer.on_quiet) or when overdue.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 1_000_000)
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
        log.info("RADIUS stopped; %d accounting records committed", server.writer.committed)


def _worker(settings: Settings, redis_url: str, parent: int) -> None:
    """A worker process: stops (cleanly, SIGTERM) when its supervisor dies, even by SIGKILL, so no
    orphan keeps the ports and the write-ahead log of a restarted server."""
    try:
        _libc().prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        log.warning("cannot ask to be stopped with the supervisor (not Linux?)")
    if os.getppid() != parent:      # the supervisor died before prctl took effect
        return
    serve(settings, redis_url)


def default_workers(settings: Settings) -> int:
    """One process per core on PostgreSQL (up to 4); one on SQLite, which has a single writer."""
    if settings.database_url.startswith("sqlite"):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def serve_workers(settings: Settings, redis_url: str, workers: int) -> None:
    """Serve in this process and in `workers - 1` more on the same ports (SO_REUSEPORT), restarting
    any that dies. This process serves too: an idle supervisor would cost a whole interpreter.

    The kernel spreads datagrams by source address and port, so a NAS's retransmission reaches the
    worker that holds its cached reply (RFC 5080), and each worker group-commits its own accounting.
    """
    if workers <= 1:
        serve(settings, redis_url)
        return
    # Build what every worker reads alike before forking, then freeze it out of the collector:
    # a collection touches every object it scans, which would copy the shared pages into each worker.
    radius.dictionary()
    gc.collect()
    gc.freeze()
    crew = Crew(settings, redis_url)
    crew.start(workers - 1)      # forked now, while this process has no other thread
    log.info("%d RADIUS workers started", workers)
    try:
        serve(settings, redis_url, on_stop=crew.stop)
    finally:
        crew.stop()
        crew.join()


class Crew(threading.Thread):
    """The forked workers of this process, watched from a thread: one that dies is started again
    (spawned: forking a process that runs threads is not safe)."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        super().__init__(name="radius-crew", daemon=True)
        self.args = (settings, redis_url, os.getpid())
        self.procs: list[multiprocessing.Process] = []
        self.stopping = threading.Event()

    def start(self, n: int) -> None:  # type: ignore[override]
        """Fork `n` workers, then start watching them."""
        fork = multiprocessing.get_context("fork")
        self.procs = [fork.Process(target=_worker, args=self.args, name=f"radius-{i + 1}") for i in range(n)]
        for proc in self.procs:
            proc.start()
        super().start()

    def run(self) -> None:
        """Restart workers that exit while not stopping."""
        spawn = multiprocessing.get_context("spawn")
        while not self.stopping.wait(0.5):
            for i, proc in enumerate(self.procs):
                if not proc.is_alive():
                    log.error("%s exited with %s; restarting it", proc.name, proc.exitcode)
                    self.procs[i] = spawn.Process(target=_worker, args=self.args, name=proc.name)
                    self.procs[i].start()

    def stop(self) -> None:
        """Ask every worker to stop (each answers what it has queued first)."""
        self.stopping.set()
        for proc in self.procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    def join(self, timeout: float = 20.0) -> None:  # type: ignore[override]
        """Wait for the workers to finish."""
        for proc in self.procs:
            proc.join(timeout)
