"""A DHCP client for a test namespace, as a phone's: `dhcpclient.py IFACE` asks for a lease (DISCOVER,
OFFER, REQUEST, ACK, built and parsed by scapy), puts the address and default route on IFACE and prints
the address. Run inside the client's namespace (`ip netns exec`)."""

from __future__ import annotations

import os
import subprocess
import sys

from scapy.all import BOOTP, DHCP, IP, UDP, Ether, conf, get_if_hwaddr, srp1


def _option(reply, name: str):  # noqa: ANN001, ANN202 - scapy packets
    for option in reply[DHCP].options:
        if isinstance(option, tuple) and option[0] == name:
            return option[1]
    return None


def _ask(iface: str, mac: str, xid: int, options: list) -> object:
    frame = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")  # noqa: S104
             / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=xid, flags=0x8000)
             / DHCP(options=[*options, "end"]))
    for _ in range(5):   # a phone retries too
        reply = srp1(frame, iface=iface, timeout=2, verbose=False)
        if reply is not None and DHCP in reply and reply[BOOTP].xid == xid:
            return reply
    raise SystemExit("no DHCP answer")


def main() -> None:
    iface = sys.argv[1]
    conf.checkIPaddr = False      # the answer comes from the server's address, not the broadcast one
    mac = get_if_hwaddr(iface)
    xid = int.from_bytes(os.urandom(4), "big")
    offer = _ask(iface, mac, xid, [("message-type", "discover")])
    address, server = offer[BOOTP].yiaddr, _option(offer, "server_id")
    ack = _ask(iface, mac, xid, [("message-type", "request"), ("requested_addr", address), ("server_id", server)])
    if _option(ack, "message-type") != 5:
        raise SystemExit("DHCP request refused")
    mask = _option(ack, "subnet_mask") or "255.255.255.0"
    prefix = sum(bin(int(part)).count("1") for part in mask.split("."))
    subprocess.run(["ip", "addr", "add", f"{address}/{prefix}", "dev", iface], check=True)
    router = _option(ack, "router")
    if router:
        subprocess.run(["ip", "route", "add", "default", "via", router], check=True)
    print(address, flush=True)


if __name__ == "__main__":
    main()
