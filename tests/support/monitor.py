"""The monitor for tests: the real Monitor on its own event loop in a thread, on short intervals,
and a wait for what it writes."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from portal.core import nodestore, probes, sites
from portal.core.model import NodeEvent, NodeState, Site, utcnow
from portal.core.nodestate import Tracker
from portal.core.settings import Settings
from portal.monitor.main import build
from tests.support.builders import SECRET

CONECTA = Path(sys.executable).with_name("conecta")   # the installed command
FAST = {"monitor_interval": 0.3, "monitor_confirmations": 2, "probe_timeout": 0.25}


def fast(settings: Settings, **more: object) -> Settings:
    """The test's settings with a monitor that decides within a second or so."""
    return dataclasses.replace(settings, **{**FAST, **more})


class MonitorThread:
    """A Monitor (with its alert steps and sender, as `conecta monitor` builds it) serving in a thread
    until stop()."""

    def __init__(self, settings: Settings, db_factory, holder: str | None = None) -> None:
        self.monitor, self.sender = build(settings, db_factory, holder)
        self.sender.backoff = (0.2, 0.2, 0.2)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            self.started.set()
            await self.monitor.run()
        asyncio.run(main())

    def start(self) -> MonitorThread:
        """Start serving; returns self."""
        self.sender.start()
        self.thread.start()
        self.started.wait(5)
        return self

    def stop(self) -> None:
        """Stop as SIGTERM would, and wait for the thread."""
        if self.loop is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.monitor.stop)
        self.thread.join(15)
        self.sender.stop()
        assert not self.thread.is_alive(), "the monitor did not stop"


def wait_for(check: Callable[[], object], timeout: float = 10.0, every: float = 0.05) -> object:
    """Poll `check` until it returns something true; fail with its last value after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting; last value: {value!r}"
        time.sleep(every)


def add_probed_nas(db_factory, policies, name: str, ip: str, probe: str = "icmp",
                   site: str = "Ejido La Esperanza", kind: str = "ejido") -> int:
    """A site (when new) and a NAS at `ip` with `probe`; returns the NAS id."""
    with db_factory() as db:
        if db.scalar(select(Site.id).where(Site.name == site)) is None:
            sites.add_site(db, policies, site, kind, "parque")
        nas, _ = sites.add_nas(db, sites.NasSpec(name, site, ip, SECRET, "generic"), production=False)
        probes.set_probe(db, name, probe)
        db.commit()
        return nas.id


def node(db_factory, nas_id: int):
    """The saved node_state row of a NAS, or None."""
    with db_factory() as db:
        return db.get(NodeState, nas_id)


def state_of(db_factory, nas_id: int) -> str | None:
    """The saved state of a NAS."""
    row = node(db_factory, nas_id)
    return row.state if row else None


def events_of(db_factory, nas_id: int) -> list:
    """A NAS's history periods, oldest first."""
    with db_factory() as db:
        return list(db.scalars(select(NodeEvent).where(NodeEvent.nas_id == nas_id).order_by(NodeEvent.id)))


class History:
    """Writes a monitor's history as the monitor would (Tracker, then nodestore.save under a lease),
    at the times a test chooses (naive UTC)."""

    def __init__(self, db_factory, confirmations: int = 3) -> None:
        self.db_factory = db_factory
        self.tracker = Tracker(confirmations)
        with db_factory() as db:
            self.epoch = nodestore.acquire(db, "history:1", utcnow(), 30.0)

    def save(self, at) -> None:
        """Write what changed, as a flush at `at`."""
        with self.db_factory() as db:
            nodestore.save(db, self.tracker.drain(), self.epoch, at)

    def restart(self, at, gap) -> None:
        """A monitor starting again at `at`: the saved states read back into a new tracker."""
        with self.db_factory() as db:
            known = {t.nas_id: t for t in nodestore.targets(db)}
            saved = nodestore.saved_nodes(db, known)
        self.tracker = Tracker(self.tracker.confirmations)
        self.tracker.load(saved, at, gap)
        self.save(at)
