"""Coverage-guided fuzzing of the RADIUS edge: raw datagrams through the structural check and pyrad.

Each input goes to radius.packets.check_structure for both ports; what it accepts is decoded by
pyrad exactly as radius.server does, then checked for authenticity and read by the handlers'
attribute helpers. Invariants:

- check_structure never raises and returns None or a reason (a non-empty str);
- it refuses anything under 20 or over 4096 bytes, and any code not allowed on the port;
- what it accepts is well formed by an independent reading of RFC 2865/2869 (Length within the
  datagram, attributes of length 2 or more ending exactly at Length, at most 200 of them, at most
  one Message-Authenticator and only of length 18);
- an accepted datagram decodes without raising anything but pyrad.packet.PacketError, and its
  authenticity checks and attribute reads raise nothing.

Run by hand (libFuzzer options after the script; corpus dirs are read, the first one grown):

    .venv/bin/python fuzz/fuzz_packets.py -runs=100000 -max_len=5000 /tmp/radius-corpus
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["pyrad", "radius"]):
    from pyrad import packet
    from pyrad.dictionary import Dictionary

    from portal.core.macs import normalize_mac
    from portal.core.radiusdict import DICTIONARY
    from radius.handlers import parse_accounting, text
    from radius.nas import NasInfo
    from radius.packets import ACCT_CODES, AUTH_CODES, STATUS_SERVER, check_structure

SECRET = b"fuzz-secret"
DICT = Dictionary(str(DICTIONARY))
NAS = NasInfo(1, "ap-fuzz", "127.0.0.1", SECRET, "coova", 3799, True, 1, "parque")
TZ = ZoneInfo("America/Mexico_City")
NOW = datetime(2026, 11, 26, tzinfo=timezone.utc)


def well_formed(data: bytes) -> bool:
    """An independent reading of the packet format (RFC 2865 section 3 and 5, RFC 2869 section 5.14)."""
    length = int.from_bytes(data[2:4], "big")
    if not 20 <= length <= len(data):
        return False
    pos, count, mas = 20, 0, 0
    while pos < length:
        if length - pos < 2 or data[pos + 1] < 2 or pos + data[pos + 1] > length:
            return False
        if data[pos] == 80:
            mas += 1
            if data[pos + 1] != 18 or mas > 1:
                return False
        count += 1
        pos += data[pos + 1]
    return count <= 200


def check_one(data: bytes, codes: frozenset[int], kind: type[packet.Packet]) -> None:
    """Run one datagram through the checks the server applies on one port."""
    problem = check_structure(data, codes)
    assert problem is None or (isinstance(problem, str) and problem), repr(problem)
    if not 20 <= len(data) <= 4096:
        assert problem is not None, f"{len(data)}-byte datagram accepted"
    if problem is not None:
        return
    assert data[0] in codes, f"code {data[0]} accepted"
    assert well_formed(data), "malformed datagram accepted"
    try:
        pkt = kind(packet=data, secret=SECRET, dict=DICT)
    except packet.PacketError:
        return
    # What radius.server._authentic and the handlers do with a decoded packet.
    if pkt.message_authenticator:
        pkt.verify_message_authenticator()
    if kind is packet.AcctPacket and pkt.code != STATUS_SERVER:
        pkt.VerifyAcctRequest()
        event = parse_accounting(pkt, NAS, TZ, NOW)
        assert isinstance(event, str) or event.nas_id == NAS.id
    text(pkt, 1)
    normalize_mac(text(pkt, 31))
    pkt.CreateReply().ReplyPacket()


def one_input(data: bytes) -> None:
    """The libFuzzer entry point: the datagram as is, and with its Length field made to match it
    (a mutation rarely fixes Length up itself, so inserted attributes would otherwise stay padding)."""
    variants = [data]
    if 4 <= len(data) < 65536:
        variants.append(data[:2] + len(data).to_bytes(2, "big") + data[4:])
    for datagram in variants:
        check_one(datagram, AUTH_CODES, packet.AuthPacket)
        check_one(datagram, ACCT_CODES, packet.AcctPacket)


def main() -> None:
    """Fuzz with libFuzzer's command-line options."""
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
