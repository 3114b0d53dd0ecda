"""A tiny HTTP server run inside a test namespace: `nsserver.py ADDRESS PORT ok|error|hang`.

ok answers 200, error answers 500, hang accepts connections and never answers. Prints "listening".
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    """200 or 500, with a short body."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        body = b"ok\n"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        return


def hang(address: str, port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)
    print("listening", flush=True)
    held = []
    while True:
        held.append(listener.accept()[0])     # kept open, never answered
        time.sleep(0)


def main() -> None:
    address, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "hang":
        hang(address, port)
        return
    Handler.status = 500 if mode == "error" else 200
    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("listening", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
