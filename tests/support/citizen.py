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
