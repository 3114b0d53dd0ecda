"""gettext for texts the RADIUS side shows citizens (Reply-Message). Source strings are Spanish.

The catalogs are the portal's (portal/translations, compiled at install); Spanish needs none.
"""

from __future__ import annotations

import gettext as _gettext
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "portal" / "translations"


@lru_cache(maxsize=8)
def translation(language: str) -> _gettext.NullTranslations:
    """The catalog for `language`, or the Spanish source strings when there is none."""
    return _gettext.translation("messages", localedir=LOCALE_DIR, languages=[language], fallback=True)


def N_(text: str) -> str:  # noqa: N802 - the gettext convention for "mark for extraction only"
    """Mark a string for the catalog; it is translated where it is shown."""
    return text


def gettext(message: str, language: str = "es") -> str:
    """Translate a Spanish source string into `language`."""
    return translation(language).gettext(message)


def ngettext(singular: str, plural: str, n: int, language: str = "es") -> str:
    """Translate a Spanish source string with a singular and a plural form into `language`."""
    return translation(language).ngettext(singular, plural, n)
