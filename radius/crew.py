"""The processes of one `conecta radius`: forked RADIUS workers and the accounting applier.

Replies and applying are separate processes so that they share no GIL, and the applier runs at a
lower CPU priority: under load the kernel serves the replies first, and the applier catches up in
the gaps (the records wait, acknowledged, in the write-ahead log). A watcher thread restarts any
process that dies; all of them stop with the supervisor, even when it is killed.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
from datetime import datetime, timezone

from policies import load_policies
from portal.core import logs, metrics
from portal.core.db import engine_for, session_factory
from portal.core.portlock import hold
from portal.core.radiusdict import dictionary
from portal.core.redisconn import connect
from portal.core.settings import Settings
from radius.applier import Applier
from radius.main import collect_garbage, serve, stop_with_parent, tune_collector
from radius.nas import NasRegistry
from radius.slowlane import SlowLane, policy_chooser
from radius.wal import log_directories
from radius.writer import Progress

log = logging.getLogger("conecta.radius")
APPLIER_NICE = 10      # CPU weight about a tenth of a worker's when both want the same core


def _worker(settings: Settings, redis_url: str, parent: int, progress: Progress) -> None:
    """A worker process: replies only; its accounting goes to the applier through the log."""
    logs.setup_unless_done()    # a restarted (spawned) one starts without the supervisor's logging
    if stop_with_parent(parent, "conecta-worker"):
        serve(settings, redis_url, progress)


def run_applier(settings: Settings, redis_url: str, parent: int, progress: Progress) -> None:
    """The applier process: tails every worker's log directory until SIGTERM, then finishes them."""
    logs.setup_unless_done()
    if not stop_with_parent(parent, "conecta-applier"):
        return
    # Ctrl-C reaches the whole process group; the supervisor sends SIGTERM once the workers are done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(APPLIER_NICE)
    db_factory = session_factory(engine_for(settings))
    registry = NasRegistry(db_factory)
    registry.load()
    clock = lambda: datetime.now(timezone.utc)  # noqa: E731 - the one clock of this process
    slow_lane = SlowLane(db_factory, dictionary(), settings.tz, clock)

    def policy_of(site_id: int) -> str:
        registry.refresh_if_due()
        return registry.site_policy.get(site_id, "")

    root = settings.data_dir / "wal"
    r, policies = connect(redis_url), load_policies(settings.policy_dir)
    applier = Applier(db_factory, r, policies, settings.tz, clock, policy_of, slow_lane.person_spent, progress,
                      lambda: log_directories(root))
    applier.on_sweep = lambda: slow_lane.sweep(r, policy_chooser(policies, policy_of))
    signal.signal(signal.SIGTERM, lambda _signum, _frame: applier.stopping.set())
    tune_collector()
    applier.on_quiet = collect_garbage
    applier.run()
    slow_lane.stop()
    log.info("accounting applier stopped; %d records applied", applier.committed)


class Crew(threading.Thread):
    """The workers and the applier of this process, watched from a thread: one that dies is
    started again (spawned: forking a process that runs threads is not safe)."""

    def __init__(self, settings: Settings, redis_url: str, progress: Progress) -> None:
        super().__init__(name="radius-crew", daemon=True)
        self.args = (settings, redis_url, os.getpid(), progress)
        self.workers: list[multiprocessing.Process] = []
        self.applier: multiprocessing.Process | None = None
        self.stopping = threading.Event()

    def start(self, n: int) -> None:  # type: ignore[override]
        """Fork the applier and `n` workers, then start watching them."""
        fork = multiprocessing.get_context("fork")
        self.applier = fork.Process(target=run_applier, args=self.args, name="radius-applier")
        self.workers = [fork.Process(target=_worker, args=self.args, name=f"radius-{i + 1}") for i in range(n)]
        for proc in [self.applier, *self.workers]:
            proc.start()
        super().start()

    def run(self) -> None:
        """Restart processes that exit while not stopping."""
        spawn = multiprocessing.get_context("spawn")
        while not self.stopping.wait(0.5):
            for i, proc in enumerate(self.workers):
                if not proc.is_alive() and not self.stopping.is_set():   # (a stopping worker exits)
                    self.workers[i] = self._restart(spawn, proc, _worker)
            if self.applier is not None and not self.applier.is_alive() and not self.stopping.is_set():
                self.applier = self._restart(spawn, self.applier, run_applier)

    def _restart(self, spawn, proc: multiprocessing.Process, target) -> multiprocessing.Process:
        log.error("%s exited with %s; restarting it", proc.name, proc.exitcode)
        fresh = spawn.Process(target=target, args=self.args, name=proc.name)
        fresh.start()
        return fresh

    def stop_workers(self) -> None:
        """Ask every worker to stop (each answers what it has queued first)."""
        self.stopping.set()
        for proc in self.workers:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    def join(self, timeout: float = 20.0) -> None:  # type: ignore[override]
        """Wait for the workers, then let the applier finish their logs and wait for it."""
        for proc in self.workers:
            proc.join(timeout)
        if self.applier is not None:
            if self.applier.is_alive():
                os.kill(self.applier.pid, signal.SIGTERM)
            self.applier.join(timeout + 10)


def default_workers(settings: Settings) -> int:
    """One process per core on PostgreSQL (up to 4); one on SQLite, which has a single writer."""
    if settings.database_url.startswith("sqlite"):
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def serve_workers(settings: Settings, redis_url: str, workers: int) -> None:
    """Serve in this process and in `workers - 1` more on the same ports (SO_REUSEPORT), with one
    applier process that moves everyone's accounting into SQL; restart any that dies. This process
    serves too: an idle supervisor would cost a whole interpreter.

    The kernel spreads datagrams by source address and port, so a NAS's retransmission reaches the
    worker that holds its cached reply (RFC 5080), and each worker group-commits its own log.
    """
    # One instance per port: the workers of this one share them; another stops here, with a clear error.
    locks = [hold("udp", settings.radius_auth_port, "RADIUS auth"),
             hold("udp", settings.radius_acct_port, "RADIUS accounting")]
    # Build what every process reads alike before forking, then freeze it out of the collector:
    # a collection touches every object it scans, which would copy the shared pages into each one.
    dictionary()
    engine_for(settings).dispose()     # imports the database driver and dialect once, for all
    gc.collect()
    gc.freeze()
    progress = Progress()
    crew = Crew(settings, redis_url, progress)
    crew.start(workers - 1)      # forked now, while this process has no other thread
    metrics.serve(settings)      # a thread of its own: only after forking
    log.info("%d RADIUS workers and an accounting applier started", workers)
    try:
        serve(settings, redis_url, progress, on_stop=crew.stop_workers)
    finally:
        crew.stop_workers()
        crew.join()
        for lock in locks:
            if lock is not None:
                lock.close()
