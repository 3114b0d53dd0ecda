"""axe-core (npm) inside headless Chromium on every citizen page: 0 violations (WCAG 2.2 AA and axe's
best practices), in Spanish and in English."""

from __future__ import annotations

import re

import pytest

from tests.support.citizen import register_in

pytestmark = pytest.mark.engine_neutral   # the pages' accessibility

# target-size (WCAG 2.2 AA, 2.5.8) is off by default in axe 4: switched on.
AXE_RUN = """async () => {
    const result = await axe.run(document, {resultTypes: ['violations'], rules: {'target-size': {enabled: true}}});
    return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
}"""


def axe(page, source) -> list[dict]:
    page.add_script_tag(path=str(source))
    return page.evaluate(AXE_RUN)


def test_axe_reports_no_violation_on_any_citizen_page(context_factory, portal, coova, mikrotik, axe_source):
    # bypass_csp only so that axe can be injected; the pages themselves are served as always.
    context = context_factory(bypass_csp=True)
    context.route(re.compile(r".*/static/handoff\.js$"), lambda route: route.abort())   # stay on the hand-off page
    page = context.new_page()
    found: dict[str, list] = {}

    def check(name: str) -> None:
        assert page.locator("main").count() == 1, name
        violations = axe(page, axe_source)
        if violations:
            found[name] = violations

    page.goto(coova.origin())
    check("splash: registration form")
    page.evaluate("document.querySelector('form[action=\"/register\"]').noValidate = true")
    page.get_by_role("button", name="Registrarme y conectarme").click()
    assert page.locator(".error").count() == 1
    check("splash: registration refused, with the error")
    page.goto(portal.url + "status")
    check("status: not registered")
    page.goto(mikrotik.origin())
    register_in(page)
    page.wait_for_url(portal.url + "register")
    check("hand-off page (MikroTik POST, no JavaScript)")
    page.get_by_role("button", name="Continuar").click()
    page.wait_for_url(portal.url + "status?back=1")    # the router sends the browser back to the portal
    check("status: just online, the page asked for as a link")
    mikrotik.account("Start")
    mikrotik.account("Interim-Update", seconds=600, bytes_in=1_000_000, bytes_out=9_000_000)
    page.goto(portal.url + "status")
    assert page.locator("dd.meter").count() == 2
    check("status: time and data left, fault report")
    page.goto(portal.url + "status?sent=1")
    check("status: fault report sent")
    page.goto(portal.url + "my-data")
    check("my data")
    page.goto(coova.origin())
    check("splash: remembered device, one tap")
    for path in ("terms", "privacy", "no-such-page"):
        page.goto(portal.url + path)
        check(path)
    page.goto(coova.portal_redirect("notyet", coova.origin(), secret="forged"))
    check("error page: forged md")
    page.goto(portal.url + "lang/en?next=/status")
    check("status in English")
    page.goto(portal.url + "my-data")
    page.get_by_role("button", name="Delete everything stored about me").click()
    check("data deleted (English)")
    page.goto(coova.origin())
    check("splash in English: registration form")
    assert found == {}, found
    # axe really runs here: a small link and an image without text are found.
    page.evaluate("""document.querySelector('main').insertAdjacentHTML('beforeend',
        '<img src="data:,"><a href="/" style="display:inline-block;width:8px;height:8px;font-size:4px">x</a> '
        + '<a href="/terms" style="display:inline-block;width:8px;height:8px;font-size:4px">y</a>')""")
    assert {"image-alt", "target-size"} <= {v["id"] for v in axe(page, axe_source)}
