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
from urllib.parse import urlencode

from pyrad import packet

from tests.support.builders import SECRET
from tests.support.simbase import SimNas, first, page, redirect
from tests.support.simcoa import Answer

COOVA_UAM_SECRET = "uam-secret-for-tests-4567"
COOVA_NAS = "ap-coova"
MIKROTIK_NAS = "ap-mikrotik"


def chilli_url(portal_url: str, params: list[tuple[str, str]], uam_secret: str | None) -> str:
    """portal_url?params&md=… as Chilli builds it: md = uppercase hex MD5(URL up to '&md=' + uamsecret)."""
    url = portal_url + "?" + urlencode(params)
    if uam_secret is None:
        return url
    return f"{url}&md={hashlib.md5((url + uam_secret).encode()).hexdigest().upper()}"


def octal(raw: bytes) -> str:
    r"""MikroTik's $(chap-id) / $(chap-challenge): every byte as a backslash and three octal digits (\247)."""
    return "".join(f"\\{b:03o}" for b in raw)


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
            return redirect(self.portal_redirect("logoff", ""))
        if self.mac in self.sessions:
            return page("Noticias", "En línea: la página que pediste.")
        # Chilli keeps a client's challenge for `challengetimeout` (600 s): the same one on every redirect.
        return redirect(self.portal_redirect("notyet", self.base + raw))

    def _logon(self, q: dict, raw: str) -> tuple[int, dict, bytes]:
        self.logons.append(raw)
        username, userurl = first(q, "username"), first(q, "userurl")
        if self.mac in self.sessions:
            return redirect(self.portal_redirect("already", userurl))
        challenge = self.challenges.get(self.mac)
        if challenge is None or not username:
            return redirect(self.portal_redirect("failed", userurl))
        chap_challenge = hashlib.md5(challenge + self.uam_secret.encode()).digest() if self.uam_secret else challenge
        if first(q, "response"):
            try:
                response = bytes.fromhex(first(q, "response"))
            except ValueError:
                return redirect(self.portal_redirect("failed", userurl))
            result = self.access_request(username, self.mac, CHAP_Challenge=chap_challenge,
                                         CHAP_Password=b"\x00" + response)
        else:  # PAP: password = hex(password XOR C')
            try:
                hidden = bytes.fromhex(first(q, "password"))
            except ValueError:
                return redirect(self.portal_redirect("failed", userurl))
            key = (chap_challenge * (len(hidden) // 16 + 1))[:len(hidden)]
            password = bytes(a ^ b for a, b in zip(hidden, key)).rstrip(b"\x00")
            result = self.access_request(username, self.mac, pap=password.decode("utf-8", "replace"))
        if not result.accepted:
            return redirect(self.portal_redirect("failed", userurl, [("reply", result.reply_message)]))
        return redirect(self.portal_redirect("success", userurl))


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
            return redirect(self.login_redirect(first(q, "dst")))
        if path == "/logout":
            session = self.sessions.get(self.mac)
            if session is not None:
                self.account("Stop", seconds=session.seconds, bytes_in=session.bytes_in,
                             bytes_out=session.bytes_out, cause="User-Request")
            return page("Desconectado", "Sesión terminada.")
        if self.mac in self.sessions:
            return page("Noticias", "En línea: la página que pediste.")
        return redirect(f"{self.base}/login?" + urlencode({"dst": self.base + raw}))

    def _login(self, form: dict) -> tuple[int, dict, bytes]:
        fields = {k: first(form, k) for k in form}
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
            return redirect(self.login_redirect(dst, error=result.reply_message or "login failed"))
        return redirect(dst or self.portal_url + "status")


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
