"""NAS simulators for the tests: what they share, and the access points they play registered in
Conecta. The CoovaChilli is tests/support/chilli.py, the MikroTik hotspot tests/support/mikrotik.py.

Each is a small HTTP server on 127.0.0.1 (ephemeral port) that behaves towards the browser the way
the real access point does (captive redirect with its own parameters, the login hand-off back) and
towards Conecta the way the real one does (Access-Request and accounting over UDP to the real
`conecta radius`, with the Class of the Accept echoed in accounting, Disconnect-Requests answered).

The browser always connects from 127.0.0.1, so a simulator serves one client at a time: the MAC it
reports is `sim.mac` (change it to play a second device).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from pyrad import packet

from tests.support.builders import SECRET
from tests.support.radiusport import RadiusPort

COOVA_UAM_SECRET = "uam-secret-for-tests-4567"
COOVA_NAS = "ap-coova"          # its name in Conecta
COOVA_NASID = "nas01"           # what it calls itself (HS_NASID; chilli's default is nas01)
MIKROTIK_NAS = "ap-mikrotik"


@dataclass
class SimSession:
    """A client the access point let through."""

    mac: str
    username: str
    session_id: str
    klass: bytes | None
    framed_ip: str
    reply: packet.Packet
    seconds: int = 0
    bytes_in: int = 0     # from the client (upload)
    bytes_out: int = 0    # to the client (download)


@dataclass
class AuthResult:
    """One Access-Request the simulator sent, and what came back."""

    username: str
    mac: str
    accepted: bool
    reply_message: str = ""
    attributes: dict = field(default_factory=dict)
    source_port: int = 0


class _Handler(BaseHTTPRequestHandler):
    sim: SimNas

    def log_message(self, *_args) -> None:  # quiet
        return

    def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, answer: tuple[int, dict[str, str], bytes] | None) -> None:
        if answer is None:        # the access point closes the connection without an HTTP answer
            self.close_connection = True
            return
        self._reply(*answer)

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        self._answer(self.sim.handle("GET", parts.path, parse_qs(parts.query, keep_blank_values=True), self.path))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("latin-1"))
        parts = urlsplit(self.path)
        self._answer(self.sim.handle("POST", parts.path, form, self.path))


def first(q: dict, key: str) -> str:
    """The first value of a query or form parameter, or ''."""
    return (q.get(key) or [""])[0]


def redirect(url: str) -> tuple[int, dict, bytes]:
    """A 302 to `url`."""
    return 302, {"Location": url, "Content-Type": "text/html"}, b"<a href=''>moved</a>"


def html_page(title: str, text: str, status: int = 200) -> tuple[int, dict, bytes]:
    """A small page of the access point or of "the Internet"."""
    body = (f"<!doctype html><html lang='es'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>{title}</title></head>"
            f"<body><main><h1>{title}</h1><p id='sim'>{text}</p></main></body></html>")
    return status, {"Content-Type": "text/html; charset=utf-8"}, body.encode()


class SimNas:
    """What both simulators share: the HTTP server, the RADIUS socket and accounting."""

    vendor = ""

    def __init__(self, radius_ports: tuple[int, int], dictionary, portal_url: str, nasid: str,
                 radius_source: str = "127.0.0.1", mac: str = "AA-BB-CC-10-20-30",
                 client_ip: str = "127.0.0.1", secret: str = SECRET,
                 applied: Callable[[], None] | None = None) -> None:
        self.portal_url = portal_url.rstrip("/") + "/"
        self.nasid = nasid
        self.mac = mac
        self.client_ip = client_ip
        # Called after each acknowledged accounting request: the RADIUS server acknowledges once the
        # record is logged and applies it to SQL and Redis a moment later; tests wait for that.
        self.applied = applied
        self.dictionary, self.secret, self.radius_source = dictionary, secret, radius_source
        self.server = ("127.0.0.1", radius_ports)
        self.radius = RadiusPort(radius_source, self.server, secret, dictionary, self.coa_request)
        self.auth_log: list[AuthResult] = []
        self.acct_log: list[tuple[str, int]] = []  # (status, reply code)
        self.sessions: dict[str, SimSession] = {}
        self.requests: list[str] = []              # every path the browser asked for
        self._session_counter = 0
        handler = type("Handler", (_Handler,), {"sim": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        """The simulator's HTTP port."""
        return self.httpd.server_address[1]

    @property
    def base(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://127.0.0.1:{self.port}"

    def origin(self, path: str = "/noticias") -> str:
        """A page on "the Internet" behind this access point: captive until the client logs in."""
        return self.base + path

    def close(self) -> None:
        """Stop serving and close the RADIUS socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.radius.close()

    # -- RADIUS -------------------------------------------------------------------------------
    def new_session_id(self, mac: str) -> str:
        """The Acct-Session-Id of the client's next session."""
        self._session_counter += 1
        return f"{os.getpid() & 0xffff:04x}{self._session_counter:08x}"

    def nas_attributes(self, req: packet.Packet) -> None:
        """What this NAS puts in every request about itself."""
        req["NAS-Identifier"] = self.nasid
        req["NAS-Port-Type"] = "Wireless-802.11"

    def access_request(self, username: str, mac: str, pap: str | None = None, port: RadiusPort | None = None,
                       **attrs) -> AuthResult:
        """Send an Access-Request (with Message-Authenticator) and record the outcome."""
        port = port or self.radius
        req = port.auth_packet(User_Name=username)
        if pap is not None:
            req["User-Password"] = req.PwCrypt(pap)
        req["Calling-Station-Id"] = mac
        self.nas_attributes(req)
        req["Framed-IP-Address"] = self.client_ip
        for key, value in attrs.items():
            req[key.replace("_", "-")] = value
        req.add_message_authenticator()
        reply = port.send(req)
        accepted = reply is not None and reply.code == packet.AccessAccept
        message = reply["Reply-Message"][0] if reply is not None and "Reply-Message" in reply else ""
        result = AuthResult(username, mac, accepted, message,
                            {k: reply[k] for k in reply.keys()} if reply is not None else {}, port.port)
        self.auth_log.append(result)
        if accepted:
            klass = reply["Class"][0] if "Class" in reply else None
            self.sessions[mac] = SimSession(mac, username, self.new_session_id(mac), klass, self.client_ip, reply)
        return result

    def octets(self, req: packet.Packet, upload: int, download: int) -> None:
        """RFC 2866: Acct-Input-Octets are what the NAS received from the client (its upload)."""
        req["Acct-Input-Octets"], req["Acct-Input-Gigawords"] = upload % 2**32, upload // 2**32
        req["Acct-Output-Octets"], req["Acct-Output-Gigawords"] = download % 2**32, download // 2**32

    def account(self, status: str, mac: str | None = None, seconds: int = 0, bytes_in: int = 0,
                bytes_out: int = 0, cause: str | None = None) -> int | None:
        """Send Start/Interim-Update/Stop for the client's session (bytes_in: the client's upload,
        bytes_out: its download); return the reply code (None on timeout)."""
        session = self.sessions[mac or self.mac]
        session.seconds, session.bytes_in, session.bytes_out = seconds, bytes_in, bytes_out
        req = self.radius.acct_packet(User_Name=session.username)
        req["Acct-Status-Type"] = status
        req["Acct-Session-Id"] = session.session_id
        req["Calling-Station-Id"] = session.mac
        self.nas_attributes(req)
        req["Framed-IP-Address"] = session.framed_ip
        req["Acct-Session-Time"] = seconds
        self.octets(req, bytes_in, bytes_out)
        if cause:
            req["Acct-Terminate-Cause"] = cause
        if session.klass is not None:
            req["Class"] = session.klass
        reply = self.radius.send(req)
        code = reply.code if reply is not None else None
        self.acct_log.append((status, code))
        if code is not None and self.applied is not None:
            self.applied()
        if status == "Stop":
            self.session_ended(session)
        return code

    def session_ended(self, session: SimSession) -> None:
        """After the Stop: the client is captive again."""
        self.sessions.pop(session.mac, None)

    def coa_request(self, data: bytes, addr: tuple) -> None:
        """A Disconnect-Request from Conecta: answer NAK (subclasses that support it override)."""
        req = packet.CoAPacket(packet=data, secret=self.secret.encode(), dict=self.dictionary)
        reply = req.CreateReply()
        reply.code = packet.DisconnectNAK
        self.radius.reply(reply.ReplyPacket(), addr)

    def accepted(self) -> list[AuthResult]:
        """The Access-Accepts so far."""
        return [a for a in self.auth_log if a.accepted]

    def forget(self, mac: str | None = None) -> None:
        """Drop the client's session without accounting (as after a reboot of the access point)."""
        self.sessions.pop(mac or self.mac, None)

    # -- HTTP -----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, q: dict, raw: str) -> tuple[int, dict, bytes] | None:
        """One browser request (None: no answer); subclasses route it."""
        raise NotImplementedError


def register_sim_nas(db_factory, policies, communities: str = "Centro\nSan José\nEjido El Mirador") -> dict[str, int]:
    """Site "Parque Central" (parque policy) with a Coova NAS at 127.0.0.2 (uam secret; it calls itself
    COOVA_NASID) and a MikroTik at 127.0.0.1: the browser reaches the portal from 127.0.0.1, so the
    MikroTik is also identified by the source address. Return {vendor: nas id}."""
    from portal.core import sites
    from portal.core.model import Site
    with db_factory() as db:
        site = sites.add_site(db, policies, "Parque Central", "park", "parque", planned_gb_month=100)
        site.communities = communities
        coova, _ = sites.add_nas(db, sites.NasSpec(COOVA_NAS, "Parque Central", "127.0.0.2", SECRET, "coova",
                                                   uam_secret=COOVA_UAM_SECRET, nas_identifier=COOVA_NASID),
                                 production=False)
        mikrotik, _ = sites.add_nas(db, sites.NasSpec(MIKROTIK_NAS, "Parque Central", "127.0.0.1", SECRET,
                                                      "mikrotik"), production=False)
        db.commit()
        assert db.get(Site, site.id).communities
        return {"coova": coova.id, "mikrotik": mikrotik.id}


def point_coa_port(db_factory, nas_name: str, port: int) -> None:
    """Send the NAS's Disconnect-Requests to the simulator's port (an ephemeral one, known only once
    the simulator runs)."""
    from sqlalchemy import update

    from portal.core.model import Nas
    with db_factory() as db:
        db.execute(update(Nas).where(Nas.name == nas_name).values(coa_port=port))
        db.commit()
