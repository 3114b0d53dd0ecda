"""Reading the web app's pages in Flask's test client: the text of a response, its CSRF token."""

from __future__ import annotations

import re

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def page(resp) -> str:
    """The body of a test-client response as text."""
    return resp.get_data(as_text=True)


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page (a page without one fails the test)."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)
