"""The staff console in a browser on the demo's data: `conecta simulate` through the real RADIUS path, a
signed-in admin, and checks of what a person reads (no stored codes)."""

from __future__ import annotations

import re

from portal.core import staffauth
from radius import simulate

ADMIN, PASSWORD = "admin@municipio.mx", "correct horse battery staple"
# Codes that must never reach a person's eyes (\b: "male" inside "female" counts once, as female).
CODES = re.compile(r"\b(female|male|nonbinary|undisclosed|site_kind|age_band|digital-center|park|daily_time|"
                   r"daily_data|monthly_data|in-progress|no-signal|cannot-login)\b")


def demo_data(settings, policies, db_factory, redis_client) -> None:  # noqa: ANN001
    """What `make run` plays: 120 people over the last 14 days at the six demo sites, and an admin."""
    simulate.run(settings, policies, db_factory, redis_client, people=120, days=14, seed=10,
                 progress=lambda _n: None, total=lambda _n: None)
    with db_factory() as db:
        staffauth.add_staff(db, ADMIN, "admin", PASSWORD)
        db.commit()


def sign_in(page, origin: str) -> None:  # noqa: ANN001
    """Sign in as the demo admin."""
    page.goto(f"{origin}/staff/login")
    page.fill("#email", ADMIN)
    page.fill("#password", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{origin}/staff/")


def codes_shown(page) -> list[str]:  # noqa: ANN001
    """The stored codes visible in the page's main content."""
    return sorted(set(CODES.findall(page.inner_text("main"))))


def contrast(rgb: str, against: tuple[int, int, int] = (255, 255, 255)) -> float:
    """WCAG contrast ratio of a CSS 'rgb(r, g, b)' colour against another (white by default)."""
    def luminance(channels) -> float:  # noqa: ANN001
        linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    a, b = luminance([int(v) for v in re.findall(r"\d+", rgb)[:3]]), luminance(against)
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


FOCUS = """() => { const s = getComputedStyle(document.activeElement);
                   return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth, s.outlineColor]; }"""


def focus_rings(page, presses: int = 6) -> list[list[str]]:  # noqa: ANN001
    """Tab through the first controls of the page; each focused element's tag and outline."""
    rings = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        rings.append(page.evaluate(FOCUS))
    return rings
