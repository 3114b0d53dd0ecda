"""The probe scheduler: every NAS probed once per interval, spread evenly over it; results go into the
tracker (portal/core/nodestate.py), which is written once a second while this monitor holds the lease.

Database work runs in one thread beside the event loop, so a slow or absent database never delays a
probe; what could not be written is kept and written when the database is back.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from portal.core import nodestore
from portal.core.errors import InputError
from portal.core.metrics import m
from portal.core.model import utcnow
from portal.core.nodestate import Drained, Tracker
from portal.core.nodestore import LeaseLostError, Target
from portal.core.probes import ProbeSpec, parse_probe
from portal.core.settings import Settings
from portal.monitor.probers import ProbeError, Prober

log = logging.getLogger("conecta.monitor")
FLUSH_EVERY = 1.0      # seconds between writes (and heartbeats)
REFRESH_EVERY = 10.0   # seconds between reads of the NAS table
ACQUIRE_EVERY = 2.0    # seconds between attempts to take the lease
SPREAD = 0.6180339887  # golden ratio: NAS ids spread evenly over the interval

Step = Callable[[DbSession, datetime], None]


class Monitor:
    """One monitor process's work: take the lease, then probe and write until stopped or fenced."""

    def __init__(self, settings: Settings, db_factory: sessionmaker, holder: str | None = None,
                 on_result: Callable[[Target, bool, float | None], None] | None = None) -> None:
        self.settings = settings
        self.db_factory = db_factory
        self.holder = holder or nodestore.holder_id()
        self.interval = settings.monitor_interval
        self.steps: list[Step] = []            # more work in the write thread after each flush (alerts)
        self.on_result = on_result or (lambda _target, _ok, _ms: None)
        self.db_thread = ThreadPoolExecutor(1, thread_name_prefix="monitor-db")
        self.stopping = asyncio.Event()
        self.epoch: int | None = None
        self.tracker = Tracker(settings.monitor_confirmations)
        self.targets: dict[int, Target] = {}
        self.specs: dict[int, ProbeSpec | None] = {}
        self.queue: list[tuple[float, int]] = []
        self.tasks: set[asyncio.Task] = set()
        self.db_failing = False

    async def _db(self, fn: Callable, *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    def stop(self) -> None:
        """Ask the monitor to finish (from a signal handler)."""
        self.stopping.set()

    async def run(self) -> None:
        """Stand by until the lease is free, then work; again after losing it; until stopped."""
        prober = Prober(self.settings.probe_timeout)
        try:
            while not self.stopping.is_set():
                if await self._acquire():
                    log.info("monitor %s took the lease (epoch %d): probing every %.1f s", self.holder,
                             self.epoch, self.interval)
                    await self._work(prober)
                else:
                    await self._sleep(ACQUIRE_EVERY)
        finally:
            await prober.close()
            self.db_thread.shutdown(wait=True)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass

    def _take(self) -> int | None:
        with self.db_factory() as db:
            return nodestore.acquire(db, self.holder, utcnow(), self.interval)

    async def _acquire(self) -> bool:
        try:
            self.epoch = await self._db(self._take)
        except Exception as exc:  # noqa: BLE001 - the database may be away; try again later
            log.warning("lease not taken, database unreachable: %s", type(exc).__name__)
            self.epoch = None
        return self.epoch is not None

    async def _work(self, prober: Prober) -> None:
        if not await self._start():
            self.epoch = None
            return
        last_flush = last_refresh = time.monotonic()
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if now - last_refresh >= REFRESH_EVERY:
                    last_refresh = now
                    await self._refresh()
                self._launch_due(prober, now)
                if now - last_flush >= FLUSH_EVERY:
                    last_flush = now
                    await self._flush()
                next_due = self.queue[0][0] - time.monotonic() if self.queue else FLUSH_EVERY
                await self._sleep(max(0.005, min(FLUSH_EVERY, next_due)))
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self._flush()
            await self._db(self._release)
        except LeaseLostError as exc:
            log.error("monitor %s lost the lease (%s): standing by", self.holder, exc)
        finally:
            for task in self.tasks:
                task.cancel()
            self.epoch = None

    def _release(self) -> None:
        try:
            with self.db_factory() as db:
                nodestore.release(db, self.epoch)
        except Exception as exc:  # noqa: BLE001 - the lease then expires by itself
            log.warning("lease not released: %s", type(exc).__name__)

    def _load(self) -> tuple[list[Target], list]:
        with self.db_factory() as db:
            found = nodestore.targets(db)
            return found, nodestore.saved_nodes(db, {t.nas_id: t for t in found})

    async def _start(self) -> bool:
        """Read the NAS table and the saved states into a fresh tracker."""
        try:
            found, saved = await self._db(self._load)
        except Exception as exc:  # noqa: BLE001
            log.warning("monitor cannot read the NAS table: %s", type(exc).__name__)
            return False
        self.tracker = Tracker(self.settings.monitor_confirmations)
        gap = timedelta(seconds=3 * self.interval) + nodestore.LEASE_TTL
        self.tracker.load(saved, utcnow(), gap)
        self.targets, self.specs, self.queue = {}, {}, []
        self._apply(found)
        return True

    async def _refresh(self) -> None:
        try:
            found = await self._db(self._read_targets)
        except Exception as exc:  # noqa: BLE001 - keep probing the NAS we know
            log.warning("NAS table not reloaded: %s", type(exc).__name__)
            return
        self._apply(found)

    def _read_targets(self) -> list[Target]:
        with self.db_factory() as db:
            return nodestore.targets(db)

    def _apply(self, found: list[Target]) -> None:
        """Bring the tracker and the schedule in line with the NAS table."""
        now, start = utcnow(), time.monotonic()
        seen = {t.nas_id for t in found}
        for nas_id in [i for i in self.targets if i not in seen]:
            del self.targets[nas_id]
            self.tracker.remove(nas_id, now)
        for target in found:
            spec = self._spec(target)
            fresh = target.nas_id not in self.targets
            self.targets[target.nas_id], self.specs[target.nas_id] = target, spec
            if target.nas_id in self.tracker.nodes:
                self.tracker.update(target.nas_id, target.site_id, target.name, spec is not None, now)
            else:
                self.tracker.add(target.nas_id, target.site_id, target.name, spec is not None, now)
            if fresh:
                offset = (target.nas_id * SPREAD) % 1.0 * self.interval
                heapq.heappush(self.queue, (start + offset, target.nas_id))

    def _spec(self, target: Target) -> ProbeSpec | None:
        try:
            spec = parse_probe(target.probe, target.ip)
        except InputError as exc:
            log.warning("NAS %s: unusable probe (%s); not probed", target.name, exc)
            return None
        return None if spec.kind == "none" else spec

    def _launch_due(self, prober: Prober, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            due, nas_id = heapq.heappop(self.queue)
            if nas_id not in self.targets:
                continue                                   # removed since
            heapq.heappush(self.queue, (max(due + self.interval, now + self.interval / 2), nas_id))
            spec = self.specs.get(nas_id)
            if spec is not None:
                task = asyncio.create_task(self._probe(prober, self.targets[nas_id], spec))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _probe(self, prober: Prober, target: Target, spec: ProbeSpec) -> None:
        at = utcnow()
        latency, detail = None, None
        try:
            latency = await prober.probe(target.ip, spec)
        except ProbeError as exc:
            detail = str(exc)
        except TimeoutError:
            detail = "timeout"
        except Exception:  # noqa: BLE001 - one odd probe never stops the monitor
            log.exception("probe of NAS %s failed unexpectedly", target.name)
            detail = "probe error"
        if target.nas_id in self.targets:
            self.tracker.observe(target.nas_id, detail is None, at, latency, detail)
            self._measure(target, spec, latency)
        self.on_result(target, detail is None, latency)

    def _measure(self, target: Target, spec: ProbeSpec, latency: float | None) -> None:
        """The NAS's up gauge and last round trip, and the probe counter."""
        metrics = m()
        metrics.probes.labels(spec.kind, "ok" if latency is not None else "failed").inc()
        up = self.tracker.nodes[target.nas_id].state == "up"
        metrics.nas_up.labels(target.name, str(target.site_id)).set(1 if up else 0)
        if latency is not None:
            metrics.probe_latency.labels(target.name).set(latency / 1000)

    def _write(self, drained: Drained, now: datetime) -> None:
        with self.db_factory() as db:
            nodestore.save(db, drained, self.epoch, now)
        for step in self.steps:      # after the commit: a failing step never makes the states be written twice
            try:
                with self.db_factory() as db:
                    step(db, now)
            except Exception as exc:  # noqa: BLE001 - tried again after the next flush
                log.warning("monitor step %s failed: %s", getattr(getattr(step, "func", step), "__name__", "?"),
                            type(exc).__name__)

    async def _flush(self) -> None:
        drained = self.tracker.drain()
        try:
            await self._db(self._write, drained, utcnow())
        except LeaseLostError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database is away: keep everything for later
            self.tracker.restore(drained)
            if not self.db_failing:
                log.error("monitor cannot write to the database (%s); keeping %d changes until it is back",
                          type(exc).__name__, len(drained.transitions) + len(drained.nodes))
            self.db_failing = True
            return
        if self.db_failing:
            log.info("database reachable again; monitor state written")
        self.db_failing = False
