"""`conecta simulate`: many access points and citizens through the real RADIUS path, for demos.

An in-process RADIUS server runs on ephemeral ports with a clock the simulator moves, so a month
of evenings in the park (diurnal pattern, a realistic gender and age mix, sessions with interim
updates) lands in the database exactly as real access points would put it there. The access points
also answer CoA- and Disconnect-Requests (radius/simdesk.py): a visit slowed down carries on at its
new rate, one cut off ends there.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pyrad import packet
from pyrad.client import Client
from sqlalchemy import select, update

from portal.core import sites
from portal.core.model import Nas, Site, User
from portal.core.radiusdict import dictionary
from radius.server import RadiusServer
from radius.simdesk import CoaDesk, accept_rate

SITES = [("Parque Independencia", "park", "parque"), ("Plaza de la Constitución", "plaza", "parque"),
         ("Ejido Lázaro Cárdenas", "ejido", "ejido"), ("Centro Digital Puerto México", "digital-center",
                                                       "centro-digital"),
         ("Malecón Costero", "park", "parque"), ("Ejido Francisco Villa", "ejido", "ejido")]
GENDER_MIX = [("female", 51), ("male", 45), ("nonbinary", 1), ("undisclosed", 3)]
AGE_MIX = [("0-17", 12), ("18-29", 34), ("30-44", 27), ("45-59", 17), ("60+", 7), ("undisclosed", 3)]
COMMUNITIES = ["Centro", "Colonia Obrera", "Puerto México", "Lázaro Cárdenas", "Francisco Villa"]
HOUR_WEIGHTS = [1, 0, 0, 0, 0, 1, 2, 4, 5, 5, 5, 6, 7, 7, 6, 6, 7, 9, 12, 14, 13, 10, 6, 3]


@dataclass
class Visit:
    """One session of one person at one access point."""

    start: datetime
    username: str
    password: str
    mac: str
    nas: int
    minutes: int
    mbytes: int


def _pick(rng: random.Random, mix: list[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in mix], weights=[w for _, w in mix])[0]


def setup_fleet(db, policies: dict, people: int, rng: random.Random) -> tuple[list[tuple[str, str]], dict]:  # noqa: ANN001
    """Create the simulated sites, one NAS per site on 127.0.1.x, and the people; return people and NAS secrets."""
    secrets_by_ip = {}
    for i, (name, kind, policy) in enumerate(SITES, start=1):
        site = db.scalar(select(Site).where(Site.name == name)) or sites.add_site(
            db, policies, name, kind, policy, planned_gb_month=rng.choice([20, 50, 100]))
        ip = f"127.0.1.{i}"
        nas = db.scalar(select(Nas).where(Nas.ip == ip))
        if nas is None:
            nas, _ = sites.add_nas(db, sites.NasSpec(f"sim-ap-{i}", site.name, ip, secrets.token_hex(16), "coova"),
                                   production=False)
        secrets_by_ip[ip] = nas.secret
    accounts = []
    existing = set(db.scalars(select(User.username).where(User.username.like("sim-%"))))
    for n in range(people):
        username, password = f"sim-{n:05d}", f"clave-{n:05d}"
        if username not in existing:
            db.add(User(username=username, password=password, gender=_pick(rng, GENDER_MIX),
                        age_band=_pick(rng, AGE_MIX), community=rng.choice(COMMUNITIES), source="sim"))
        accounts.append((username, password))
    db.commit()
    return accounts, secrets_by_ip


def plan(accounts: list[tuple[str, str]], days: int, today: datetime, rng: random.Random) -> list[Visit]:
    """Visits over the last `days` local days: each person comes on some evenings, some mornings."""
    visits = []
    for n, (username, password) in enumerate(accounts):
        home = rng.randrange(len(SITES)) + 1
        mac = "02-00-" + "-".join(f"{b:02X}" for b in n.to_bytes(4, "big"))
        for day in range(days, 0, -1):
            if rng.random() > 0.35:
                continue
            hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
            start = (today - timedelta(days=day)).replace(hour=hour, minute=rng.randrange(60), second=0)
            nas = home if rng.random() < 0.8 else rng.randrange(len(SITES)) + 1
            visits.append(Visit(start, username, password, mac, nas, rng.randint(5, 55), rng.randint(5, 300)))
    return sorted(visits, key=lambda v: v.start)


class Player:
    """Sends each visit's Access-Request, Start, interims and Stop from its NAS address."""

    def __init__(self, server, dictionary, secrets_by_ip: dict[str, str], clock,  # noqa: ANN001
                 desk: CoaDesk) -> None:
        auth, acct = server.ports
        self.clock = clock
        self.desk = desk
        self.clients = {}
        for ip, secret in secrets_by_ip.items():
            client = Client(server="127.0.0.1", authport=auth, acctport=acct, secret=secret.encode(),
                            dict=dictionary)
            client.bind((ip, 0))
            client.timeout, client.retries = 3, 3
            self.clients[int(ip.rsplit(".", 1)[1])] = client

    def play(self, visit: Visit) -> bool:
        """Run one visit at its own simulated time; False if it was rejected."""
        client = self.clients[visit.nas]
        self.clock.now = visit.start.astimezone(timezone.utc)
        req = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=visit.username)
        req["User-Password"] = req.PwCrypt(visit.password)
        req["Calling-Station-Id"] = visit.mac
        req.add_message_authenticator()
        reply = client.SendPacket(req)
        if reply.code != packet.AccessAccept:
            return False
        sid = secrets.token_hex(6)
        state = self.desk.start_session(sid, accept_rate(reply))
        steps = [("Start", 0)] + [("Interim-Update", m) for m in range(5, visit.minutes, 5)] + [("Stop", visit.minutes)]
        sent, last = 0.0, 0
        for status, minute in steps:
            if state.ended:     # a Disconnect-Request came: the access point ends the session now
                self._account(client, visit, reply, sid, "Stop", last, sent, "Admin-Reset")
                break
            # The bytes the visit wants by now, no more than its rate allowed since the last update.
            allowed = sent + state.down * (minute - last) * 60 / 8 if state.down else float("inf")
            sent, last = max(sent, min(visit.mbytes * 10**6 * minute / visit.minutes, allowed)), minute
            self._account(client, visit, reply, sid, status, minute, sent)
        self.desk.end_session(sid)
        return True

    def _account(self, client: Client, visit: Visit, reply: packet.Packet, sid: str, status: str, minute: int,
                 total: float, cause: str | None = None) -> None:
        self.clock.now = visit.start.astimezone(timezone.utc) + timedelta(minutes=minute)
        acct = client.CreateAcctPacket(User_Name=visit.username)
        acct["Acct-Status-Type"], acct["Acct-Session-Id"] = status, sid
        acct["Acct-Session-Time"] = minute * 60
        # Like CoovaChilli out of the box: Input is what it sent to the client (90 % of the traffic).
        acct["Acct-Input-Octets"] = int(total * 0.9) % 2**32
        acct["Acct-Output-Octets"] = int(total * 0.1) % 2**32
        acct["Calling-Station-Id"] = visit.mac
        acct["Class"] = reply["Class"][0]
        if cause:
            acct["Acct-Terminate-Cause"] = cause
        client.SendPacket(acct)


def run(settings, policies: dict, db_factory, redis_client, people: int, days: int, seed: int,  # noqa: ANN001
        progress: Callable[[int], None], total: Callable[[int], None], today: datetime | None = None,
        skip: int = 0) -> tuple[int, int]:
    """Simulate; return (visits played, visits rejected by policy). With the `today` and `skip` of an
    interrupted run, the same plan is played from where it stopped."""
    with db_factory() as db:
        accounts, secrets_by_ip = setup_fleet(db, policies, people, random.Random(seed))
    # Its own generator: the plan must not depend on how many people the fleet had to create.
    visits = plan(accounts, days, today or datetime.now(settings.tz), random.Random(f"plan-{seed}"))
    total(len(visits))
    clock = _Clock()
    desk = CoaDesk(secrets_by_ip, dictionary())
    desk.start()
    ports = _use_coa_ports(db_factory, desk.ports)
    server = RadiusServer(settings, policies, db_factory, redis_client, auth_port=0, acct_port=0, clock=clock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rejected = 0
    try:
        player = Player(server, dictionary(), secrets_by_ip, clock, desk)
        for visit in visits[skip:]:
            rejected += not player.play(visit)
            progress(1)
    finally:
        server.running = False
        thread.join(5)
        server.shutdown()
        desk.stop()
        _use_coa_ports(db_factory, ports)
    return len(visits) - skip, rejected


def _use_coa_ports(db_factory, ports: dict[str, int]) -> dict[str, int]:  # noqa: ANN001
    """Point the simulated NAS at these CoA ports (by IP); return the ports they had."""
    with db_factory.begin() as db:
        before = dict(db.execute(select(Nas.ip, Nas.coa_port).where(Nas.ip.in_(list(ports)))).all())
        for ip, port in ports.items():
            db.execute(update(Nas).where(Nas.ip == ip).values(coa_port=port))
    return before


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now
