"""A MikroTik hotspot simulator with an external login page (http-chap): octal chap-id and
chap-challenge, the login POSTed back to the router."""

from __future__ import annotations

import os
from urllib.parse import urlencode

from tests.support.nassim import SimNas, first, html_page, redirect


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
