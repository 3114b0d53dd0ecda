"""Checks of access point fields that only some vendors have: the hosts of a login page (portal
hand-offs go nowhere else) and an openNDS gateway's FAS level and faskey."""

from __future__ import annotations

import ipaddress
import re

from policies.messages import N_, gettext
from portal.core.errors import InputError

HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
FAS_LEVELS = (0, 1, 2, 3)
FASKEY = re.compile(r"[A-Za-z0-9]{8,32}")


def check_login_hosts(value: str | None) -> str | None:
    """The hosts (IP addresses or DNS names, comma- or space-separated) where an access point's login page
    may be, besides its own IP; normalised, or InputError."""
    hosts = []
    for item in (value or "").replace(",", " ").split():
        try:
            hosts.append(str(ipaddress.ip_address(item)))
        except ValueError:
            if not HOST_NAME.fullmatch(item.lower()):
                raise InputError(N_("%(host)r no es una dirección IP ni un nombre de host"), host=item[:80]) from None
            hosts.append(item.lower())
    joined = ",".join(dict.fromkeys(hosts))
    if len(joined) > 255:
        raise InputError(N_("las direcciones de la página de acceso suman más de 255 caracteres"))
    return joined or None


def check_fas(vendor: str, level: int | None, faskey: str | None, production: bool) -> list[str]:
    """An openNDS gateway needs its FAS level and faskey (the caller checks the key as a secret); level 0
    (the token in clear) only when asked for, and never in production. Other vendors take neither."""
    if vendor != "opennds":
        if level is not None or faskey:
            raise InputError(N_("--fas-level y --faskey son solo para pasarelas openNDS (--vendor opennds)"))
        return []
    if level not in FAS_LEVELS:
        raise InputError(N_("una pasarela openNDS necesita --fas-level 1, 2 o 3 (su fas_secure_enabled; 0 solo "
                            "si se pide expresamente, nunca en producción)"))
    if not faskey or not FASKEY.fullmatch(faskey):
        raise InputError(N_("una pasarela openNDS necesita --faskey: de 8 a 32 letras y cifras, igual que su "
                            "faskey (también firma los informes de uso de la pasarela)"))
    if level == 0:
        if production:
            raise InputError(N_("el nivel FAS 0 envía en claro la ficha del cliente; no se acepta en producción "
                                "(usa 2 o 3)"))
        return [gettext("el nivel FAS 0 envía en claro la ficha del cliente: úsalo solo para una prueba (no se "
                        "acepta en producción)")]
    return []
