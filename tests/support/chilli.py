"""A CoovaChilli simulator that behaves like the real chilli 1.8/1.9 (read from its redir.c and chilli.c
and seen on a real access point):

- each redirect to the portal has the parameter set of its `res`: notyet, logoff and failed carry
  a `challenge`; success (with `uid` and `timeleft`) and already carry none; failed after an
  Access-Reject is `res=failed&reason=reject` with the Reply-Message as `reply`; all end with `md`;
- Acct-Input-Octets are what it sent TO the client (its download) unless `swapoctets` (HS_SWAPOCTETS);
- Acct-Session-Id is the Unix second it was made and the client's unit ("%.8lld%.8x"), made when
  the client appears and again when a session ends: with `clock` standing still, the next session
  gets the same id (forced reuse);
- accounting and MAC authentication leave from its CoA port, where Disconnect- and CoA-Requests
  arrive (cb_radius_coa_ind: dropped without User-Name; the sessions found by User-Name and, when
  given, Acct-Session-Id; a CoA applies the bandwidth attributes, a Disconnect ends the session with
  its Stop; ACK when found, NAK without Error-Cause when not; replies without Message-Authenticator);
  portal logons from a random port; NAS-IP-Address is the hotspot address, not the address the
  packets come from;
- 1.9 (the default) sends the first redirect with an empty `userurl=` and closes /logon without an
  HTTP answer on Access-Reject; 1.8 redirects with res=failed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from pyrad import packet

from tests.support.nassim import COOVA_UAM_SECRET
from tests.support.radiusport import RadiusPort
from tests.support.simbase import SimNas, SimSession, first, html_page, redirect
from tests.support.simcoa import Answer

HOTSPOT_IP = "127.0.0.1"    # HS_UAMLISTEN: the browser reaches chilli here; also its NAS-IP-Address


def chilli_url(portal_url: str, params: list[tuple[str, str]], uam_secret: str | None) -> str:
    """portal_url?params&md=… as Chilli builds it: md = uppercase hex MD5(URL up to '&md=' + uamsecret)."""
    url = portal_url + "?" + urlencode(params)
    if uam_secret is None:
        return url
    return f"{url}&md={hashlib.md5((url + uam_secret).encode()).hexdigest().upper()}"


@dataclass
class Conn:
    """Chilli's state for one client (its app_conn): unit, session id, the URL it wanted."""

    unit: int
    session_id: str
    userurl: str = ""
    redirected: bool = False


class CoovaSim(SimNas):
    """CoovaChilli: UAM redirects with `md`, `/logon` with CHAP (or PAP) answered over RADIUS."""

    vendor = "coova"
    coa_on_radius_port = True     # HS_COAPORT: also where accounting and MAC authentication leave from

    def __init__(self, *args, uam_secret: str = COOVA_UAM_SECRET, called: str = "00-11-22-33-44-55",
                 version: str = "1.9", swapoctets: bool = False, clock: Callable[[], float] = time.time,
                 **kwargs) -> None:
        self.clock = clock
        self.conns: dict[str, Conn] = {}
        self.challenges: dict[str, bytes] = {}   # per client MAC (a test may hand one to another MAC)
        super().__init__(*args, **kwargs)
        self.uam_secret = uam_secret
        self.called = called
        self.version = version
        self.swapoctets = swapoctets
        self.logons: list[str] = []   # every /logon URL the browser brought, in order
        self.last_acct: packet.Packet | None = None   # the last Accounting-Request, as sent

    def conn(self, mac: str | None = None) -> Conn:
        """The client's state, made when it first appears (DHCP)."""
        mac = mac or self.mac
        if mac not in self.conns:
            unit = len(self.conns) + 1
            self.conns[mac] = Conn(unit, self._session_id(unit))
        return self.conns[mac]

    def _session_id(self, unit: int) -> str:
        return f"{int(self.clock()):08d}{unit:08x}"

    # -- RADIUS -------------------------------------------------------------------------------
    def new_session_id(self, mac: str) -> str:
        """The id chilli made for this client before it logged in."""
        return self.conn(mac).session_id

    def session_ended(self, session: SimSession) -> None:
        """Chilli makes the client's next session id when one ends (set_sessionid)."""
        super().session_ended(session)
        conn = self.conn(session.mac)
        conn.session_id = self._session_id(conn.unit)

    def nas_attributes(self, req: packet.Packet) -> None:
        """NAS-IP-Address is the hotspot address (HS_UAMLISTEN), not the uplink the packets leave from."""
        super().nas_attributes(req)
        req["NAS-IP-Address"] = HOTSPOT_IP
        req["Called-Station-Id"] = self.called

    def octets(self, req: packet.Packet, upload: int, download: int) -> None:
        """Chilli counts what it sends to the client as input, unless HS_SWAPOCTETS=on."""
        self.last_acct = req
        if self.swapoctets:
            super().octets(req, upload, download)
        else:
            super().octets(req, download, upload)

    def rates(self, pkt: packet.Packet) -> tuple[int | None, int | None]:
        """ChilliSpot-Bandwidth-Max-Down/-Up in kbit/s, else WISPr-Bandwidth-Max-Down/-Up in bit/s."""
        def rate(chilli: str, wispr: str) -> int | None:
            if chilli in pkt:
                return pkt[chilli][0] * 1000
            return pkt[wispr][0] if wispr in pkt else None
        return (rate("ChilliSpot-Bandwidth-Max-Down", "WISPr-Bandwidth-Max-Down"),
                rate("ChilliSpot-Bandwidth-Max-Up", "WISPr-Bandwidth-Max-Up"))

    def dynamic_authorization(self, req: packet.Packet) -> Answer | None:
        """As chilli's cb_radius_coa_ind: User-Name required (else dropped), the sessions found by it and
        Acct-Session-Id; a CoA applies the bandwidth attributes, a Disconnect ends the session (its Stop
        goes out before the ACK); ACK when found, NAK (without Error-Cause) when not; replies carry no
        Message-Authenticator."""
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

    def dhcp_capport_uri(self, template: str) -> str:
        """captiveportalapi_uri as chilli 1.9 expands it in the client's DHCP lease."""
        conn = self.conn()
        raw = bytes.fromhex(self.mac.replace("-", "").replace(":", ""))
        values = {"m": ":".join(f"{b:02x}" for b in raw), "M": raw.hex().upper(), "i": self.client_ip,
                  "n": quote(self.nasid, safe=""), "s": conn.session_id, "t": str(int(self.clock()))}
        for key, value in values.items():
            template = template.replace("%{" + key + "}", value)
        return template

    # -- HTTP -----------------------------------------------------------------------------------
    def portal_redirect(self, res: str, userurl: str, reply: str | None = None, reason: str | None = None,
                        secret: str | None = None) -> str:
        """The portal URL with the parameters chilli sends for `res`, in its order, and md."""
        conn, session = self.conn(), self.sessions.get(self.mac)
        params = [("res", res)] + ([("reason", reason)] if reason else [])
        params += [("uamip", HOTSPOT_IP), ("uamport", str(self.port))]
        if res in ("notyet", "logoff", "failed"):
            # kept for challengetimeout (600 s): the same on every redirect
            params.append(("challenge", self.challenges.setdefault(self.mac, os.urandom(16)).hex()))
        params.append(("called", self.called))
        if res == "success" and session is not None:
            params.append(("uid", session.username))
            timeout = session.reply["Session-Timeout"][0] if "Session-Timeout" in session.reply else 0
            if timeout:
                params.append(("timeleft", str(timeout)))
        params += [("mac", self.mac), ("ip", self.client_ip)]
        if reply:
            params.append(("reply", reply))
        params += [("nasid", self.nasid), ("sessionid", conn.session_id), ("userurl", userurl)]
        return chilli_url(self.portal_url, params, self.uam_secret if secret is None else secret)

    def handle(self, method: str, path: str, q: dict, raw: str) -> tuple[int, dict, bytes] | None:
        """Captive redirect, /logon, /logoff, and "the Internet" once logged in."""
        self.requests.append(raw)
        if path == "/favicon.ico":
            return 404, {"Content-Type": "text/plain"}, b"no"
        conn = self.conn()
        if path == "/logon":
            return self._logon(q, raw)
        if path == "/logoff":
            session = self.sessions.get(self.mac)
            if session is not None:
                self.account("Stop", seconds=session.seconds, bytes_in=session.bytes_in,
                             bytes_out=session.bytes_out, cause="User-Request")
            return redirect(self.portal_redirect("logoff", conn.userurl))
        if self.mac in self.sessions:
            return html_page("Noticias", "En línea: la página que pediste.")
        # 1.9 issues the challenge in the main daemon, whose copy has no userurl yet on the first redirect.
        userurl = "" if self.version == "1.9" and not conn.redirected else self.base + raw
        conn.redirected, conn.userurl = True, self.base + raw
        return redirect(self.portal_redirect("notyet", userurl))

    def _logon(self, q: dict, raw: str) -> tuple[int, dict, bytes] | None:
        self.logons.append(raw)
        conn = self.conn()
        username = first(q, "username")
        if "userurl" in q:        # taken as given, also when empty (redir.c)
            conn.userurl = first(q, "userurl")
        if self.mac in self.sessions:
            return redirect(self.portal_redirect("already", conn.userurl))
        challenge = self.challenges.get(self.mac)
        result = self._authenticate(username, q, challenge) if challenge and username else None
        if result is None:
            return redirect(self.portal_redirect("failed", conn.userurl, reason="other"))
        if not result.accepted:
            if self.version == "1.9":
                return None     # the connection is closed without an answer
            return redirect(self.portal_redirect("failed", conn.userurl, result.reply_message, reason="reject"))
        return redirect(self.portal_redirect("success", conn.userurl))

    def _authenticate(self, username: str, q: dict, challenge: bytes):  # noqa: ANN202 - AuthResult | None
        """The Access-Request of a portal logon, from a port of its own (chilli forks for it)."""
        chap_challenge = hashlib.md5(challenge + self.uam_secret.encode()).digest() if self.uam_secret else challenge
        port = RadiusPort(self.radius_source, self.server, self.secret, self.dictionary)
        sid = self.conn().session_id
        try:
            if first(q, "response"):
                try:
                    response = bytes.fromhex(first(q, "response"))
                except ValueError:
                    return None
                return self.access_request(username, self.mac, port=port, CHAP_Challenge=chap_challenge,
                                           CHAP_Password=b"\x00" + response, Acct_Session_Id=sid)
            try:   # PAP: password = hex(password XOR C')
                hidden = bytes.fromhex(first(q, "password"))
            except ValueError:
                return None
            key = (chap_challenge * (len(hidden) // 16 + 1))[:len(hidden)]
            password = bytes(a ^ b for a, b in zip(hidden, key)).rstrip(b"\x00")
            return self.access_request(username, self.mac, pap=password.decode("utf-8", "replace"), port=port,
                                       Acct_Session_Id=sid)
        finally:
            port.close()

