"""Structural checks on raw datagrams before pyrad sees them (RFC 2865/5080, FreeRADIUS rad_packet_ok).

pyrad 2.6 truncates overflowing attributes, accepts a Message-Authenticator of any length and
decodes up to 8192 bytes; everything it would get wrong is refused here.
"""

from __future__ import annotations

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3
ACCOUNTING_REQUEST, ACCOUNTING_RESPONSE = 4, 5
STATUS_SERVER = 12
MAX_PACKET = 4096
MAX_ATTRIBUTES = 200
MESSAGE_AUTHENTICATOR = 80

AUTH_CODES = frozenset({ACCESS_REQUEST, STATUS_SERVER})
ACCT_CODES = frozenset({ACCOUNTING_REQUEST, STATUS_SERVER})


def check_structure(data: bytes, allowed_codes: frozenset[int]) -> str | None:
    """None if the datagram is a well-formed request of an allowed code, else why not."""
    size = len(data)
    if size < 20:
        return "shorter than 20 bytes"
    if size > MAX_PACKET:
        return "longer than 4096 bytes"
    code = data[0]
    if code not in allowed_codes:
        return f"code {code} not accepted on this port"
    length = int.from_bytes(data[2:4], "big")
    if length != size:  # RFC 2865 calls extra octets padding; a Length that lies is refused instead
        return f"Length field {length} disagrees with the datagram ({size} bytes)"
    pos, count, has_ma = 20, 0, False
    while pos < length:
        if pos + 2 > length:
            return "attribute header runs past the end"
        attr_type, attr_len = data[pos], data[pos + 1]
        if attr_len < 2:
            return f"attribute {attr_type} has length {attr_len}"
        if pos + attr_len > length:
            return f"attribute {attr_type} runs past the end"
        if attr_type == MESSAGE_AUTHENTICATOR:
            if attr_len != 18 or has_ma:
                return "bad Message-Authenticator length or more than one"
            has_ma = True
        count += 1
        if count > MAX_ATTRIBUTES:
            return "more than 200 attributes"
        pos += attr_len
    return None
