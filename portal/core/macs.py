"""Device identifiers: MAC addresses in one spelling, and keyed pseudonyms for what staff see."""

from __future__ import annotations

import hashlib
import hmac
import re

_MAC_HEX = re.compile(r"[0-9a-f]{12}")


def normalize_mac(value: object) -> str | None:
    """'AA-BB-CC-DD-EE-FF', 'aa:bb:..', 'aabb.ccdd.eeff' or 'aabbccddeeff' -> 'aa:bb:cc:dd:ee:ff'."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(value, str) or len(value) > 20:
        return None
    digits = re.sub(r"[-:.\s]", "", value.strip().lower())
    if not _MAC_HEX.fullmatch(digits):
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def radius_mac(mac: str | None) -> str | None:
    """A stored MAC as access points write Calling-Station-Id: 'AA-BB-CC-DD-EE-FF'."""
    return mac.replace(":", "-").upper() if mac else None


def pseudonym(identifier: str, key: str) -> str:
    """A keyed hash of a device identifier for the console and exports: stable, not reversible."""
    return hmac.new(key.encode(), identifier.encode(), hashlib.sha256).hexdigest()[:16]
