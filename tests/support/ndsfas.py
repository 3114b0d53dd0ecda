"""openNDS 9.10's FAS redirects and BinAuth reports, byte for byte as the real gateway makes them
(captured from Debian's openNDS in tests/test_opennds_real.py): for the portal's own tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.support.portal import PORTAL

NDS_NAME = "ap-opennds"
NDS_IP = "10.9.0.3"
FASKEY = "Lab0ratorioFas16"
CLIENT_MAC = "b6:99:df:e3:cf:a0"
CLIENT_IP = "10.77.0.62"
GATEWAY = "10.77.0.1:2050"
SUFFIX = " Node:7ece04e30a2f "     # enable_serial_number_suffix


def nds_quote(value: str) -> str:
    """URL-encoding as openNDS writes it: every reserved byte escaped, hex in lower case."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(value, safe="-_.~"))


def token() -> str:
    """A client token as openNDS makes them: 8 hex digits."""
    return os.urandom(4).hex()


def fas_list(tok: str, name: str = NDS_NAME, mac: str = CLIENT_MAC, authdir: bool = True) -> str:
    """The comma-space list of levels 1-3 (authdir from level 2 on), with openNDS's (null) junk."""
    items = [f"hid={hashlib.sha256(tok.encode()).hexdigest()}", f"clientip={CLIENT_IP}", f"clientmac={mac}",
             "client_type=cpd_can", f"gatewayname={nds_quote(name + SUFFIX)}", "gatewayurl=http%3a%2f%2f10.77.0.1",
             "version=9.10.0", f"gatewayaddress={GATEWAY}", "gatewaymac=7ece04e30a2f"]
    if authdir:
        items.append("authdir=opennds_auth")
    items += ["originurl=http%3a%2f%2fexample.org%2f", "clientif=ndslan", "themespec=(null)",
              "(null)(null)(null)(null)"]
    return ", ".join(items)


def level0_url(tok: str, name: str = NDS_NAME) -> str:
    """Level 0: the inner query of authaction is not encoded, so its parameters are the portal's own."""
    return (f"{PORTAL}?authaction=http://{GATEWAY}/opennds_auth/?clientip={CLIENT_IP}&gatewayname="
            f"{nds_quote(name + SUFFIX)}&tok={tok}&redir=http%3a%2f%2fexample.org%2f")


def level1_url(tok: str, **kw) -> str:
    """Level 1: the list, base64."""
    return PORTAL + "?" + urlencode({"fas": base64.b64encode(fas_list(tok, authdir=False, **kw).encode()).decode()})


def encrypt(text: str, faskey: str, iv: str) -> str:
    """AES-256-CBC, key = faskey padded with NULs, IV = the 16 characters, base64 twice (as openNDS's PHP)."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(text.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(faskey.encode().ljust(32, b"\0")), modes.CBC(iv.encode())).encryptor()
    raw = encryptor.update(data) + encryptor.finalize()
    return base64.b64encode(base64.b64encode(raw)).decode()


def level2_url(tok: str, faskey: str = FASKEY, send_iv: str | None = None, cut: int = 0, **kw) -> str:
    """Levels 2 and 3: the list encrypted with the faskey, and the IV (`send_iv`: another one sent;
    `cut`: bytes of ciphertext dropped from the end, so its padding is wrong)."""
    iv = os.urandom(8).hex()
    fas = encrypt(fas_list(tok, **kw), faskey, iv)
    if cut:
        raw = base64.b64decode(base64.b64decode(fas))[:-cut]
        fas = base64.b64encode(base64.b64encode(raw)).decode()
    return PORTAL + "?" + urlencode({"fas": fas, "iv": send_iv or iv})


def signed(fields: dict[str, str], faskey: str = FASKEY) -> str:
    """A BinAuth report body as contrib/opennds/conecta-binauth.sh signs it."""
    body = urlencode(fields)
    return body + "&sig=" + hmac.new(faskey.encode(), body.encode(), hashlib.sha256).hexdigest()
