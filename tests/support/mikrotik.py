"""A MikroTik hotspot simulator with an external login page (http-chap): octal chap-id and
chap-challenge, the login POSTed back to the router; Mikrotik-Rate-Limit in the Accept and in
CoA-Requests, which arrive on a port of their own (`/radius incoming`) and are answered as RouterOS
does (signed, NAK with Error-Cause)."""

from __future__ import annotations

import os
from urllib.parse import urlencode

from pyrad import packet

from tests.support.simbase import SimNas, first, html_page, redirect
from tests.support.simcoa import Answer


def octal(raw: bytes) -> str:
    r"""MikroTik's $(chap-id) / $(chap-challenge): every byte as a backslash and three octal digits (\247)."""
    return "".join(f"\\{b:03o}" for b in raw)


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
            return html_page("Desconectado", "Sesión terminada.")
        if self.mac in self.sessions:
            return html_page("Noticias", "En línea: la página que pediste.")
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
