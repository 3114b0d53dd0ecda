"""Run the RADIUS server as a process: wiring, signals, and clean shutdown."""

from __future__ import annotations

import logging
import signal
import threading

from policies import load_policies
from portal.db import engine_for, session_factory
from portal.redisconn import connect
from portal.settings import Settings
from radius.server import RadiusServer

log = logging.getLogger("conecta.radius")


def build_server(settings: Settings, redis_url: str, auth_port: int | None = None,
                 acct_port: int | None = None) -> RadiusServer:
    """A RadiusServer wired to the configured database, Redis and policies."""
    policies = load_policies(settings.policy_dir)
    engine = engine_for(settings)
    return RadiusServer(settings, policies, session_factory(engine), connect(redis_url),
                        auth_port=auth_port, acct_port=acct_port)


def serve(settings: Settings, redis_url: str, ready: threading.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then commit and answer queued accounting and exit."""
    server = build_server(settings, redis_url)
    auth, acct = server.ports
    log.info("RADIUS listening on %s: auth %d/udp, acct %d/udp", settings.radius_host, auth, acct)

    def stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        server.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    finally:
        server.shutdown()
        log.info("RADIUS stopped; %d accounting records committed", server.writer.committed)
