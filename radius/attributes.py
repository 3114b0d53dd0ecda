"""The only module that names reply attributes: a Decision becomes each vendor's RADIUS reply."""

from __future__ import annotations

import hashlib
import hmac
import struct

from pyrad.packet import AccountingResponse

from policies import Decision

GIGA = 2**32
U32_MAX = 2**32 - 1


def _octets_and_gigawords(total: int) -> tuple[int, int]:
    return total % GIGA, total // GIGA


def _data_cap(vendor: str, data_left: int) -> list[tuple[str, object]]:
    low, giga = _octets_and_gigawords(data_left)
    if vendor == "coova":
        attrs: list[tuple[str, object]] = [("ChilliSpot-Max-Total-Octets", low)]
        return attrs + ([("ChilliSpot-Max-Total-Gigawords", giga)] if giga else [])
    if vendor == "mikrotik":
        attrs = [("Mikrotik-Total-Limit", low)]
        return attrs + ([("Mikrotik-Total-Limit-Gigawords", giga)] if giga else [])
    if vendor == "pfsense":
        # pfSense has no Gigawords attribute: cap at 4 GiB; interim accounting cuts off the rest.
        return [("pfSense-Max-Total-Octets", min(data_left, U32_MAX))]
    # WISPr defines no data cap: generic, UniFi and openNDS rely on the interim cut-off.
    return []


def rate_attributes(vendor: str, down: int | None, up: int | None) -> list[tuple[str, object]]:
    """The per-session rate caps in the NAS's own attributes (also what a CoA-Request changes)."""
    attrs: list[tuple[str, object]] = []
    if vendor == "mikrotik":
        if down or up:
            # "rx/tx" from the router's side: rx is what the client uploads.
            attrs.append(("Mikrotik-Rate-Limit", f"{(up or 0) // 1000}k/{(down or 0) // 1000}k"))
        return attrs
    if vendor == "pfsense":
        if up:
            attrs.append(("pfSense-Bandwidth-Max-Up", min(up, U32_MAX)))
        if down:
            attrs.append(("pfSense-Bandwidth-Max-Down", min(down, U32_MAX)))
        return attrs
    if up:
        attrs.append(("WISPr-Bandwidth-Max-Up", min(up, U32_MAX)))
    if down:
        attrs.append(("WISPr-Bandwidth-Max-Down", min(down, U32_MAX)))
    if vendor == "coova":
        if up:
            attrs.append(("ChilliSpot-Bandwidth-Max-Up", max(1, up // 1000)))
        if down:
            attrs.append(("ChilliSpot-Bandwidth-Max-Down", max(1, down // 1000)))
    return attrs


def reply_attributes(decision: Decision, vendor: str, user_id: int | None = None) -> list[tuple[str, object]]:
    """Attributes for an Access-Accept or Access-Reject to a NAS of `vendor`."""
    if not decision.accept:
        return [("Reply-Message", decision.message)] if decision.message else []
    attrs: list[tuple[str, object]] = []
    if user_id is not None:
        # Class comes back in every accounting packet (RFC 2865 5.25): it names the person.
        attrs.append(("Class", class_value(user_id, decision.slow_until is not None)))
    if decision.session_timeout:
        attrs.append(("Session-Timeout", decision.session_timeout))
        attrs.append(("Termination-Action", 0))
    if decision.idle_timeout:
        attrs.append(("Idle-Timeout", decision.idle_timeout))
    if decision.interim_interval:
        attrs.append(("Acct-Interim-Interval", decision.interim_interval))
    if decision.data_left is not None:
        attrs.extend(_data_cap(vendor, decision.data_left))
    attrs.extend(rate_attributes(vendor, decision.rate_down, decision.rate_up))
    if decision.message:   # the slow lane, in words (RFC 2865 5.18 allows it in an Accept)
        attrs.append(("Reply-Message", decision.message))
    return attrs


SLOW_MARK = ":slow"    # Class "conecta:42:slow": the session starts in the slow lane


def class_value(user_id: int, slow: bool) -> bytes:
    """Class for an Accept: it names the person, and says when the session starts in the slow lane."""
    return f"conecta:{user_id}{SLOW_MARK if slow else ''}".encode()


def class_user_id(value: bytes | None) -> int | None:
    """The person id a NAS echoed back in Class, or None."""
    if not value or not value.startswith(b"conecta:"):
        return None
    digits = value[8:].removesuffix(SLOW_MARK.encode())
    return int(digits) if digits.isdigit() and len(digits) < 19 else None


def class_slow(value: bytes | None) -> bool:
    """True when the Class a NAS echoed says the session started in the slow lane."""
    return bool(value) and value.startswith(b"conecta:") and value.endswith(SLOW_MARK.encode())



_ENCODED: dict[tuple[str, object], bytes] = {}
_NO_CACHE = {"Class", "Reply-Message"}     # per person / per message: caching them only grows memory
MA_ZERO = b"\x50\x12" + bytes(16)


def encoded(template, name: str, value: object) -> bytes:  # noqa: ANN001 - a pyrad Packet with the dictionary
    """One attribute as wire bytes, encoded by pyrad once per distinct (name, value)."""
    hit = _ENCODED.get((name, value))
    if hit is None:
        key, values = template._EncodeKeyValues(name, value)
        hit = b"".join(template._PktEncodeAttribute(key, v) for v in values)
        if name not in _NO_CACHE:
            if len(_ENCODED) > 20_000:
                _ENCODED.clear()
            _ENCODED[(name, value)] = hit
    return hit


def reply_packet(request, code: int, attrs: list[tuple[str, object]]) -> bytes:  # noqa: ANN001 - pyrad packet
    """An Access-Accept/Reject or Accounting-Response for `request`, Message-Authenticator first
    (BlastRADIUS, CVE-2024-3596).

    pyrad encodes every attribute twice per reply (once for the HMAC, once to send); here the
    attribute bytes come from the cache above and are hashed once. Proxy-State is copied in order
    (RFC 2865 5.33). Tests check the result with pyrad's own VerifyReply.
    """
    proxy = b"".join(struct.pack("!BB", 33, len(v) + 2) + v for v in dict.get(request, 33, []))
    body = proxy + b"".join(encoded(request, name, value) for name, value in attrs)
    length = 20 + len(MA_ZERO) + len(body)
    header = struct.pack("!BBH", code, request.id, length)
    # RFC 5176 3.3 convention, as FreeRADIUS and pyrad sign it: an Accounting-Response's
    # Message-Authenticator is computed over a zeroed authenticator; other replies use the request's.
    vector = bytes(16) if code == AccountingResponse else request.authenticator
    ma = hmac.new(request.secret, header + vector + MA_ZERO + body, hashlib.md5).digest()
    attributes = b"\x50\x12" + ma + body
    authenticator = hashlib.md5(header + request.authenticator + attributes + request.secret,
                                usedforsecurity=False).digest()  # RFC 2865 3: the protocol says MD5
    return header + authenticator + attributes
