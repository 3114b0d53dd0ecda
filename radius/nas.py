"""The NAS table as the RADIUS server sees it: refreshed from SQL, keyed by source address."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from portal.core.board import SEEN_KEY
from portal.core.model import Nas, Site

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NasInfo:
    """What a request handler needs to know about the access point that sent it."""

    id: int
    name: str
    ip: str
    secret: bytes
    vendor: str
    coa_port: int
    require_ma: bool
    site_id: int
    site_policy: str
    input_is_download: bool = False    # its Acct-Input-Octets count what it sent to the client


class NasRegistry:
    """NAS by IP, reloaded every `refresh` seconds so `conecta nas add` needs no restart."""

    def __init__(self, db_factory: sessionmaker, refresh: float = 10.0) -> None:
        self.db_factory = db_factory
        self.refresh = refresh
        self.by_ip: dict[str, NasInfo] = {}
        self.by_id: dict[int, NasInfo] = {}
        self.site_policy: dict[int, str] = {}
        self.loaded_at = 0.0
        self.seen: dict[int, float] = {}

    def load(self) -> None:
        """Read the NAS table; keep the previous one if the database is unreachable."""
        try:
            with self.db_factory() as db:
                rows = db.execute(select(Nas, Site.policy).join(Site, Site.id == Nas.site_id)).all()
        except Exception as exc:  # noqa: BLE001 - a dead database must not stop the server
            log.warning("NAS table not reloaded, keeping %d known NAS: %s", len(self.by_ip), type(exc).__name__)
            self.loaded_at = time.monotonic()
            return
        infos = [NasInfo(n.id, n.name, n.ip, n.secret.encode(), n.vendor, n.coa_port,
                         n.require_message_authenticator, n.site_id, policy,
                         n.octets_direction == "input-is-download") for n, policy in rows]
        self.by_ip = {i.ip: i for i in infos}
        self.by_id = {i.id: i for i in infos}
        self.site_policy = {i.site_id: i.site_policy for i in infos}
        self.loaded_at = time.monotonic()

    def refresh_if_due(self) -> None:
        """Reload the table when it is older than `refresh` seconds."""
        if time.monotonic() - self.loaded_at > self.refresh:
            self.load()

    def lookup(self, ip: str) -> NasInfo | None:
        """The NAS for a source address, reloading the table when it is due."""
        self.refresh_if_due()
        return self.by_ip.get(ip)

    def mark_seen(self, nas_id: int) -> None:
        """Note that a valid packet came from this NAS (flushed in bulk, not per packet)."""
        self.seen[nas_id] = time.time()

    def flush_seen(self, r: redis.Redis | None, to_db: bool) -> None:
        """Write last-seen times to Redis (for the node board) and, when asked, to SQL."""
        if not self.seen:
            return
        seen, self.seen = self.seen, {}
        try:
            if r is not None:
                r.hset(SEEN_KEY, mapping={str(k): f"{v:.0f}" for k, v in seen.items()})
        except redis.RedisError as exc:
            log.warning("NAS last-seen not written to Redis: %s", type(exc).__name__)
        if not to_db:
            self.seen.update({k: v for k, v in seen.items() if k not in self.seen})
            return
        try:
            with self.db_factory.begin() as db:
                for nas_id, epoch in seen.items():
                    when = datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)
                    db.execute(update(Nas).where(Nas.id == nas_id).values(last_seen=when))
        except Exception as exc:  # noqa: BLE001
            log.warning("NAS last-seen not written to SQL: %s", type(exc).__name__)
            self.seen.update({k: v for k, v in seen.items() if k not in self.seen})
