"""Where a citizen comes from: the access point's redirect parameters, checked, and the hand-off back.

Pure functions (no Flask): parse_arrival() reads CoovaChilli UAM, MikroTik hotspot, pfSense/OPNsense
and generic redirects (openNDS FAS: portal/core/opennds.py); handoff() says how to give the NAS a one-time credential.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode, urlsplit

from portal.core.macs import normalize_mac

MAX_URL = 512
HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                      r"[A-Za-z0-9])?)*")


class ArrivalError(ValueError):
    """The redirect cannot be trusted or understood; the message is for the log, not the citizen."""


@dataclass(frozen=True)
class NasView:
    """What the portal needs of a registered NAS."""

    id: int
    name: str
    ip: str
    vendor: str
    site_id: int
    uam_secret: str | None
    login_hosts: tuple[str, ...] = ()
    identifier: str | None = None       # the NAS-Identifier registered for it
    fas_level: int | None = None        # openNDS: fas_secure_enabled
    faskey: str | None = None           # openNDS


@dataclass
class Arrival:
    """A checked redirect: which NAS, which client, and how to log it in."""

    vendor: str
    nas_id: int
    site_id: int
    mac: str | None = None
    ip: str | None = None
    userurl: str | None = None
    login_url: str | None = None        # coova: http://uamip:uamport ; others: where to post
    challenge: str | None = None        # coova: hex; mikrotik: hex of the raw challenge
    chap_id: str | None = None          # mikrotik: hex of the raw id
    logout_url: str | None = None
    extra: dict = field(default_factory=dict)
    result: str | None = None           # coova: the `res` of the redirect (notyet, success, logoff, …)

    def to_dict(self) -> dict:
        """For the session cookie."""
        return asdict(self)


def safe_url(value: str | None) -> str | None:
    """An http(s) URL of sane length without control characters, else None (no javascript:)."""
    if not value or len(value) > MAX_URL or any(ord(c) < 33 or c in "<>\"'`" for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return value


def _host_allowed(host: str | None, nas: NasView, signed: bool = False) -> bool:
    """Credentials only go to the NAS's own address or a login host the operator registered for it
    (`conecta nas set NAME --login-hosts …`): an unsigned redirect could name any other host. A signed
    one (CoovaChilli's md) may also name a private address: its hotspot address, which it vouches for."""
    if not host:
        return False
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() in nas.login_hosts
    if str(addr) == nas.ip or str(addr) in nas.login_hosts:
        return True
    return signed and (addr.is_private or addr.is_loopback or addr.is_link_local)


def login_url(value: str | None, nas: NasView, signed: bool = False) -> str:
    """The URL the hand-off goes to; `signed`: the NAS vouched for it (CoovaChilli's md)."""
    url = safe_url(value)
    if url is None or not _host_allowed(urlsplit(url).hostname, nas, signed):
        raise ArrivalError("login URL missing, malformed or on a host not registered for the access point")
    return url


def allowed_destination(url: str | None, hosts: tuple[str, ...]) -> bool:
    """True when `url` is on one of `hosts` (or a subdomain): only there is a citizen sent after logging in."""
    host = (urlsplit(url).hostname or "") if url else ""
    return bool(host) and any(host == h or host.endswith("." + h) for h in hosts)


def _host(value: str) -> str:
    """An IP address or a DNS name, nothing else (no path, port, user or scheme smuggled in)."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if HOSTNAME.fullmatch(value):
        return value.lower()
    raise ArrivalError("gateway address malformed")


def client_ip(value: str | None) -> str | None:
    """The client's address when it is one, else None."""
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def _mac(value: str | None) -> str:
    """The client's MAC, required: one-time credentials are bound to it."""
    mac = normalize_mac(value)
    if mac is None:
        raise ArrivalError("client MAC missing or malformed")
    return mac


def _octal_or_hex(value: str) -> bytes:
    """MikroTik writes $(chap-id) and $(chap-challenge) with octal escapes like \\247; hex also accepted."""
    if re.fullmatch(r"(\\[0-7]{3})+", value):
        return bytes(int(value[i + 1:i + 4], 8) for i in range(0, len(value), 4))
    if re.fullmatch(r"([0-9a-fA-F]{2})+", value):
        return bytes.fromhex(value)
    raise ArrivalError("chap-id/chap-challenge not in MikroTik's format")


def verify_md(url_before_md: str, md: str, uam_secret: str) -> bool:
    """CoovaChilli's md: uppercase hex MD5 (the protocol's choice) of the URL up to '&md=' + uamsecret."""
    expected = hashlib.md5((url_before_md + uam_secret).encode(), usedforsecurity=False).hexdigest().upper()
    return hmac.compare_digest(expected, md.upper())


Lookup = Callable[[str | None, str | None], NasView | None]
# Each `res` of CoovaChilli has its own parameters (redir.c): notyet, logoff and failed carry the
# client's challenge; success (uid, timeleft) and already answer a logon and carry none.
COOVA_RESULTS = ("notyet", "success", "already", "logoff", "failed")
COOVA_ONLINE = ("success", "already")


def _coova(args: Mapping[str, str], nas: NasView, raw_urls: list[str]) -> Arrival:
    uamip, uamport, challenge = args.get("uamip", ""), args.get("uamport", ""), args.get("challenge", "")
    res = args.get("res", "")
    if not re.fullmatch(r"[0-9]{1,5}", uamport) or not 0 < int(uamport) < 65536:
        raise ArrivalError("CoovaChilli uamport missing or malformed")
    if (challenge or res not in COOVA_ONLINE) and not re.fullmatch(r"[0-9a-fA-F]{32}", challenge):
        raise ArrivalError(f"CoovaChilli challenge missing or malformed (res={res if res in COOVA_RESULTS else '?'})")
    if nas.uam_secret:
        md = args.get("md", "")
        befores = [u.split("&md=", 1)[0] for u in raw_urls if "&md=" in u]
        if not md or not any(verify_md(b, md, nas.uam_secret) for b in befores):
            raise ArrivalError("CoovaChilli md missing or wrong")
    host = _host(uamip)
    # With a uam secret the md above proves the NAS wrote uamip (its hotspot address, not its uplink).
    base = login_url(f"http://{f'[{host}]' if ':' in host else host}:{int(uamport)}/", nas,
                      signed=bool(nas.uam_secret)).rstrip("/")
    return Arrival("coova", nas.id, nas.site_id, _mac(args.get("mac")), client_ip(args.get("ip")),
                   safe_url(args.get("userurl")), base, challenge.lower() or None, logout_url=f"{base}/logoff",
                   result=res if res in COOVA_RESULTS else None)


def _mikrotik_logout(args: Mapping[str, str], login_url: str, nas: NasView) -> str | None:
    """$(link-logout) when the login page forwards it, else the router's /logout next to /login."""
    given = args.get("link-logout")
    if given:
        url = safe_url(given)
        return url if url and _host_allowed(urlsplit(url).hostname, nas) else None
    parts = urlsplit(login_url)
    return f"{parts.scheme}://{parts.netloc}/logout"


def _mikrotik(args: Mapping[str, str], nas: NasView) -> Arrival:
    url = login_url(args.get("link-login-only"), nas)
    chap_id, challenge = args.get("chap-id", ""), args.get("chap-challenge", "")
    arrival = Arrival("mikrotik", nas.id, nas.site_id, _mac(args.get("mac")), client_ip(args.get("ip")),
                      safe_url(args.get("link-orig")), url, logout_url=_mikrotik_logout(args, url, nas))
    if chap_id or challenge:
        arrival.chap_id, arrival.challenge = _octal_or_hex(chap_id).hex(), _octal_or_hex(challenge).hex()
    return arrival


def _pfsense(args: Mapping[str, str], nas: NasView) -> Arrival:
    zone = args.get("zone", "")
    if not re.fullmatch(r"[a-z0-9_]{1,32}", zone):
        raise ArrivalError("pfSense zone malformed")
    url = login_url(f"http://{nas.ip}:8002/index.php?zone={zone}", nas)
    return Arrival("pfsense", nas.id, nas.site_id, normalize_mac(args.get("mac")), client_ip(args.get("ip")),
                   safe_url(args.get("redirurl")), url, extra={"zone": zone})


def _generic(args: Mapping[str, str], nas: NasView) -> Arrival:
    return Arrival(nas.vendor, nas.id, nas.site_id, normalize_mac(args.get("mac")), client_ip(args.get("ip")),
                   safe_url(args.get("userurl") or args.get("dst")), login_url(args.get("login_url"), nas))


def _identify(args: Mapping[str, str], lookup: Lookup, source: str | None) -> NasView:
    """The NAS by the name it gives (nasid / gatewayname / nas), else by the address of its login
    page, else by the address the browser comes from (a NAS that NATs its clients)."""
    name = args.get("nasid") or args.get("gatewayname") or args.get("nas")
    host = None
    for key in ("uamip", "link-login-only", "gatewayaddress", "login_url"):
        if args.get(key):
            value = args[key]
            try:
                host = urlsplit(value).hostname if "//" in value else value.rsplit(":", 1)[0]
            except ValueError:
                host = None
            break
    nas = lookup(name[:80], None) if name else None
    if nas is None and host:
        nas = lookup(None, host[:255])
    if nas is None and source:
        nas = lookup(None, source)
    if nas is None:
        raise ArrivalError("access point not registered")
    return nas


def parse_arrival(args: Mapping[str, str], lookup: Lookup, raw_urls: list[str], source: str | None = None) -> Arrival:
    """Identify the NAS and check the parameters its vendor sends; raise ArrivalError when they
    cannot be trusted. The registered vendor decides: a CoovaChilli with a uam secret always needs `md`,
    whatever parameters a forged link carries."""
    nas = _identify(args, lookup, source)
    if nas.vendor == "coova":
        return _coova(args, nas, raw_urls)
    if nas.vendor == "mikrotik":
        return _mikrotik(args, nas)
    if nas.vendor == "opennds":   # its redirects carry fas or authaction (portal/core/opennds.py)
        raise ArrivalError("openNDS redirect without fas or authaction")
    if nas.vendor == "pfsense":
        return _pfsense(args, nas)
    return _generic(args, nas)


@dataclass(frozen=True)
class HandOff:
    """How the browser hands the credential to the NAS: a redirect (GET) or a form it posts."""

    method: str            # "GET" (redirect to url) or "POST" (form to url with fields)
    url: str
    fields: dict[str, str] = field(default_factory=dict)


def handoff(arrival: Arrival, username: str, password: str, uam_secret: str | None, onward: str = "") -> HandOff:
    """The NAS-specific way to log in with a one-time credential; `onward` is where the NAS sends the
    browser afterwards (CoovaChilli sends it back to the portal, with the page it had asked for)."""
    dst = onward
    if arrival.vendor == "coova":
        dst = arrival.userurl or ""
        challenge = bytes.fromhex(arrival.challenge or "")
        if uam_secret:
            challenge = hashlib.md5(challenge + uam_secret.encode(), usedforsecurity=False).digest()
        response = hashlib.md5(b"\x00" + password.encode() + challenge, usedforsecurity=False).hexdigest()
        query = urlencode({"username": username, "response": response, "userurl": dst})
        return HandOff("GET", f"{arrival.login_url}/logon?{query}")
    if arrival.vendor == "mikrotik":
        secret = password
        if arrival.chap_id is not None:
            raw = bytes.fromhex(arrival.chap_id) + password.encode() + bytes.fromhex(arrival.challenge or "")
            secret = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        return HandOff("POST", arrival.login_url, {"username": username, "password": secret, "dst": dst,
                                                   "popup": "false"})
    if arrival.vendor == "pfsense":
        return HandOff("POST", arrival.login_url, {"auth_user": username, "auth_pass": password,
                                                   "redirurl": dst, "zone": arrival.extra["zone"],
                                                   "accept": "Continue"})
    return HandOff("POST", arrival.login_url, {"username": username, "password": password, "dst": dst})
