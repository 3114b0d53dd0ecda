"""`conecta monitor` as a process: wiring, signals and a clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal

from portal.core.db import engine_for, session_factory
from portal.core.settings import Settings
from portal.monitor.scheduler import Monitor

log = logging.getLogger("conecta.monitor")


def build(settings: Settings) -> Monitor:
    """A Monitor on the configured database."""
    return Monitor(settings, session_factory(engine_for(settings)))


async def _serve(monitor: Monitor) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, monitor.stop)
    await monitor.run()


def run(settings: Settings) -> None:
    """Probe until SIGTERM or SIGINT (standing by while another monitor holds the lease)."""
    monitor = build(settings)
    log.info("monitor %s started; interval %.1f s, down after %d failures", monitor.holder,
             settings.monitor_interval, settings.monitor_confirmations)
    asyncio.run(_serve(monitor))
    log.info("monitor stopped")
