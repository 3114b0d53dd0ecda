"""A phone behind openNDS, run in the client's namespace: `ndsphone.py visit URL` or
`ndsphone.py register URL PORTAL`. It follows redirects one by one (recording each), fills the
portal's registration form with plain form posts, and prints a JSON report.

register: asks for URL until openNDS sends it to PORTAL (the first request may be refused while
openNDS checks the DHCP lease: a phone retries), registers, follows the hand-off back through the
gateway, then asks for URL again."""

from __future__ import annotations

import json
import re
import sys
import time
from html import unescape
from urllib.parse import urljoin

import httpx


def follow(client: httpx.Client, method: str, url: str, data: dict | None = None, stop: str = "") -> dict:
    """Follow redirects one by one from a request; stop before a URL starting with `stop`."""
    hops = []
    for _ in range(10):
        response = client.request(method, url, data=data)
        hops.append({"url": url, "status": response.status_code, "location": response.headers.get("location")})
        location = response.headers.get("location")
        if response.status_code not in (301, 302, 303, 307) or not location:
            return {"hops": hops, "body": response.text[:4000], "length": len(response.content)}
        url, method, data = urljoin(url, location), "GET", None
        if stop and url.startswith(stop):
            hops.append({"url": url, "status": None, "location": None})
            return {"hops": hops, "body": "", "length": 0}
    raise SystemExit("too many redirects")


def register(client: httpx.Client, url: str, portal: str) -> dict:
    """Arrive at the portal from openNDS's redirect, register, go through the hand-off, browse."""
    arrival = None
    for _ in range(20):
        try:
            arrival = follow(client, "GET", url)
        except httpx.HTTPError:
            arrival = None
        if arrival and arrival["hops"][-1]["url"].startswith(portal) and 'name="csrf_token"' in arrival["body"]:
            break
        time.sleep(0.5)
    else:
        return {"error": "never reached the portal", "arrival": arrival}
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', arrival["body"])
    form = {"csrf_token": unescape(token.group(1)) if token else "", "gender": "female", "age_band": "18-29",
            "terms": "yes", "privacy": "yes"}
    community = re.search(r'<option value="([^"]+)"', arrival["body"].split('name="community"', 1)[-1])
    if community:
        form["community"] = unescape(community.group(1))
    handoff = follow(client, "POST", urljoin(portal, "/register"), form)
    after = follow(client, "GET", url)
    return {"arrival": arrival, "handoff": handoff, "after": after}


def main() -> None:
    mode, url = sys.argv[1], sys.argv[2]
    with httpx.Client(timeout=10, headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) conecta-test"}) as client:
        report = follow(client, "GET", url) if mode == "visit" else register(client, url, sys.argv[3])
    print(json.dumps(report))


if __name__ == "__main__":
    main()
