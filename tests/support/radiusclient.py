"""A small NAS-side helper over pyrad's client: builds and sends real UDP requests."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable

from pyrad import packet
from pyrad.client import Client, Timeout

from tests.support.builders import SECRET


class Nas:
    """Sends Access- and Accounting-Requests to a server as one access point would."""

    def __init__(self, server, dictionary, secret: str = SECRET, timeout: float = 2.0, retries: int = 1) -> None:
        auth, acct = server.ports
        self.client = Client(server="127.0.0.1", authport=auth, acctport=acct, secret=secret.encode(),
                             dict=dictionary)
        self.client.timeout = timeout
        self.client.retries = retries
        self.dictionary = dictionary

    def auth_packet(self, username: str, password: str | None = None, mac: str | None = "AA-BB-CC-00-00-01",
                    chap: bool = False, ma: bool = True, **attrs) -> packet.AuthPacket:
        """An Access-Request, PAP or CHAP, with a Message-Authenticator unless `ma` is False."""
        req = self.client.CreateAuthPacket(code=packet.AccessRequest, User_Name=username, message_authenticator=ma)
        if mac:
            req["Calling-Station-Id"] = mac
        if password is not None:
            if chap:
                challenge = os.urandom(16)
                chap_id = b"\x07"
                req["CHAP-Challenge"] = challenge
                req["CHAP-Password"] = chap_id + hashlib.md5(chap_id + password.encode() + challenge).digest()
            else:
                req["User-Password"] = req.PwCrypt(password)
        for key, value in attrs.items():
            req[key.replace("_", "-")] = value
        if ma:
            req.add_message_authenticator()
        return req

    def auth(self, username: str, password: str | None = None, **kw) -> packet.Packet:
        """Send an Access-Request (see auth_packet) and return the reply."""
        return self.client.SendPacket(self.auth_packet(username, password, **kw))

    def acct(self, status: str, session_id: str, username: str = "", seconds: int = 0,
             bytes_in: int = 0, bytes_out: int = 0, reply: packet.Packet | None = None,
             mac: str | None = "AA-BB-CC-00-00-01", **attrs) -> packet.Packet:
        """Send an Accounting-Request (see acct_packet) and return the reply."""
        return self.client.SendPacket(self.acct_packet(status, session_id, username, seconds, bytes_in, bytes_out,
                                                       reply, mac, **attrs))

    def acct_packet(self, status: str, session_id: str, username: str = "", seconds: int = 0,
                    bytes_in: int = 0, bytes_out: int = 0, reply: packet.Packet | None = None,
                    mac: str | None = "AA-BB-CC-00-00-01", **attrs) -> packet.AcctPacket:
        """An Accounting-Request (the Class of `reply` echoed); sent again, it is the same bytes."""
        req = self.client.CreateAcctPacket(User_Name=username or "-")
        req["Acct-Status-Type"] = status
        if session_id:
            req["Acct-Session-Id"] = session_id
        req["Acct-Session-Time"] = seconds
        req["Acct-Input-Octets"] = bytes_in % 2**32
        req["Acct-Output-Octets"] = bytes_out % 2**32
        if bytes_in >= 2**32:
            req["Acct-Input-Gigawords"] = bytes_in // 2**32
        if bytes_out >= 2**32:
            req["Acct-Output-Gigawords"] = bytes_out // 2**32
        if mac:
            req["Calling-Station-Id"] = mac
        if reply is not None and "Class" in reply:
            req["Class"] = reply["Class"][0]
        for key, value in attrs.items():
            req[key.replace("_", "-")] = value
        return req


def serve(server) -> threading.Thread:  # noqa: ANN001 - a radius.server.RadiusServer
    """Run a RADIUS server in a thread of its own; stop it with `stop`."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def stop(server, thread: threading.Thread) -> None:  # noqa: ANN001 - a radius.server.RadiusServer
    """Stop a server started by `serve`."""
    server.running = False
    thread.join(5)
    server.shutdown()


def until_answered(send: Callable[[], packet.Packet], timeout: float = 15.0) -> packet.Packet:
    """Retransmit as a NAS does until the server answers (it drops what it cannot serve yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return send()
        except Timeout:
            assert time.monotonic() < deadline, "no answer"
