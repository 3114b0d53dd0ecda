"""What a citizen does in the browser, shared by the end-to-end tests."""

from __future__ import annotations


def register_in(page, gender: str = "Mujer", age: str = "18 a 29 años", community: str | None = "San José") -> None:
    """Fill the registration form the way a person does: by the visible labels."""
    page.get_by_role("group", name="Género").get_by_label(gender, exact=True).check()
    page.get_by_role("group", name="Edad").get_by_label(age, exact=True).check()
    if community:
        page.get_by_label("Tu colonia o comunidad").select_option(community)
    page.locator("input[name=terms]").check()
    page.locator("input[name=privacy]").check()
    page.get_by_role("button", name="Registrarme y conectarme").click()


def meters(page) -> list[str]:
    """The time and data left, as the status page shows them."""
    return [t.strip() for t in page.locator("dd.meter").all_inner_texts()]


# WCAG 2.2 1.4.11: every focusable element's focus ring against what is behind it (the nearest ancestor
# with a background) is at least 3:1 and 2 px wide. axe does not check focus indicators.
FOCUS_RINGS = """() => {
    const channel = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    const lum = c => { const [r, g, b] = c.match(/[\\d.]+/g).map(Number); return 0.2126 * channel(r)
                       + 0.7152 * channel(g) + 0.0722 * channel(b); };
    const behind = el => { for (let e = el.parentElement; e; e = e.parentElement) {
        const m = getComputedStyle(e).backgroundColor.match(/[\\d.]+/g);
        if (m && (m.length < 4 || Number(m[3]) > 0)) return getComputedStyle(e).backgroundColor; }
        return 'rgb(255, 255, 255)'; };
    const bad = [];
    for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea')) {
        el.focus();
        if (document.activeElement !== el) continue;
        const s = getComputedStyle(el), a = lum(s.outlineColor), b = lum(behind(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (s.outlineStyle === 'none' || parseFloat(s.outlineWidth) < 2 || ratio < 3)
            bad.push(`${el.tagName} "${(el.textContent || el.name).trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
        el.blur();
    }
    return bad;
}"""

# WCAG 2.2 2.5.8: targets outside running text (header, footer and navigation links, buttons, fields) are
# at least 24 × 24 px, whatever the spacing around them (axe's target-size allows small spaced targets).
SMALL_TARGETS = """() => [...document.querySelectorAll(
        'header a, footer a, nav a, button, input:not([type=hidden]), select, textarea')]
    .filter(el => el.getClientRects().length > 0)
    .map(el => [el, el.getBoundingClientRect()])
    .filter(([el, r]) => r.width < 24 || r.height < 24)
    .map(([el, r]) => `${el.tagName} "${(el.textContent || el.name).trim().slice(0, 30)}" ${r.width}x${r.height}`)"""


def focus_and_targets(page) -> list[str]:
    """What fails 1.4.11 (focus ring) or 2.5.8 (target size) on the page."""
    return page.evaluate(FOCUS_RINGS) + page.evaluate(SMALL_TARGETS)
