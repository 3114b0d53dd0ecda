"""openNDS's FAS interface as openNDS 9.10 really speaks it (checked against Debian's openNDS in
network namespaces, tests/test_opennds_real.py).

- Level 0: `?authaction=http://GW:2050/opennds_auth/?clientip=…&gatewayname=…&tok=…&redir=…` (the
  gateway does not encode the inner query, so its parameters arrive as the portal's own); the return
  is the authaction URL with the clear `tok`.
- Level 1: `?fas=<base64>` of a comma-space list `hid=…, clientip=…, clientmac=…, gatewayname=…,
  gatewayaddress=…, originurl=…, …` with URL-encoded values and `(null)` junk at the end; the
  return is `http://gatewayaddress/opennds_auth/?tok=<hex sha256(hid + faskey)>`.
- Levels 2 and 3: `?fas=…&iv=<16 characters>`: the same list (with authdir) AES-256-CBC encrypted with
  the faskey padded with NUL bytes to 32 bytes, the IV's characters as raw bytes, base64 twice. Level 3
  is not handed back by the browser: openNDS's authmon fetches the list of clients to let in
  (portal/core/authmon.py).

The gateway only lets a client in once its BinAuth script has asked Conecta (auth_client, see
portal/core/ndsreport.py): openNDS takes any token of 8 characters or fewer as the clear token at
every level, and hid is the sha256 of a 32-bit token, so the return URL alone proves little.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlencode, urlsplit

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from portal.core.arrival import Arrival, ArrivalError, NasView, client_ip, login_url, safe_url
from portal.core.macs import normalize_mac

NODE_SUFFIX = re.compile(r"\s+Node:[0-9A-Fa-f]{12}\s*$")   # enable_serial_number_suffix (default on)
HEX64 = re.compile(r"[0-9a-f]{64}")
TOKEN = re.compile(r"[0-9A-Za-z]{4,64}")
MAX_FAS = 4096
Lookup = Callable[[str | None, str | None], NasView | None]


def gateway_name(value: str) -> str:
    """The GatewayName as configured: openNDS appends ` Node:<its MAC> ` unless told not to."""
    return NODE_SUFFIX.sub("", value).strip()


def fas_fields(text: str) -> dict[str, str]:
    """openNDS's `name=value, name=value` list, values URL-decoded; the `(null)` junk is dropped."""
    fields = {}
    for item in text.split(", "):
        name, sep, value = item.partition("=")
        if sep and re.fullmatch(r"[a-z_]{2,20}", name) and value != "(null)":
            fields[name] = unquote(value)
            if name == "gatewayname":   # as sent: authmon's gatewayhash is the sha256 of this spelling
                fields["gatewayname_sent"] = value
    return fields


def decrypt(fas: str, iv: str, faskey: str) -> str:
    """Levels 2 and 3: the list inside `fas`; ArrivalError when it does not decrypt with this faskey."""
    if len(iv) != 16 or len(fas) > MAX_FAS:
        raise ArrivalError("openNDS iv or fas malformed")
    try:
        data = base64.b64decode(base64.b64decode(fas, validate=True), validate=True)
        decryptor = Cipher(algorithms.AES(faskey.encode().ljust(32, b"\0")), modes.CBC(iv.encode())).decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(padded) + unpadder.finalize()).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ArrivalError("openNDS fas does not decrypt with the registered faskey") from None


def rhid(hid: str, faskey: str) -> str:
    """The token the gateway expects back at levels 1-3: hex sha256 of hid + faskey."""
    return hashlib.sha256((hid + faskey).encode()).hexdigest()


def hid_of(token: str) -> str:
    """hid as openNDS makes it from a client's clear token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _level0(args: Mapping[str, str], lookup: Lookup) -> Arrival:
    """`authaction` with clientip, gatewayname, tok and redir beside it."""
    nas = _registered(lookup, args.get("gatewayname", ""), 0)
    tok = args.get("tok", "")
    if not TOKEN.fullmatch(tok):
        raise ArrivalError("openNDS tok malformed")
    action = urlsplit(args.get("authaction", ""))
    if action.scheme != "http" or not re.fullmatch(r"/[A-Za-z0-9_-]{1,32}/", action.path or ""):
        raise ArrivalError("openNDS authaction malformed")
    url = login_url(f"http://{action.netloc}{action.path}", nas)
    ip = action.query.removeprefix("clientip=") if action.query.startswith("clientip=") else args.get("clientip")
    return Arrival("opennds", nas.id, nas.site_id, None, client_ip(ip), safe_url(args.get("redir")), url,
                   extra={"level": 0, "hid": hid_of(tok), "tok": tok})


def _registered(lookup: Lookup, raw_name: str, level: int) -> NasView:
    """The openNDS NAS this gateway name belongs to, registered at this level."""
    name = gateway_name(raw_name)[:80]
    nas = lookup(name, None) if name else None
    if nas is None or nas.vendor != "opennds":
        raise ArrivalError("openNDS gateway not registered")
    if nas.fas_level != level:
        raise ArrivalError(f"openNDS redirect of level {level} from a gateway registered at level "
                           f"{nas.fas_level if nas.fas_level is not None else 'none (nas set --fas-level)'}")
    return nas


def _from_fields(fields: dict[str, str], nas: NasView, level: int) -> Arrival:
    hid, mac = fields.get("hid", ""), normalize_mac(fields.get("clientmac"))
    if not HEX64.fullmatch(hid) or mac is None:
        raise ArrivalError("openNDS hid or clientmac missing or malformed")
    authdir = fields.get("authdir", "opennds_auth")
    gateway = fields.get("gatewayaddress", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", authdir) or not re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,64}", gateway):
        raise ArrivalError("openNDS gatewayaddress or authdir malformed")
    # Levels 2 and 3 arrive encrypted with the faskey: the gateway vouches for its address.
    url = login_url(f"http://{gateway}/{authdir}/", nas, signed=level >= 2)
    extra = {"level": level, "hid": hid, "tok": rhid(hid, nas.faskey or "")}
    if level == 3:   # its authmon presents sha256 of this name (portal/core/ndsgrants.py)
        extra["gateway"] = fields.get("gatewayname_sent", "")[:160]
    return Arrival("opennds", nas.id, nas.site_id, mac, client_ip(fields.get("clientip")),
                   safe_url(fields.get("originurl")), url, extra=extra)


def _level1(fas: str, lookup: Lookup) -> Arrival:
    try:
        text = base64.b64decode(fas[:MAX_FAS], validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ArrivalError("openNDS fas is not base64") from None
    fields = fas_fields(text)
    nas = _registered(lookup, fields.get("gatewayname", ""), 1)
    return _from_fields(fields, nas, 1)


def _encrypted(fas: str, iv: str, lookup: Lookup, source: str | None,
               keyed: Callable[[], list[NasView]]) -> Arrival:
    """Levels 2 and 3: the gateway is known only once a faskey decrypts the list; the NAS the browser
    comes through (a gateway that NATs its clients) is tried first."""
    first = lookup(None, source) if source else None
    candidates = [first, *(nas for nas in keyed() if first is None or nas.id != first.id)]
    for nas in candidates:
        if nas is None or nas.vendor != "opennds" or nas.fas_level not in (2, 3) or not nas.faskey:
            continue
        try:
            fields = fas_fields(decrypt(fas, iv, nas.faskey))
        except ArrivalError:
            continue
        if gateway_name(fields.get("gatewayname", "")) in (nas.name, nas.identifier):
            return _from_fields(fields, nas, nas.fas_level)
    raise ArrivalError("openNDS fas does not decrypt with the faskey of any gateway registered at level 2 or 3")


def parse(args: Mapping[str, str], lookup: Lookup, source: str | None,
          keyed: Callable[[], list[NasView]]) -> Arrival:
    """An openNDS redirect of any level; ArrivalError when it cannot be trusted."""
    if "authaction" in args:
        return _level0(args, lookup)
    if "iv" in args:
        return _encrypted(args.get("fas", ""), args["iv"], lookup, source, keyed)
    return _level1(args.get("fas", ""), lookup)


def handoff_url(arrival: Arrival, onward: str) -> str:
    """Where the browser goes back to the gateway (levels 0-2): its auth URL with the token, and `onward`,
    where the gateway sends the browser after letting it in."""
    query = urlencode({"tok": arrival.extra["tok"], "redir": onward})
    return f"{arrival.login_url}?{query}"

