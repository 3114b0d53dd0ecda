"""PostgreSQL clusters and Redis servers of our own, in a temporary directory, that a test or the fault
benchmark (bench/faults_bench.py) can stop, kill, restart empty, replicate and promote.

PostgreSQL comes from Debian's packages (initdb, pg_ctl, pg_basebackup under /usr/lib/postgresql/N/bin);
initdb refuses to run as root, so as root every PostgreSQL command runs as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def pg_bin() -> Path | None:
    """The directory of initdb and pg_ctl: Debian's newest PostgreSQL, else whatever is on PATH."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def missing() -> str | None:
    """Why clusters cannot be made here, or None."""
    if pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
    if not shutil.which("redis-server"):
        return "redis-server is not installed"
    return None


def _owner() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def workspace(prefix: str = "conecta-stores-") -> Path:
    """A fresh directory the `postgres` user may write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    owner = _owner()
    if owner:
        os.chown(path, *owner)
    return path


class LocalPostgres:
    """One cluster on 127.0.0.1:port, its socket and log in its own directory."""

    def __init__(self, root: Path, name: str, port: int) -> None:
        self.dir = root / name
        self.port = port
        self.log = root / f"{name}.log"
        self.owner = _owner()

    def _run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs = {"user": self.owner[0], "group": self.owner[1]} if self.owner else {}
        return subprocess.run([str(pg_bin() / argv[0]), *argv[1:]], check=check, capture_output=True,
                              timeout=timeout, **kwargs)

    def init(self, **conf: str) -> LocalPostgres:
        """initdb (trust on loopback, replication allowed) with extra postgresql.conf settings."""
        self._run("initdb", "-D", str(self.dir), "-U", "postgres", "-A", "trust", "-N", "--no-instructions")
        settings = {"wal_level": "replica", "max_wal_senders": "5", "hot_standby": "on", **conf}
        with open(self.dir / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        return self

    def replica_of(self, primary: LocalPostgres) -> LocalPostgres:
        """A streaming replica of `primary`, made with pg_basebackup (-R writes standby.signal)."""
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                  "-D", str(self.dir), "-R", "-X", "stream", "-c", "fast")
        return self

    def start(self, **conf: str) -> None:
        """Start (with `conf` as -c settings of this run only) and wait until it accepts connections."""
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        opts += "".join(f" -c {k}={v}" for k, v in conf.items())
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` (clean) or `immediate` (as after a crash of the machine's PostgreSQL)."""
        self._run("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        """Make this replica the primary."""
        self._run("pg_ctl", "-D", str(self.dir), "-w", "promote")

    def url(self, database: str = "postgres") -> str:
        """Its SQLAlchemy URL."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        """CREATE DATABASE name."""
        import psycopg
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")


class LocalRedis:
    """One redis-server on 127.0.0.1:port (append-only file in its own directory unless `persist` is off)."""

    def __init__(self, root: Path, name: str, port: int, persist: bool = True, replica_of: int | None = None) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.persist = persist
        self.replica_of = replica_of
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start and wait for PING."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if self.persist else "no", "--protected-mode", "no"]
        if self.replica_of:
            argv += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.proc = subprocess.Popen(argv, stdout=open(self.dir / "log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                     stdin=subprocess.DEVNULL)
        wait_ping(self.port)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (SIGTERM: clean, the append-only file kept; SIGKILL: as a crash)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)

    def wipe(self) -> None:
        """Delete its files: the next start is empty."""
        for path in self.dir.iterdir():
            if path.name != "log":
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def url(self, db: int = 0) -> str:
        """Its redis:// URL."""
        return f"redis://127.0.0.1:{self.port}/{db}"


class LocalSentinel:
    """One Redis Sentinel (redis-sentinel, or redis-server --sentinel) watching `master` as `name`."""

    def __init__(self, root: Path, port: int, master_port: int, name: str = "conecta", quorum: int = 1) -> None:
        self.port = port
        self.conf = root / f"sentinel-{port}.conf"
        self.conf.write_text(f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {root}\n"
                             f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n"
                             f"sentinel down-after-milliseconds {name} 1000\n"
                             f"sentinel failover-timeout {name} 4000\n")
        binary = shutil.which("redis-sentinel")
        argv = [binary, str(self.conf)] if binary else ["redis-server", str(self.conf), "--sentinel"]
        self.proc = subprocess.Popen(argv, stdout=open(root / f"sentinel-{port}.log", "ab"),  # noqa: SIM115
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_ping(port)

    def stop(self) -> None:
        """Stop it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def wait_ping(port: int, timeout: float = 15) -> None:
    """Wait until a Redis (or Sentinel) on 127.0.0.1:port answers PING."""
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


def free_tcp_port() -> int:
    """A TCP port nothing listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill_disk(directory: Path) -> Path:
    """Fill the file system of `directory` to the last byte; return the filler to delete."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):     # to the last byte
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler
