"""`conecta run`: the embedded Redis, the RADIUS server, the monitor and the portal, started and stopped together."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, select

from portal.core import metrics
from portal.core.lifeline import tied
from portal.core.logs import ACCESS_FORMAT
from portal.core.model import Nas
from portal.core.portlock import check_free, hand_down, hold
from portal.core.redisconn import serving_redis
from portal.core.schema import upgrade
from portal.core.settings import Settings, settings_env

log = logging.getLogger("conecta.run")
ROOT = Path(__file__).resolve().parent.parent.parent   # the checkout, or site-packages


def gunicorn_command(settings: Settings, workers: int = 2) -> list[str]:
    """gunicorn with gthread workers (eventlet is gone from gunicorn 27) serving wsgi:app.

    Start it with cwd=ROOT, the directory that holds the installed `portal` and `wsgi`: before reading
    its command line gunicorn puts the directory it starts in first on sys.path (--chdir adds nothing
    when ROOT, as site-packages, is on it already), and it runs a gunicorn.conf.py found there. With -P,
    a `policies/` folder (or gunicorn.conf.py) wherever the operator stands cannot take the place of ours.
    """
    return [sys.executable, "-P", "-m", "gunicorn", "--chdir", str(ROOT), "-k", "gthread",
            "--workers", str(workers), "--threads", "8", "--graceful-timeout", "10",
            "--bind", f"{settings.portal_host}:{settings.portal_port}",
            # Its error and access logs through Conecta's formatter; the access log (off unless
            # GUNICORN_CMD_ARGS turns it on) without addresses or queries.
            "--logger-class", "portal.web.gunicorn_logging.OneLineLogger",
            "--access-logformat", ACCESS_FORMAT,
            # No control socket: its default, ~/.gunicorn/gunicorn.ctl, is one for every instance on the host.
            "--no-control-socket", "wsgi:app"]


def demo_splash_url(portal: str, uam_secret: str) -> str:
    """The link a CoovaChilli registered as demo-ap would redirect a new phone to, signed with its UAM
    secret (md): a tester opens the citizen's splash page without an access point."""
    url = (f"{portal}?res=notyet&uamip=127.0.0.1&uamport=3990&challenge={'0' * 32}&mac=02-00-00-00-00-01"
           f"&ip=127.0.0.1&nasid=demo-ap&userurl=")
    return f"{url}&md={hashlib.md5((url + uam_secret).encode(), usedforsecurity=False).hexdigest().upper()}"


def banner(settings: Settings, engine: Engine, redis_url: str) -> None:
    """What a tester needs: the URLs and ports, the demo NAS's secrets, a RADIUS try and a citizen's link."""
    host = "127.0.0.1" if settings.portal_host == "0.0.0.0" else settings.portal_host
    portal = f"http://{host}:{settings.portal_port}/"
    print(f"Conecta is running ({settings.env}).", flush=True)
    print(f"  portal:  {portal}", flush=True)
    print(f"  RADIUS:  auth {settings.radius_auth_port}/udp, acct {settings.radius_acct_port}/udp "
          f"on {settings.radius_host}", flush=True)
    print(f"  Redis:   {redis_url}", flush=True)
    with engine.connect() as conn:
        demo = conn.execute(select(Nas.secret, Nas.uam_secret).where(Nas.name == "demo-ap")).first()
    if demo:
        print(f"  demo NAS 127.0.0.1 secret: {demo.secret}", flush=True)
        print(f"  demo NAS UAM secret:       {demo.uam_secret}", flush=True)
        print("  try RADIUS (policy demo: open at any hour):", flush=True)
        print("    conecta user add ana --password una-clave-larga --policy demo", flush=True)
        print(f'    echo "User-Name=ana,User-Password=una-clave-larga,Message-Authenticator=0x00" '
              f"| radclient 127.0.0.1:{settings.radius_auth_port} auth {demo.secret}", flush=True)
        if demo.uam_secret:
            print(f"  a phone's first page at the demo NAS: {demo_splash_url(portal, demo.uam_secret)}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)


class Child:
    """A supervised child process, restarted (at most 5 times a minute) if it dies."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None,
                 pass_fds: tuple[int, ...] = ()) -> None:
        self.name, self.argv, self.env, self.cwd, self.pass_fds = name, argv, env, cwd, pass_fds
        self.proc: subprocess.Popen | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        """Start (or restart) the process."""
        self.starts = [t for t in self.starts if time.monotonic() - t < 60] + [time.monotonic()]
        self.proc = subprocess.Popen(tied(self.argv), env=self.env, cwd=self.cwd, pass_fds=self.pass_fds)

    def check(self) -> bool:
        """Restart a dead child; False when it keeps dying."""
        if self.proc is None or self.proc.poll() is None:
            return True
        log.error("%s exited with status %s", self.name, self.proc.returncode)
        if len(self.starts) >= 5:
            return False
        self.start()
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve_one(argv: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run one child (tied to this process) until it exits; SIGINT or SIGTERM here stops it gracefully."""
    proc = subprocess.Popen(tied(argv), env=env, cwd=cwd)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: proc.terminate())
    return proc.wait()


def take_ports(settings: Settings) -> dict[str, socket.socket | None]:
    """This instance's ports, locked host-wide (PortInUseError, at once, when another Conecta or program has one)."""
    ports = (("tcp", settings.portal_host, settings.portal_port, "portal"),
             ("udp", settings.radius_host, settings.radius_auth_port, "RADIUS auth"),
             ("udp", settings.radius_host, settings.radius_acct_port, "RADIUS accounting"))
    locks = {f"{kind}-{port}": hold(kind, port, what) for kind, _, port, what in ports}
    for kind, host, port, what in ports:
        check_free(kind, host, port, what)
    return locks


def run_all(settings: Settings, engine: Engine) -> int:
    """Run until SIGINT/SIGTERM; return the exit status."""
    locks = take_ports(settings)       # before anything starts: a second instance stops here
    radius_locks, radius_fds = hand_down({k: v for k, v in locks.items() if k.startswith("udp")})
    upgrade(engine)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    metrics.enable(settings, fresh=True)    # before the children: they inherit where to write
    metrics.serve(settings)
    with serving_redis(settings) as url:
        env = {**os.environ, **settings_env(settings), "CONECTA_REDIS_URL": url}
        children = [Child("radius", [sys.executable, "-P", "-m", "portal", "radius"], {**env, **radius_locks},
                          pass_fds=radius_fds),
                    Child("monitor", [sys.executable, "-P", "-m", "portal", "monitor"], env),
                    Child("portal", gunicorn_command(settings), env, cwd=ROOT)]
        for child in children:
            child.start()
        time.sleep(1.0)
        banner(settings, engine, url)
        status = 0
        try:
            while not stopping:
                if not all(child.check() for child in children):
                    status = 1
                    break
                time.sleep(0.5)
        finally:
            for child in reversed(children):
                child.stop()
    return status
