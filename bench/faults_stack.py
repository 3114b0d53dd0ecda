"""What the fault benchmark runs and breaks: its own PostgreSQL cluster and redis-server (so it can stop
them), a data directory on a small tmpfs (so it can fill it), and `conecta radius` on top."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import packets
import systems
from procs import Server, family

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support import stores  # noqa: E402 - the same clusters the tests make

PORTS = (18143, 18153)
DATABASE = "conecta_faults"
TMPFS_MB = 256


class Stack:
    """PostgreSQL + Redis of our own, the data directory, `conecta radius`; stopped by stop()."""

    def __init__(self, out: Path, users: int) -> None:
        self.out = out
        self.root = stores.workspace("conecta-faults-")
        self.pg = stores.LocalPostgres(self.root, "pg", stores.free_tcp_port())
        self.redis = stores.LocalRedis(self.root, "redis", stores.free_tcp_port(), persist=True)
        self.data_dir = self.root / "data"
        self.tmpfs = False
        self.n_users = users
        self.server: Server | None = None
        self.secret = b""
        self.users: list[tuple[str, str]] = []

    @property
    def database_url(self) -> str:
        """The benchmark database's SQLAlchemy URL."""
        return self.pg.url(DATABASE)

    def env(self) -> dict[str, str]:
        """The environment of `conecta` here."""
        return {**os.environ, "CONECTA_DATABASE_URL": self.database_url, "CONECTA_REDIS_URL": self.redis.url(),
                "CONECTA_DATA_DIR": str(self.data_dir), "CONECTA_RADIUS_HOST": "127.0.0.1",
                "CONECTA_RADIUS_AUTH_PORT": str(PORTS[0]), "CONECTA_RADIUS_ACCT_PORT": str(PORTS[1]),
                "CONECTA_METRICS_PORT": "0"}

    def start(self) -> None:
        """Make and start everything, seed the users, start `conecta radius`."""
        self.pg.init().start()
        self.pg.create_database(DATABASE)
        self.redis.start()
        self.data_dir.mkdir()
        if os.geteuid() == 0:     # a small disk of its own, to fill
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(self.data_dir)],
                                  capture_output=True, check=False)
            self.tmpfs = done.returncode == 0
        subprocess.run([str(systems.VENV_BIN / "conecta"), "init"], env=self.env(), check=True, capture_output=True)
        self.users = packets.bench_users(self.n_users)
        pg = f"postgresql://postgres@127.0.0.1:{self.pg.port}/{DATABASE}"
        self.secret = systems.seed_conecta(self.env(), {"personal": self.users}, pg=pg).encode()
        self.server = Server("conecta-faults", [str(systems.VENV_BIN / "conecta"), "radius"],
                             self.out / "conecta-faults.log", env=self.env())
        self.server.wait_for(r"RADIUS listening", 60)
        time.sleep(2)     # the forked worker and the applier start after the first process listens

    def child(self, name: str) -> int:
        """The PID of a process of `conecta radius` by its name (conecta-worker, conecta-applier)."""
        for pid in family(self.server.pid)[1:]:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    return pid
            except OSError:
                continue
        raise RuntimeError(f"no {name} process under conecta radius (pid {self.server.pid})")

    def fill_disk(self) -> Path:
        """Fill the data directory's file system to the last byte; return the filler to delete."""
        return stores.fill_disk(self.data_dir)

    def stop(self) -> None:
        """Stop `conecta radius`, Redis and PostgreSQL; unmount and remove the directory."""
        if self.server is not None:
            self.server.stop()
        self.redis.stop(signal.SIGKILL)
        self.pg.stop("immediate")
        if self.tmpfs:
            subprocess.run(["umount", str(self.data_dir)], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
