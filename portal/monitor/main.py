"""`conecta monitor` as a process: wiring, signals and a clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from functools import partial

from sqlalchemy.orm import sessionmaker

from portal.core import alerts, metrics
from portal.core.db import engine_for, session_factory
from portal.core.settings import Settings
from portal.monitor.notify import Sender
from portal.monitor.scheduler import Monitor

log = logging.getLogger("conecta.monitor")


def build(settings: Settings, db_factory: sessionmaker | None = None,
          holder: str | None = None) -> tuple[Monitor, Sender]:
    """A Monitor that also turns confirmed changes into alerts, and the Sender that delivers them while
    this monitor holds the lease."""
    db_factory = db_factory or session_factory(engine_for(settings))
    monitor = Monitor(settings, db_factory, holder=holder)
    monitor.steps += [partial(alerts.notice_step, settings=settings), partial(alerts.batch_step, settings=settings)]
    return monitor, Sender(settings, db_factory, lambda: monitor.epoch is not None)


async def _serve(monitor: Monitor) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, monitor.stop)
    await monitor.run()


def run(settings: Settings) -> None:
    """Probe until SIGTERM or SIGINT (standing by while another monitor holds the lease)."""
    metrics.enable(settings)
    metrics.serve(settings)
    monitor, sender = build(settings)
    log.info("monitor %s started; interval %.1f s, down after %d failures", monitor.holder,
             settings.monitor_interval, settings.monitor_confirmations)
    sender.start()
    try:
        asyncio.run(_serve(monitor))
    finally:
        sender.stop()
    log.info("monitor stopped")
