"""A real HTTP receiver on 127.0.0.1 for webhooks and probes: records every request; answers 200,
500, or never (hang), as the test sets."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """ThreadingHTTPServer on an ephemeral port; `requests` holds (method, path, headers, body)."""

    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = threading.Event()       # ends the hanging requests at close()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append((self.command, self.path, dict(self.headers), body))
                if owner.mode == "hang":
                    owner.release.wait(30)
                    return
                status = 500 if owner.mode == "error" else 200
                self.send_response(status)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            do_GET = do_POST = _serve  # noqa: N815 - the stdlib's names

            def log_message(self, *_args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def posts(self) -> list[dict]:
        """The JSON bodies of the POSTs received so far."""
        return [json.loads(body) for method, _path, _headers, body in self.requests if method == "POST"]

    def close(self) -> None:
        """Stop serving (hanging requests are let go)."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
