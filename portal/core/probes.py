"""How the monitor checks that an access point answers: `icmp`, `tcp:PORT`, `http:URL` or `none`.

A probe only ever reaches the NAS's own address: a URL naming another IP is refused here, and a
URL naming a host is resolved by the monitor at probe time and used only when it resolves to the NAS.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from policies.messages import N_
from portal.core.errors import InputError, printable
from portal.core.model import Nas

PROBE_HELP = "icmp (echo to the NAS IP, the default) | tcp:PORT | http:URL (http:// or https://) | none"
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


@dataclass(frozen=True)
class ProbeSpec:
    """A parsed probe: kind icmp, tcp, http or none; `port` for tcp, `url` for http."""

    kind: str
    port: int | None = None
    url: str | None = None

    def __str__(self) -> str:
        """The canonical text, as stored in `nas.probe`."""
        if self.kind == "tcp":
            return f"tcp:{self.port}"
        if self.kind == "http":
            return f"http:{self.url}"
        return self.kind

    @property
    def host(self) -> str | None:
        """The host of an http probe's URL (an IP or a name)."""
        return urlsplit(self.url).hostname if self.url else None


def parse_probe(text: str, nas_ip: str) -> ProbeSpec:
    """Read `icmp`, `tcp:PORT`, `http:URL` (or a bare http(s) URL) or `none`; InputError when bad."""
    text = (text or "").strip()
    if not printable(text) or len(text) > 250 or any(c.isspace() for c in text):
        raise InputError(N_("una sonda tiene como mucho 250 caracteres, sin espacios ni caracteres de control"))
    lowered = text.lower()
    if lowered in ("icmp", "none"):
        return ProbeSpec(lowered)
    if lowered.startswith("tcp:"):
        port = text[4:]
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise InputError(N_("sonda tcp: %(port)r no es un número de puerto"), port=port)
        return ProbeSpec("tcp", port=int(port))
    url = text[5:] if lowered.startswith("http:") and not lowered.startswith("http://") else text
    if url.lower().startswith(("http://", "https://")):
        return ProbeSpec("http", url=_check_url(url, nas_ip))
    raise InputError(N_("sonda desconocida %(text)r (usa icmp | tcp:PUERTO | http:URL | none)"), text=text)


def _check_url(url: str, nas_ip: str) -> str:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InputError(N_("sonda http: %(url)r no es una URL"), url=url) from None
    host = parts.hostname or ""
    if port is not None and not 1 <= port <= 65535:
        raise InputError(N_("sonda http: %(port)s no es un número de puerto"), port=port)
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        if not HOST.fullmatch(host):
            raise InputError(N_("sonda http: %(url)r no nombra ningún host"), url=url) from None
        return url
    if address != nas_ip:
        raise InputError(N_("sonda http: %(address)s no es la dirección de este NAS (%(ip)s); las sondas solo "
                            "llegan al NAS"), address=address, ip=nas_ip)
    return url


def set_probe(db: DbSession, nas_name: str, text: str) -> bool:
    """Set a NAS's probe; True when it changed. The caller commits."""
    nas = db.scalar(select(Nas).where(Nas.name == nas_name))
    if nas is None:
        raise InputError(N_("no existe el NAS %(name)r"), name=nas_name[:80])
    probe = str(parse_probe(text, nas.ip))
    changed = nas.probe != probe
    nas.probe = probe
    db.flush()
    return changed
