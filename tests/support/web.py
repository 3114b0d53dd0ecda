"""Reading the web app's pages in Flask's test client: the text of a response, its CSRF token, a metric."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from portal.core import staffauth

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def page(resp) -> str:
    """The body of a test-client response as text."""
    return resp.get_data(as_text=True)


def metric(client, name: str, **labels: str) -> float:
    """One sample of the app's /metrics (0 when absent): `name` as exposed (counters end in _total)."""
    for family in text_string_to_metric_families(page(client.get("/metrics"))):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page (a page without one fails the test)."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


STAFF_PASSWORD = "correct horse battery staple"


def signed_in(app, db_factory, email: str = "admin@city.mx", role: str = "admin"):
    """A test client signed in to the console as a new staff member with `role`."""
    with db_factory() as db:
        staffauth.add_staff(db, email, role, STAFF_PASSWORD)
        db.commit()
    client = app.test_client()
    html = page(client.get("/staff/login"))
    response = client.post("/staff/login", data={"csrf_token": csrf_token(html), "email": email,
                                                 "password": STAFF_PASSWORD})
    assert response.status_code == 302, "sign-in failed"
    return client
