"""What the simulated access points share (tests/support/chilli.py, tests/support/mikrotik.py): the HTTP
server the browser talks to, the RADIUS socket (tests/support/radiusport.py) with Message-Authenticator
and the Class of the Accept echoed in accounting, and the RFC 5176 side (tests/support/simcoa.py).

Each is a small HTTP server on 127.0.0.1 (ephemeral port) that behaves towards the browser the way
the real access point does (captive redirect with its own parameters, the login hand-off back) and
towards Conecta the way the real one does (Access-Request and accounting over UDP to the real
`conecta radius`; a CoA port, `coa_port`, that obeys CoA-Request and Disconnect-Request as the real
NAS does).

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
from tests.support.simcoa import Answer, CoaListener


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
    rate_down: int | None = None   # bit/s the access point lets the client have now
    rate_up: int | None = None


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
    """What both simulators share: the HTTP server, the RADIUS socket, accounting and RFC 5176."""

    vendor = ""
    # Whether Disconnect-/CoA-Requests arrive on the socket the RADIUS requests leave from (CoovaChilli's
    # HS_COAPORT) rather than on a port of their own (MikroTik's `/radius incoming`).
    coa_on_radius_port = False

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
        self.auth_log: list[AuthResult] = []
        self.acct_log: list[tuple[str, int]] = []  # (status, reply code)
        self.sessions: dict[str, SimSession] = {}
        self.requests: list[str] = []              # every path the browser asked for
        self.disconnected: list[str] = []          # Acct-Session-Ids ended by a Disconnect-Request
        self._session_counter = 0
        self.coa = CoaListener(secret.encode(), dictionary, self.dynamic_authorization)
        self.radius = RadiusPort(radius_source, self.server, secret, dictionary,
                                 self.coa.receive if self.coa_on_radius_port else None)
        self.coa.listen(self.radius if self.coa_on_radius_port else
                        RadiusPort(radius_source, self.server, secret, dictionary, self.coa.receive),
                        own=not self.coa_on_radius_port)
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

    @property
    def coa_port(self) -> int:
        """The UDP port where this access point takes RFC 5176 requests (register it as the NAS's CoA port)."""
        return self.coa.port

    def close(self) -> None:
        """Stop serving and close the RADIUS and CoA sockets."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.coa.close()
        self.radius.close()

    # -- RFC 5176 -----------------------------------------------------------------------------
    def dynamic_authorization(self, req: packet.Packet) -> Answer | None:
        """Answer an authentic CoA- or Disconnect-Request (subclasses: as their NAS does)."""
        raise NotImplementedError

    def find(self, req: packet.Packet) -> list[SimSession]:
        """The sessions a request names: by User-Name, and by Acct-Session-Id (any case) when it has one."""
        user = req["User-Name"][0] if "User-Name" in req else None
        sid = req["Acct-Session-Id"][0] if "Acct-Session-Id" in req else None
        return [s for s in list(self.sessions.values())
                if s.username == user and (sid is None or s.session_id.lower() == sid.lower())]

    def end(self, session: SimSession) -> None:
        """End a session on the NAS's own initiative (a Disconnect-Request): Stop, Admin-Reset."""
        self.disconnected.append(session.session_id)
        self.account("Stop", mac=session.mac, seconds=session.seconds, bytes_in=session.bytes_in,
                     bytes_out=session.bytes_out, cause="Admin-Reset")

    def rates(self, pkt: packet.Packet) -> tuple[int | None, int | None]:
        """(down, up) in bit/s from the bandwidth attributes of an Accept or a CoA-Request."""
        raise NotImplementedError

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
            down, up = self.rates(reply)
            self.sessions[mac] = SimSession(mac, username, self.new_session_id(mac), klass, self.client_ip, reply,
                                            rate_down=down, rate_up=up)
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
