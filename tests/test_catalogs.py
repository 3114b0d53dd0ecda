"""Every text a citizen or staff member reads is in both catalogs: the .pot and the English .po (with a
translation), as the source code and templates say them today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from portal.core.accounts import read_user_csv
from portal.core.errors import InputError

pytestmark = pytest.mark.engine_neutral   # the gettext catalogs

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "portal" / "translations"


def test_every_msgid_is_in_the_pot_and_translated_to_english(tmp_path):
    extracted = tmp_path / "now.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-o",
                    str(extracted), "-k", "N_", "-k", "_", "-k", "gettext", "-k", "ngettext:1,2", "."],
                   cwd=ROOT, check=True, capture_output=True)
    with extracted.open("rb") as f:
        wanted = [m.id for m in read_po(f) if m.id]
    with (CATALOGS / "messages.pot").open("rb") as f:
        pot = read_po(f)
    with (CATALOGS / "en" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        english = read_po(f)
    assert len(wanted) > 200
    assert [m for m in wanted if m not in pot] == []
    assert [m for m in wanted if m not in english or not english[m].string] == []


def test_a_csv_line_wrapping_its_column_fault_is_said_whole_in_each_language():
    with pytest.raises(InputError) as caught:
        read_user_csv("username,password,gender\nana,clave-123,hombre\n", {})
    assert str(caught.value).startswith("línea 2, columna gender: 'hombre' no es uno de ")
    assert caught.value.say("en").startswith("line 2, column gender: 'hombre' is not one of ")
