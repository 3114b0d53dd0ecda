"""NAS simulators for the tests: a CoovaChilli (UAM + CHAP) and a MikroTik hotspot (http-chap).

Each is a small HTTP server on 127.0.0.1 (ephemeral port) that behaves towards the browser the way
the real access point does (captive redirect with its own parameters, the login hand-off back) and
towards Conecta the way the real one does (Access-Request and accounting over UDP to the real
`conecta radius`, with Message-Authenticator and the Class of the Accept echoed in accounting; an
RFC 5176 port, `coa_port`, that obeys CoA-Request and Disconnect-Request as the real NAS does).

The browser always connects from 127.0.0.1, so a simulator serves one client at a time: the MAC it
reports is `sim.mac` (change it to play a second device).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

from pyrad import packet
from pyrad.client import Client, Timeout

from tests.support.builders import SECRET
from tests.support.simcoa import Answer, CoaListener

COOVA_UAM_SECRET = "uam-secret-for-tests-4567"
COOVA_NAS = "ap-coova"
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


def chilli_url(portal_url: str, params: list[tuple[str, str]], uam_secret: str | None) -> str:
    """portal_url?params&md=… as Chilli builds it: md = uppercase hex MD5(URL up to '&md=' + uamsecret)."""
    url = portal_url + "?" + urlencode(params)
    if uam_secret is None:
        return url
    return f"{url}&md={hashlib.md5((url + uam_secret).encode()).hexdigest().upper()}"


def octal(raw: bytes) -> str:
    r"""MikroTik's $(chap-id) / $(chap-challenge): every byte as a backslash and three octal digits (\247)."""
    return "".join(f"\\{b:03o}" for b in raw)


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

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        self._reply(*self.sim.handle("GET", parts.path, parse_qs(parts.query), self.path))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("latin-1"))
        parts = urlsplit(self.path)
        self._reply(*self.sim.handle("POST", parts.path, form, self.path))


def _first(q: dict, key: str) -> str:
    return (q.get(key) or [""])[0]


def _redirect(url: str) -> tuple[int, dict, bytes]:
    return 302, {"Location": url, "Content-Type": "text/html"}, b"<a href=''>moved</a>"


def _page(title: str, text: str, status: int = 200) -> tuple[int, dict, bytes]:
    body = (f"<!doctype html><html lang='es'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
            f"<title>{title}</title></head>"
            f"<body><main><h1>{title}</h1><p id='sim'>{text}</p></main></body></html>")
    return status, {"Content-Type": "text/html; charset=utf-8"}, body.encode()


class SimNas:
    """What both simulators share: the HTTP server, the RADIUS client and accounting."""

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
        self.radius = Client(server="127.0.0.1", authport=radius_ports[0], acctport=radius_ports[1],
                             secret=secret.encode(), dict=dictionary, retries=2, timeout=2)
        self.radius.bind((radius_source, 0))      # the source address the NAS is registered with
        self.radius_lock = threading.Lock()
        self.auth_log: list[AuthResult] = []
        self.acct_log: list[tuple[str, int]] = []  # (status, reply code)
        self.sessions: dict[str, SimSession] = {}
        self.requests: list[str] = []              # every path the browser asked for
        self._session_counter = 0
        self.coa = CoaListener(radius_source, secret.encode(), dictionary, self.dynamic_authorization)
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
        """The UDP port of this access point's RFC 5176 listener (register it as the NAS's CoA port)."""
        return self.coa.port

    def close(self) -> None:
        """Stop serving and close the RADIUS and CoA sockets."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.radius._CloseSocket()
        self.coa.close()

    # -- RFC 5176 -----------------------------------------------------------------------------
    def dynamic_authorization(self, req: packet.Packet) -> Answer | None:
        """Answer an authentic CoA- or Disconnect-Request (subclasses: as their NAS does)."""
        raise NotImplementedError

    def find(self, req: packet.Packet) -> list[SimSession]:
        """The sessions a request names: by User-Name, and by Acct-Session-Id when it has one."""
        user = req["User-Name"][0] if "User-Name" in req else None
        sid = req["Acct-Session-Id"][0] if "Acct-Session-Id" in req else None
        return [s for s in list(self.sessions.values())
                if s.username == user and (sid is None or s.session_id.lower() == sid.lower())]

    def end(self, session: SimSession) -> None:
        """End a session on the NAS's own initiative (a Disconnect-Request): Stop, Admin-Reset."""
        self.account("Stop", mac=session.mac, seconds=session.seconds, bytes_in=session.bytes_in,
                     bytes_out=session.bytes_out, cause="Admin-Reset")

    # -- RADIUS -------------------------------------------------------------------------------
    def _send(self, pkt: packet.Packet) -> packet.Packet | None:
        with self.radius_lock:
            try:
                return self.radius.SendPacket(pkt)
            except Timeout:
                return None

    def access_request(self, username: str, mac: str, pap: str | None = None, **attrs) -> AuthResult:
        """Send an Access-Request (with Message-Authenticator) and record the outcome."""
        req = self.radius.CreateAuthPacket(code=packet.AccessRequest, User_Name=username)
        if pap is not None:
            req["User-Password"] = req.PwCrypt(pap)
        req["Calling-Station-Id"] = mac
        req["NAS-Identifier"] = self.nasid
        req["NAS-Port-Type"] = "Wireless-802.11"
        req["Framed-IP-Address"] = self.client_ip
        for key, value in attrs.items():
            req[key.replace("_", "-")] = value
        req.add_message_authenticator()
        reply = self._send(req)
        accepted = reply is not None and reply.code == packet.AccessAccept
        message = reply["Reply-Message"][0] if reply is not None and "Reply-Message" in reply else ""
        result = AuthResult(username, mac, accepted, message,
                            {k: reply[k] for k in reply.keys()} if reply is not None else {})
        self.auth_log.append(result)
        if accepted:
            self._session_counter += 1
            sid = f"{os.getpid() & 0xffff:04x}{self._session_counter:08x}"
            klass = reply["Class"][0] if "Class" in reply else None
            down, up = self.rates(reply)
            self.sessions[mac] = SimSession(mac, username, sid, klass, self.client_ip, reply,
                                            rate_down=down, rate_up=up)
        return result

    def account(self, status: str, mac: str | None = None, seconds: int = 0, bytes_in: int = 0,
                bytes_out: int = 0, cause: str | None = None) -> int | None:
        """Send Start/Interim-Update/Stop for the client's session; return the reply code (None on timeout)."""
        session = self.sessions[mac or self.mac]
        session.seconds, session.bytes_in, session.bytes_out = seconds, bytes_in, bytes_out
        req = self.radius.CreateAcctPacket(User_Name=session.username)
        req["Acct-Status-Type"] = status
        req["Acct-Session-Id"] = session.session_id
        req["Calling-Station-Id"] = session.mac
        req["NAS-Identifier"] = self.nasid
        req["NAS-Port-Type"] = "Wireless-802.11"
        req["Framed-IP-Address"] = session.framed_ip
        req["Acct-Session-Time"] = seconds
        req["Acct-Input-Octets"] = bytes_in % 2**32
        req["Acct-Output-Octets"] = bytes_out % 2**32
        req["Acct-Input-Gigawords"] = bytes_in // 2**32
        req["Acct-Output-Gigawords"] = bytes_out // 2**32
        if cause:
            req["Acct-Terminate-Cause"] = cause
        if session.klass is not None:
            req["Class"] = session.klass
        reply = self._send(req)
        code = reply.code if reply is not None else None
        self.acct_log.append((status, code))
        if code is not None and self.applied is not None:
            self.applied()
        if status == "Stop":
            self.sessions.pop(session.mac, None)
        return code

    def rates(self, pkt: packet.Packet) -> tuple[int | None, int | None]:
        """(down, up) in bit/s from the bandwidth attributes of an Accept or a CoA-Request."""
        raise NotImplementedError

    def accepted(self) -> list[AuthResult]:
        """The Access-Accepts so far."""
        return [a for a in self.auth_log if a.accepted]

    def forget(self, mac: str | None = None) -> None:
        """Drop the client's session without accounting (as after a reboot of the access point)."""
        self.sessions.pop(mac or self.mac, None)

    # -- HTTP -----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, q: dict, raw: str) -> tuple[int, dict, bytes]:
        """One browser request; subclasses route it."""
        raise NotImplementedError


class CoovaSim(SimNas):
    """CoovaChilli: UAM redirect with `md`, `/logon` with CHAP (or PAP) answered over RADIUS."""

    vendor = "coova"

    def __init__(self, *args, uam_secret: str = COOVA_UAM_SECRET, called: str = "00-11-22-33-44-55",
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.uam_secret = uam_secret
        self.called = called
        self.challenges: dict[str, bytes] = {}
        self.logons: list[str] = []   # every /logon URL the browser brought, in order

    def rates(self, pkt: packet.Packet) -> tuple[int | None, int | None]:
        """ChilliSpot-Bandwidth-Max-Down/-Up in kbit/s, else WISPr-Bandwidth-Max-Down/-Up in bit/s."""
        def rate(chilli: str, wispr: str) -> int | None:
            if chilli in pkt:
                return pkt[chilli][0] * 1000
            return pkt[wispr][0] if wispr in pkt else None
        return (rate("ChilliSpot-Bandwidth-Max-Down", "WISPr-Bandwidth-Max-Down"),
                rate("ChilliSpot-Bandwidth-Max-Up", "WISPr-Bandwidth-Max-Up"))

    def dynamic_authorization(self, req: packet.Packet) -> Answer | None:
        """As chilli's cb_radius_coa_ind: User-Name required (else dropped), the session found by it and
        Acct-Session-Id; a CoA applies the bandwidth attributes, a Disconnect ends the session; ACK
        when found, NAK (without Error-Cause) when not; replies carry no Message-Authenticator."""
        if "User-Name" not in req:
            return None
        found = self.find(req)
        for session in found:
            if req.code == packet.CoARequest:
                down, up = self.rates(req)
                session.rate_down, session.rate_up = down or session.rate_down, up or session.rate_up
            else:
                self.end(session)
        return Answer(bool(found), sign=False)

    def portal_redirect(self, res: str, userurl: str, extra: list[tuple[str, str]] | None = None,
                        secret: str | None = None) -> str:
        """The portal URL with Chilli's parameters and md = MD5(URL up to '&md=' + uamsecret), upper hex."""
        challenge = self.challenges.setdefault(self.mac, os.urandom(16))
        session = self.sessions.get(self.mac)
        params = [("res", res), ("uamip", "127.0.0.1"), ("uamport", str(self.port)),
                  ("challenge", challenge.hex()), ("called", self.called)]
        if session is not None:
            params.append(("uid", session.username))
        params += [("mac", self.mac), ("ip", self.client_ip), ("nasid", self.nasid),
                   ("sessionid", session.session_id if session else f"{self.port:08x}0001"),
                   ("userurl", userurl)] + (extra or [])
        return chilli_url(self.portal_url, params, self.uam_secret if secret is None else secret)

    def handle(self, method: str, path: str, q: dict, raw: str) -> tuple[int, dict, bytes]:
        """Captive redirect, /logon, /logoff, and "the Internet" once logged in."""
        self.requests.append(raw)
        if path == "/favicon.ico":
            return 404, {"Content-Type": "text/plain"}, b"no"
        if path == "/logon":
            return self._logon(q, raw)
        if path == "/logoff":
            session = self.sessions.get(self.mac)
            if session is not None:
                self.account("Stop", seconds=session.seconds, bytes_in=session.bytes_in,
                             bytes_out=session.bytes_out, cause="User-Request")
            return _redirect(self.portal_redirect("logoff", ""))
        if self.mac in self.sessions:
            return _page("Noticias", "En línea: la página que pediste.")
        # Chilli keeps a client's challenge for `challengetimeout` (600 s): the same one on every redirect.
        return _redirect(self.portal_redirect("notyet", self.base + raw))

    def _logon(self, q: dict, raw: str) -> tuple[int, dict, bytes]:
        self.logons.append(raw)
        username, userurl = _first(q, "username"), _first(q, "userurl")
        if self.mac in self.sessions:
            return _redirect(self.portal_redirect("already", userurl))
        challenge = self.challenges.get(self.mac)
        if challenge is None or not username:
            return _redirect(self.portal_redirect("failed", userurl))
        chap_challenge = hashlib.md5(challenge + self.uam_secret.encode()).digest() if self.uam_secret else challenge
        if _first(q, "response"):
            try:
                response = bytes.fromhex(_first(q, "response"))
            except ValueError:
                return _redirect(self.portal_redirect("failed", userurl))
            result = self.access_request(username, self.mac, CHAP_Challenge=chap_challenge,
                                         CHAP_Password=b"\x00" + response)
        else:  # PAP: password = hex(password XOR C')
            try:
                hidden = bytes.fromhex(_first(q, "password"))
            except ValueError:
                return _redirect(self.portal_redirect("failed", userurl))
            key = (chap_challenge * (len(hidden) // 16 + 1))[:len(hidden)]
            password = bytes(a ^ b for a, b in zip(hidden, key)).rstrip(b"\x00")
            result = self.access_request(username, self.mac, pap=password.decode("utf-8", "replace"))
        if not result.accepted:
            return _redirect(self.portal_redirect("failed", userurl, [("reply", result.reply_message)]))
        return _redirect(self.portal_redirect("success", userurl))


class MikrotikSim(SimNas):
    """MikroTik hotspot with an external login page: octal chap-id/chap-challenge, POST to /login."""

    vendor = "mikrotik"

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("mac", "AA:BB:CC:40:50:60")
        super().__init__(*args, **kwargs)
        self.chap: dict[str, tuple[bytes, bytes]] = {}
        self.posts: list[dict[str, str]] = []
        self.refuse_coa: int | None = None   # a router that takes no rate change: NAK with this Error-Cause

    def rates(self, pkt: packet.Packet) -> tuple[int | None, int | None]:
        """Mikrotik-Rate-Limit "rx/tx" as the router sees it: rx is the client's upload, tx its download."""
        if "Mikrotik-Rate-Limit" not in pkt:
            return None, None
        rx, tx = (int(part.removesuffix("k")) * 1000 for part in pkt["Mikrotik-Rate-Limit"][0].split("/"))
        return tx, rx

    def dynamic_authorization(self, req: packet.Packet) -> Answer | None:
        """As RouterOS's `/radius incoming`: User-Name required (NAK 402 Missing-Attribute), an unknown
        session is NAK 503 Session-Context-Not-Found, a bad Rate-Limit NAK 407 Invalid-Attribute-Value;
        a CoA changes the session's rate, a Disconnect ends it; replies are signed."""
        if "User-Name" not in req:
            return Answer(False, {"Error-Cause": 402})
        found = self.find(req)
        if not found:
            return Answer(False, {"Error-Cause": 503})
        if req.code == packet.CoARequest and self.refuse_coa is not None:
            return Answer(False, {"Error-Cause": self.refuse_coa})
        for session in found:
            if req.code == packet.DisconnectRequest:
                self.end(session)
                continue
            try:
                session.rate_down, session.rate_up = self.rates(req)
            except ValueError:
                return Answer(False, {"Error-Cause": 407})
        return Answer(True)

    def login_redirect(self, dst: str, error: str = "") -> str:
        """What the router's login.html forwards to the external portal (a fresh CHAP id and challenge)."""
        chap_id, challenge = os.urandom(1), os.urandom(16)
        self.chap[self.mac] = (chap_id, challenge)
        params = [("mac", self.mac), ("ip", self.client_ip), ("username", ""),
                  ("link-login-only", f"{self.base}/login"), ("link-orig", dst),
                  ("chap-id", octal(chap_id)), ("chap-challenge", octal(challenge))]
        if error:
            params.append(("error", error))
        return self.portal_url + "?" + urlencode(params)

    def handle(self, method: str, path: str, q: dict, raw: str) -> tuple[int, dict, bytes]:
        """Captive redirect via /login, the POSTed login, /logout, and "the Internet"."""
        self.requests.append(raw)
        if path == "/favicon.ico":
            return 404, {"Content-Type": "text/plain"}, b"no"
        if path == "/login" and method == "POST":
            return self._login(q)
        if path == "/login":
            return _redirect(self.login_redirect(_first(q, "dst")))
        if path == "/logout":
            session = self.sessions.get(self.mac)
            if session is not None:
                self.account("Stop", seconds=session.seconds, bytes_in=session.bytes_in,
                             bytes_out=session.bytes_out, cause="User-Request")
            return _page("Desconectado", "Sesión terminada.")
        if self.mac in self.sessions:
            return _page("Noticias", "En línea: la página que pediste.")
        return _redirect(f"{self.base}/login?" + urlencode({"dst": self.base + raw}))

    def _login(self, form: dict) -> tuple[int, dict, bytes]:
        fields = {k: _first(form, k) for k in form}
        self.posts.append(fields)
        username, password, dst = fields.get("username", ""), fields.get("password", ""), fields.get("dst", "")
        chap = self.chap.get(self.mac)
        if chap is not None and len(password) == 32:
            try:
                digest = bytes.fromhex(password)
            except ValueError:
                digest = b""
            chap_id, challenge = chap
            result = self.access_request(username, self.mac, CHAP_Password=chap_id + digest,
                                         CHAP_Challenge=challenge)
        else:
            result = self.access_request(username, self.mac, pap=password)
        self.chap.pop(self.mac, None)       # a challenge is good for one login attempt
        if not result.accepted:
            return _redirect(self.login_redirect(dst, error=result.reply_message or "login failed"))
        return _redirect(dst or self.portal_url + "status")


def register_sim_nas(db_factory, policies, communities: str = "Centro\nSan José\nEjido El Mirador") -> dict[str, int]:
    """Site "Parque Central" (parque policy) with a Coova NAS at 127.0.0.2 (uam secret) and a MikroTik
    at 127.0.0.1: the browser reaches the portal from 127.0.0.1, so the MikroTik is also identified by
    the source address. Return {vendor: nas id}."""
    from portal.core import sites
    from portal.core.model import Site
    with db_factory() as db:
        site = sites.add_site(db, policies, "Parque Central", "park", "parque", planned_gb_month=100)
        site.communities = communities
        coova, _ = sites.add_nas(db, sites.NasSpec(COOVA_NAS, "Parque Central", "127.0.0.2", SECRET, "coova",
                                                   uam_secret=COOVA_UAM_SECRET), production=False)
        mikrotik, _ = sites.add_nas(db, sites.NasSpec(MIKROTIK_NAS, "Parque Central", "127.0.0.1", SECRET,
                                                      "mikrotik"), production=False)
        db.commit()
        assert db.get(Site, site.id).communities
        return {"coova": coova.id, "mikrotik": mikrotik.id}


def use_coa_port(db_factory, sim: SimNas, nas_name: str) -> SimNas:
    """Register the simulator's RFC 5176 port as the CoA port of its NAS; return the simulator."""
    from sqlalchemy import update

    from portal.core.model import Nas
    with db_factory.begin() as db:
        db.execute(update(Nas).where(Nas.name == nas_name).values(coa_port=sim.coa_port))
    return sim
