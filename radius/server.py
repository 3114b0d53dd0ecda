"""The RADIUS server: every protocol check in one place, then batches to the handlers.

One thread reads both sockets. Each wake-up drains up to BATCH datagrams per socket, so a burst
of re-authentications after a power cut costs one Redis round trip and one SQL query per batch,
not per packet. Access-Requests are answered in this thread; Accounting-Requests go to the
group-commit writer, which answers once the record is durable.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections.abc import Callable
from datetime import datetime, timezone

import redis
from pyrad import packet
from sqlalchemy.orm import sessionmaker

from policies import Policy
from portal.core import counters, credentials
from portal.core.macs import normalize_mac
from portal.core.metrics import m
from portal.core.radiusdict import dictionary
from portal.core.settings import Settings
from radius.applier import Applier
from radius.attributes import reply_attributes, reply_packet
from radius.handlers import Authorizer, AuthRequest, parse_accounting, text
from radius.nas import NasInfo, NasRegistry
from radius.packets import ACCT_CODES, AUTH_CODES, STATUS_SERVER, check_structure
from radius.slowlane import SlowLane, policy_chooser
from radius.util import IN_PROGRESS, RateLimitedLog, ReplyCache
from radius.wal import WriteAheadLog
from radius.writer import AccountingLog, Progress

log = logging.getLogger("conecta.radius")
BATCH = 256
QUIET_EVERY = 10.0       # seconds between calls of on_quiet, made when no datagram waits
QUIET_AT_MOST = 120.0    # ... or anyway, under a load that never pauses
RCVBUF = 8 * 1024 * 1024   # ~7,000 packets: a whole neighbourhood re-authenticating at once


def open_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket with a receive buffer sized for bursts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # several workers may share a port
    try:  # as root FORCE passes net.core.rmem_max; otherwise the kernel caps SO_RCVBUF to it
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), RCVBUF)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if got < RCVBUF:
        log.warning("UDP receive buffer is %d bytes, not %d: raise net.core.rmem_max", got, RCVBUF)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class RadiusServer:
    """Auth and accounting on two UDP ports; `serve_forever()` until `shutdown()`.

    Given the `progress` of an applier process (radius/crew.py), accounting is only logged and
    acknowledged here; without, this server applies it too, in a thread.
    """

    def __init__(self, settings: Settings, policies: dict[str, Policy], db_factory: sessionmaker,
                 r: redis.Redis, auth_port: int | None = None, acct_port: int | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 progress: Progress | None = None) -> None:
        self.settings = settings
        self.clock = clock  # aware UTC; tests move it to check hours and midnight resets
        self.dictionary = dictionary()
        self.registry = NasRegistry(db_factory)
        self.registry.load()
        self.redis = r
        self.cache = ReplyCache(window=settings.radius_retry_window)
        self.drops = RateLimitedLog(log)
        self.authorizer = Authorizer(policies, db_factory, r, settings.tz)
        self.slow_lane = SlowLane(db_factory, self.dictionary, settings.tz, clock)
        self.disconnector = self.slow_lane.disconnector
        wal = WriteAheadLog(settings.data_dir / "wal")
        self.writer = AccountingLog(wal, progress or Progress())
        self.applier = None if progress else Applier(
            db_factory, r, policies, settings.tz, clock, self._site_policy, self.slow_lane.person_spent,
            self.writer.progress, lambda: [wal.directory])
        if self.applier is not None:
            self.applier.on_sweep = lambda: self.slow_lane.sweep(r, policy_chooser(policies, self._site_policy))
        host = settings.radius_host
        self.auth_sock = open_socket(host, settings.radius_auth_port if auth_port is None else auth_port)
        self.acct_sock = open_socket(host, settings.radius_acct_port if acct_port is None else acct_port)
        self.running = False
        self.stats = {"auth": 0, "acct": 0, "dropped": 0}
        self.on_quiet: Callable[[], None] | None = None   # housekeeping that would pause replies

    @property
    def ports(self) -> tuple[int, int]:
        """The bound (auth, acct) ports, useful when started on port 0."""
        return self.auth_sock.getsockname()[1], self.acct_sock.getsockname()[1]

    def _site_policy(self, site_id: int) -> str:
        return self.registry.site_policy.get(site_id, "")

    def serve_forever(self) -> None:
        """Answer requests until shutdown() is called."""
        self.running = True
        self.writer.start()
        if self.applier is not None:
            self.applier.start()
        selector = selectors.DefaultSelector()
        selector.register(self.auth_sock, selectors.EVENT_READ, AUTH_CODES)
        selector.register(self.acct_sock, selectors.EVENT_READ, ACCT_CODES)
        last_flush = last_db_flush = last_quiet = time.monotonic()
        traffic = False      # datagrams came since on_quiet last ran
        self._ensure_active_set()
        try:
            while self.running:
                quiet_due = self.on_quiet is not None and time.monotonic() - last_quiet > QUIET_EVERY
                ready = selector.select(timeout=0.05 if quiet_due else 0.5)
                for key, _ in ready:
                    try:
                        self._serve_socket(key.fileobj, key.data)
                    except Exception:  # noqa: BLE001 - one bad request never stops the service
                        log.exception("unexpected error while serving; continuing")
                now = time.monotonic()
                self.cache.expire()
                traffic = traffic or bool(ready)
                # Due and nothing waits, a burst just ended (half a second of silence), or overdue.
                if self.on_quiet is not None and ((not ready and (quiet_due or traffic))
                                                  or (quiet_due and now - last_quiet > QUIET_AT_MOST)):
                    self.on_quiet()
                    last_quiet, traffic = now, False
                if now - last_flush > 5:
                    m().wal_backlog.set(max(0, self.writer.backlog()))
                    self._ensure_active_set()
                    self.registry.flush_seen(self.redis, to_db=now - last_db_flush > 60)
                    last_db_flush = now if now - last_db_flush > 60 else last_db_flush
                    last_flush = now
        finally:
            selector.close()

    def _ensure_active_set(self) -> None:
        try:
            now = self.clock().astimezone(self.settings.tz)
            counters.ensure_active_set(self.redis, self.authorizer.db_factory, now)
        except Exception as exc:  # noqa: BLE001 - without it, reads fall back to SQL: slower, still right
            log.warning("active set not built: %s", type(exc).__name__)

    def shutdown(self) -> None:
        """Stop serving; queued accounting is committed and answered first."""
        self.running = False
        time.sleep(0.6)
        self.writer.stop()
        if self.applier is not None:
            self.applier.stop()
        self.slow_lane.stop()
        self.registry.flush_seen(self.redis, to_db=True)
        self.auth_sock.close()
        self.acct_sock.close()

    def _serve_socket(self, sock: socket.socket, codes: frozenset[int]) -> None:
        self.batch_started = time.monotonic()      # for the reply-time histogram
        batch: list[tuple[packet.Packet, NasInfo, tuple, tuple]] = []
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(8192)
            except (BlockingIOError, InterruptedError):
                break
            checked = self._check(sock, data, addr, codes)
            if checked is not None:
                batch.append(checked)
        if not batch:
            return
        if codes is AUTH_CODES:
            self._answer_auth(sock, batch)
        else:
            self._queue_accounting(sock, batch)

    def _drop(self, reason: str, addr: tuple, detail: str = "") -> None:
        self.stats["dropped"] += 1
        m().drops.labels(reason).inc()
        self.drops.warning(reason, "dropped packet from %s: %s%s", addr[0], reason, detail)

    def _check(self, sock: socket.socket, data: bytes, addr: tuple, codes: frozenset[int]):
        """Protocol checks, in one place; handlers never see a packet that fails one."""
        problem = check_structure(data, codes)
        if problem:
            return self._drop("malformed", addr, f" ({problem})")
        nas = self.registry.lookup(addr[0])
        if nas is None:
            return self._drop("unknown client", addr)
        key = self.cache.key(addr, data)
        cached = self.cache.get(key)
        if cached is not None:
            if cached is not IN_PROGRESS and cached:
                sock.sendto(cached, addr)  # RFC 5080: the same reply, not reprocessed
            return None
        kind = packet.AuthPacket if codes is AUTH_CODES else packet.AcctPacket
        try:
            pkt = kind(packet=data, secret=nas.secret, dict=self.dictionary)
        except (packet.PacketError, KeyError, ValueError, TypeError, IndexError) as exc:
            return self._drop("undecodable", addr, f" ({type(exc).__name__})")
        if not self._authentic(pkt, nas, codes):
            return None
        if codes is AUTH_CODES and dict.get(pkt, 1) and text(pkt, 1) is None:
            return self._drop("malformed", addr, " (User-Name is not valid UTF-8)")
        self.registry.mark_seen(nas.id)
        if pkt.code == STATUS_SERVER:
            m().status.inc()
            self._send(sock, pkt.CreateReply(), addr, key, keep=False)
            return None
        # In progress from here, before any side effect: a copy later in this same batch (a NAS's
        # retry that waited in the socket buffer beside the original) is ignored like any other.
        self.cache.start(key)
        return pkt, nas, addr, key

    def _authentic(self, pkt: packet.Packet, nas: NasInfo, codes: frozenset[int]) -> bool:
        addr = (nas.ip,)
        has_ma = pkt.message_authenticator
        if has_ma and not pkt.verify_message_authenticator():
            self._drop("bad Message-Authenticator", addr, f" (NAS {nas.name}; wrong secret?)")
            return False
        if pkt.code == STATUS_SERVER or codes is AUTH_CODES:
            if not has_ma and (nas.require_ma or pkt.code == STATUS_SERVER):
                self._drop("no Message-Authenticator", addr, f" (NAS {nas.name}; BlastRADIUS protection)")
                return False
            return True
        if not pkt.VerifyAcctRequest():
            self._drop("bad Request Authenticator", addr, f" (NAS {nas.name}; wrong secret?)")
            return False
        return True

    def _send(self, sock: socket.socket, reply: packet.Packet, addr: tuple, key: tuple, keep: bool = True) -> None:
        self._send_raw(sock, reply.ReplyPacket(), addr, key, keep)

    def _send_raw(self, sock: socket.socket, raw: bytes, addr: tuple, key: tuple, keep: bool = True,
                  whole_window: bool = False) -> None:
        if keep:
            self.cache.store(key, raw, whole_window)
        try:
            sock.sendto(raw, addr)
        except OSError as exc:
            log.warning("reply to %s not sent: %s", addr[0], exc)

    def _answer_auth(self, sock: socket.socket, batch: list) -> None:
        reqs = []
        for pkt, nas, _addr, _key in batch:
            reqs.append(AuthRequest(nas, text(pkt, 1) or "", normalize_mac(text(pkt, 31)), pkt))
        try:
            results = self.authorizer.authorize(reqs, self.clock().astimezone(self.settings.tz))
        except Exception as exc:  # noqa: BLE001 - no reply: the NAS retries or fails over
            log.error("%d Access-Requests not answered: %s: %s", len(batch), type(exc).__name__,
                      str(exc).splitlines()[0][:200] if str(exc) else "")
            for _, _, _, key in batch:
                self.cache.forget(key)
            m().auth_unanswered.inc(len(batch))
            m().backend_errors.labels("redis" if isinstance(exc, redis.RedisError) else "database", "radius").inc()
            return
        for (pkt, nas, addr, key), req, (decision, uid) in zip(batch, reqs, results):
            code = packet.AccessAccept if decision.accept else packet.AccessReject
            # A one-time credential is consumed by its answer: only the cached reply can repeat it.
            self._send_raw(sock, reply_packet(pkt, code, reply_attributes(decision, nas.vendor, uid)), addr, key,
                           whole_window=credentials.is_one_time(req.username))
        self.stats["auth"] += len(batch)
        accepted = sum(decision.accept for decision, _ in results)
        m().auth_accept.inc(accepted)
        m().auth_reject.inc(len(batch) - accepted)
        took = time.monotonic() - self.batch_started
        for _ in batch:
            m().reply_auth.observe(took)

    def _queue_accounting(self, sock: socket.socket, batch: list) -> None:
        now = self.clock()
        items = []
        for pkt, nas, addr, key in batch:
            event = parse_accounting(pkt, nas, self.settings.tz, now)
            if isinstance(event, str):
                self.cache.forget(key)
                self._drop("unusable accounting", addr, f" ({event}; NAS {nas.name})")
                continue
            items.append((event, self._acker(sock, pkt, addr, key)))
        if items:
            self.writer.log_batch(items)    # durable, then acknowledged
        self.stats["acct"] += len(batch)

    def _acker(self, sock: socket.socket, pkt: packet.Packet, addr: tuple, key: tuple):
        started = self.batch_started

        def ack(stored: bool) -> None:
            if stored:
                self._send_raw(sock, reply_packet(pkt, packet.AccountingResponse, []), addr, key)
                m().acct_logged.inc()
                m().reply_acct.observe(time.monotonic() - started)
            else:
                self.cache.forget(key)
                m().acct_refused.inc()
        return ack
